/**
 * A host-wide lock per shared device (a bridge, a tunnel): ADDs that set up
 * or may take back the same device run one after the other, so a failed ADD
 * can undo its changes to the device without pulling it from under a
 * concurrent one. An flock(2) on `/run/hydra/locks/<name>.flock`, released
 * when the holder is done (or dies).
 *
 * Only root may take it: the folder is root's alone (0700, checked and
 * narrowed when an older version left it wider, refused when another user
 * owns it), the files are 0600 and opened with O_NOFOLLOW. A local user who
 * could open the file could hold the lock and stall every ADD on that
 * bridge. Files of versions before this one (`<name>.lock`, 0644 in a 0755
 * folder) may still be held open by anyone; they are never used again.
 *
 * @module
 */

import {
  closeFd,
  errno,
  libc,
  LOCK_EX,
  LOCK_NB,
  O_CREAT,
  O_NOFOLLOW,
  O_RDWR,
  openFd,
} from "../netlink/ffi.ts";
import { ensurePrivateDir } from "../pkg/private_dir.ts";

/** Where the lock files live. */
export const LOCK_DIR = "/run/hydra/locks";

const EWOULDBLOCK = 11;

/** The file of lock `name` in `dir`: one path component whatever the name holds. */
export function hostLockPath(name: string, dir: string = LOCK_DIR): string {
  return `${dir}/${encodeURIComponent(name)}.flock`;
}

/**
 * Opens (creating) the lock file: 0600, never through a symlink, and only
 * a regular file owned by this user is accepted. Returns the fd.
 */
function openLockFile(path: string): number {
  const fd = openFd(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600);
  try {
    const st = Deno.statSync(`/proc/self/fd/${fd}`);
    const uid = Deno.uid();
    if (!st.isFile || (uid !== null && st.uid !== uid) || ((st.mode ?? 0) & 0o077) !== 0) {
      throw new Error(
        `${path} is not a regular file of uid ${uid} with mode 0600; refusing to lock it`,
      );
    }
    return fd;
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

/** Takes the flock on `fd`: at once when free, else waiting off the event loop. */
async function lockFd(fd: number, path: string): Promise<void> {
  if (libc.flock(fd, LOCK_EX | LOCK_NB) === 0) return;
  const code = errno();
  if (code !== EWOULDBLOCK) throw new Error(`flock ${path}: errno ${code}`);
  if (await libc.flockOffThread(fd, LOCK_EX) !== 0) throw new Error(`flock ${path} failed`);
}

/**
 * Opens (creating, 0600, without following a symlink) the lock file `path`
 * and takes its flock, waiting off the event loop while another process
 * holds it. Only a regular file of this process's user is accepted. Returns
 * the function that drops the lock; throws when the file cannot be had.
 */
export async function lockFile(path: string): Promise<() => void> {
  const fd = openLockFile(path);
  try {
    await lockFd(fd, path);
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  return () => closeFd(fd); // closing the descriptor drops the flock
}

/**
 * Runs `fn` holding the lock named `name`. When the lock cannot be had (a
 * read-only /run, a folder another user owns), `fn` runs unlocked and the
 * reason is logged: the lock only narrows races, the plugins work without
 * it, and a folder that cannot be trusted must not be used.
 */
export async function withHostLock<T>(
  name: string,
  fn: () => Promise<T>,
  dir: string = LOCK_DIR,
): Promise<T> {
  let release: (() => void) | undefined;
  try {
    // Checking the folder and opening the file do not block: done in place
    // rather than each sent to a worker thread and back. Waiting for the
    // lock stays asynchronous.
    ensurePrivateDir(dir);
    release = await lockFile(hostLockPath(name, dir));
  } catch (err) {
    console.error(JSON.stringify({
      level: "warn",
      msg: `running without the ${name} lock`,
      error: err instanceof Error ? err.message : String(err),
    }));
  }
  try {
    return await fn();
  } finally {
    release?.();
  }
}
