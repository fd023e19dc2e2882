/**
 * One owner per attachment at a time: the ADD, DEL and CHECK of one
 * container interface, and the hot plugs of its networks (plug.ts), run
 * one after the other wherever they run — an
 * exec'd meta-CNI, the node daemon, the NRI plugin — so a DEL never runs
 * beside the ADD it undoes.
 *
 * - Across processes: an flock(2) on `<cacheDir>/locks/<containerId>-<ifName>`
 *   (folder 0700, file 0600: root's alone, so no other user can hold it),
 *   taken for the whole invocation. The kernel drops it when its holder
 *   exits, kill -9 included, so a dead holder never blocks anyone. The
 *   holder removes the file before it lets go (no file is left per
 *   attachment); a waiter that then gets the lock on the removed file
 *   notices (the path no longer names the file it holds) and takes the
 *   lock of a fresh one.
 * - Within a process (the daemon, the NRI plugin): a queue per attachment
 *   in front of the flock, and a DEL that arrives while an ADD of the same
 *   attachment runs here aborts that ADD (a runtime sends the DEL only once
 *   it gave up on the ADD): the ADD stops at its next safe point and rolls
 *   back, then the DEL runs.
 *
 * An invocation whose caller gives up while it waits for its turn does not
 * run at all (CNI code 11).
 *
 * @module
 */

import { CniError, ErrorCode, throwIfCancelled, untilCancelled } from "../cni/errors.ts";
import { validateContainerId, validateInterfaceName } from "../cni/env.ts";
import type { Command } from "../cni/types.ts";
import { createKeyedQueue } from "../pkg/async.ts";

/** The folder of the attachment locks under a cache folder. */
export function locksDir(cacheDir: string): string {
  return `${cacheDir.replace(/\/+$/, "")}/locks`;
}

/** The lock file of one attachment. */
export function attachmentLockPath(cacheDir: string, containerId: string, ifName: string): string {
  return `${locksDir(cacheDir)}/${containerId}-${ifName}`;
}

/**
 * What an owner does: a CNI command of the runtime's, or a hot plug of one
 * network into (PLUG) or out of (UNPLUG) the running attachment. A PLUG is
 * cancelled by a DEL as an ADD is.
 */
export type OwnerAction = Command | "PLUG" | "UNPLUG";

/** Invocations of this process, by attachment: waiting or running in turn. */
const queue = createKeyedQueue();

/** The ADD or PLUG running now in this process, by attachment: what aborts it. */
const runningAdds = new Map<string, AbortController>();

/** A held attachment lock. */
interface Held {
  file: Deno.FsFile;
  path: string;
}

function ioError(what: string, err: unknown): CniError {
  return new CniError(ErrorCode.IoFailure, `${what}: ${(err as Error).message ?? err}`);
}

/** True when `path` still names the file `file` is open on. */
function stillNamed(file: Deno.FsFile, path: string): boolean {
  try {
    return Deno.statSync(path).ino === file.statSync().ino;
  } catch {
    return false;
  }
}

/** Takes the attachment's flock (see the module doc). */
async function lockAttachment(path: string, signal: AbortSignal | undefined): Promise<Held> {
  try {
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw ioError(`cannot create the attachment lock folder for ${path}`, err);
  }
  for (;;) {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
    } catch (err) {
      throw ioError(`cannot open attachment lock ${path}`, err);
    }
    try {
      await untilCancelled(() => file.lock(true), signal);
    } catch (err) {
      file.close();
      throw err;
    }
    if (stillNamed(file, path)) return { file, path };
    file.close(); // removed by the holder before us: lock the file there now
  }
}

/** Removes the lock file, then drops the lock (see the module doc). */
function unlock(held: Held): void {
  try {
    Deno.removeSync(held.path);
  } catch {
    // gone already: harmless
  }
  held.file.close(); // closing the descriptor drops the flock
}

/**
 * Runs `fn` as the attachment's only owner (see the module doc). `signal`
 * is the caller's; `fn` gets one that also aborts when a DEL of the same
 * attachment arrives in this process while `fn` runs an ADD.
 */
export async function withAttachment<T>(
  cacheDir: string,
  containerId: string,
  ifName: string,
  command: OwnerAction,
  signal: AbortSignal | undefined,
  fn: (signal: AbortSignal | undefined) => Promise<T>,
): Promise<T> {
  // Both name a file: checked here too, whoever the caller is.
  validateContainerId(containerId);
  validateInterfaceName(ifName);
  const path = attachmentLockPath(cacheDir, containerId, ifName);
  if (command === "DEL") {
    runningAdds.get(path)?.abort(new Error("a DEL of the same attachment arrived"));
  }
  return await queue.run(path, async () => {
    throwIfCancelled(signal);
    const held = await lockAttachment(path, signal);
    const preempt = command === "ADD" || command === "PLUG" ? new AbortController() : undefined;
    if (preempt) runningAdds.set(path, preempt);
    try {
      return await fn(
        preempt ? (signal ? AbortSignal.any([signal, preempt.signal]) : preempt.signal) : signal,
      );
    } finally {
      if (preempt && runningAdds.get(path) === preempt) runningAdds.delete(path);
      unlock(held);
    }
  });
}
