/**
 * Folders only this process's user may enter (root on a node): made 0700
 * when missing; an existing one is checked before anything in it is
 * trusted. Files under such a folder cannot be opened by another user
 * whatever their own mode, so a lock or socket in it is out of reach of
 * unprivileged processes on the node.
 *
 * @module
 */

/** A folder that cannot be made private, with why. */
export class PrivateDirError extends Error {
  readonly path: string;

  constructor(path: string, why: string) {
    super(`${path}: ${why}`);
    this.name = "PrivateDirError";
    this.path = path;
  }
}

/** What {@link ensurePrivateDir} did. */
export type PrivateDirOutcome = "ok" | "created" | "fixed";

/**
 * Makes sure `dir` is a real folder (not a symlink), owned by this
 * process's user, with no access for group or others:
 *
 * - missing: made with mode 0700 (its parent must exist and must not be
 *   writable by group or others, or a second user could swap it);
 * - owned by this user with a wider mode (as an older version or a
 *   kubelet hostPath made it, 0755): narrowed to 0700 ("fixed");
 * - a symlink, not a folder, or owned by another user: refused with a
 *   {@link PrivateDirError}; nothing in it is to be trusted.
 *
 * Synchronous on purpose: it runs on the path of short-lived plugin
 * processes, where a hop to a worker thread costs more than the call.
 */
export function ensurePrivateDir(dir: string): PrivateDirOutcome {
  const uid = Deno.uid();
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(dir);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    checkParent(dir, uid);
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
    } catch (mkErr) {
      if (!(mkErr instanceof Deno.errors.AlreadyExists)) throw mkErr;
      return ensurePrivateDir(dir); // made by a concurrent process: check what it made
    }
    // mkdir applies the umask, which can only narrow 0700; chmod anyway in case it is odd.
    Deno.chmodSync(dir, 0o700);
    return "created";
  }
  if (info.isSymlink) throw new PrivateDirError(dir, "is a symbolic link; refusing to use it");
  if (!info.isDirectory) throw new PrivateDirError(dir, "is not a folder; refusing to use it");
  if (uid !== null && info.uid !== uid) {
    throw new PrivateDirError(
      dir,
      `is owned by uid ${info.uid}, not ${uid}; refusing to use it (remove it, or chown it ` +
        `to ${uid} and chmod it 0700)`,
    );
  }
  if (((info.mode ?? 0) & 0o077) === 0) return "ok";
  Deno.chmodSync(dir, 0o700);
  return "fixed";
}

/** The parent of a folder about to be made must not let other users replace it. */
function checkParent(dir: string, uid: number | null): void {
  const slash = dir.replace(/\/+$/, "").lastIndexOf("/");
  const parent = slash > 0 ? dir.slice(0, slash) : "/";
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(parent);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    // A missing parent (a fresh /run/hydra) is made private too.
    ensurePrivateDir(parent);
    return;
  }
  const mode = info.mode ?? 0;
  const sticky = (mode & 0o1000) !== 0;
  const othersWrite = (mode & 0o022) !== 0;
  if (othersWrite && !sticky) {
    throw new PrivateDirError(
      dir,
      `its parent ${parent} is writable by other users; refusing to make it there`,
    );
  }
  if (uid !== null && info.uid !== uid && info.uid !== 0) {
    throw new PrivateDirError(dir, `its parent ${parent} is owned by uid ${info.uid}`);
  }
}
