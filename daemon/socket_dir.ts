/**
 * The folder of the daemon's socket: root's alone. Whoever can write in
 * it could replace the socket, and whoever can reach the socket may ask the
 * daemon to attach and detach pods, so the daemon refuses to serve from a
 * folder another user owns or may write to, makes a missing one 0700, and
 * narrows one that others may only read or enter. The socket itself is made
 * 0600.
 *
 * @module
 */

/** A socket folder the daemon will not serve from, with why. */
export class SocketDirError extends Error {
  constructor(path: string, why: string) {
    super(`socket folder ${path}: ${why}`);
    this.name = "SocketDirError";
  }
}

/** What {@link prepareSocketDir} found: "ok", "created", or "narrowed" (a wider mode made 0700). */
export type SocketDirOutcome = "ok" | "created" | "narrowed";

function parentOf(path: string): string {
  const slash = path.replace(/\/+$/, "").lastIndexOf("/");
  return slash > 0 ? path.slice(0, slash) : "/";
}

/** Makes (0700) or checks the folder `dir` for the socket; throws SocketDirError when unsafe. */
export function prepareSocketDir(dir: string): SocketDirOutcome {
  const uid = Deno.uid();
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(dir);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    Deno.mkdirSync(parentOf(dir), { recursive: true, mode: 0o755 });
    Deno.mkdirSync(dir, { mode: 0o700 });
    // mkdir applies the umask, which can only narrow 0700; set it exactly anyway.
    Deno.chmodSync(dir, 0o700);
    return "created";
  }
  if (info.isSymlink) throw new SocketDirError(dir, "is a symbolic link");
  if (!info.isDirectory) throw new SocketDirError(dir, "is not a folder");
  if (uid !== null && info.uid !== uid) {
    throw new SocketDirError(dir, `is owned by uid ${info.uid}, not ${uid}`);
  }
  const mode = info.mode ?? 0;
  if ((mode & 0o022) !== 0) {
    throw new SocketDirError(
      dir,
      `is writable by group or others (mode ${(mode & 0o7777).toString(8)}); ` +
        `make it 0700 or choose another --socket`,
    );
  }
  if ((mode & 0o077) === 0) return "ok";
  Deno.chmodSync(dir, 0o700);
  return "narrowed";
}

/**
 * Removes what a previous run left at the socket path: a socket only.
 * Anything else there is not the daemon's to remove (SocketDirError).
 */
export function removeStaleSocket(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (!info.isSocket) {
    throw new SocketDirError(path, "exists and is not a socket; not removing it");
  }
  Deno.removeSync(path);
}
