/**
 * A host-wide lock per shared device (a bridge, a tunnel): ADDs that set up
 * or may take back the same device run one after the other, so a failed ADD
 * can undo its changes to the device without pulling it from under a
 * concurrent one. An flock(2) on `/run/hydra/locks/<name>.lock`, released
 * when the holder is done (or dies).
 *
 * @module
 */

/** Where the lock files live. */
export const LOCK_DIR = "/run/hydra/locks";

/**
 * Runs `fn` holding the lock named `name`. When the lock file cannot be
 * made (a read-only /run), `fn` runs unlocked: the lock only narrows races,
 * the plugins work without it.
 */
export async function withHostLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  let file: Deno.FsFile | undefined;
  try {
    // Creating the folder and opening the file do not block: done in place
    // rather than each sent to a worker thread and back. Waiting for the
    // lock stays asynchronous.
    Deno.mkdirSync(LOCK_DIR, { recursive: true, mode: 0o755 });
    file = Deno.openSync(`${LOCK_DIR}/${name}.lock`, {
      read: true,
      write: true,
      create: true,
      mode: 0o644,
    });
    await file.lock(true);
  } catch (err) {
    file?.close();
    file = undefined;
    console.error(JSON.stringify({
      level: "warn",
      msg: `running without the ${name} lock`,
      error: err instanceof Error ? err.message : String(err),
    }));
  }
  try {
    return await fn();
  } finally {
    file?.close(); // closing the descriptor drops the flock
  }
}
