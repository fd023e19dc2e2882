/**
 * Batched removal of pod-side links during a meta-CNI DEL: the bookkeeping.
 *
 * Deleting a link costs the kernel a round of RCU grace periods (≈ 18 ms
 * per link on a typical node), and a pod with three networks pays it three
 * times. Within one meta-CNI DEL (or a rollback), the built-in plugins run
 * in this process one after the other; instead of deleting its pod-side
 * link, each puts it into an interface group private to the DEL
 * (link_removal.ts), and the meta-CNI deletes the whole group in one
 * request at the end, which the kernel unregisters as one batch (≈ 20 ms
 * for all of them).
 *
 * Outside such a DEL (a plugin exec'd on its own, or called in-process by
 * something else) a plugin deletes at once, as before. Either way, once the
 * DEL returns, the links are gone.
 *
 * This module loads no kernel code: a meta-CNI that only execs plugins
 * never needs it.
 *
 * @module
 */

/** Links set aside for one DEL of one container in one namespace. */
export interface RemovalBatch {
  readonly key: string;
  readonly netns: string;
  /** The interface group the links are put in (never a small, likely user-chosen one). */
  readonly group: number;
  /** Which caller the links added from now on belong to (e.g. a delegate's position). */
  owner: number;
  /** Link index → owner. */
  readonly links: Map<number, number>;
  /** DELs of the same container and namespace sharing this batch; the last one out flushes. */
  users: number;
}

/** A link of the batch the kernel would not delete, and why. */
export interface RemovalFailure {
  owner: number;
  error: Error;
}

const open = new Map<string, RemovalBatch>();

function batchKey(containerId: string, netns: string): string {
  return `${containerId}\0${netns}`;
}

function randomGroup(): number {
  const n = crypto.getRandomValues(new Uint32Array(1))[0];
  return 0x10000000 + (n % 0xefffffff);
}

/**
 * Opens (or joins) the batch of container `containerId` in namespace
 * `netns`. Close it with {@link closeRemovalBatch}, also on failure.
 */
export function openRemovalBatch(containerId: string, netns: string): RemovalBatch {
  const key = batchKey(containerId, netns);
  const existing = open.get(key);
  if (existing) {
    existing.users++;
    return existing;
  }
  const batch: RemovalBatch = {
    key,
    netns,
    group: randomGroup(),
    owner: 0,
    links: new Map(),
    users: 1,
  };
  open.set(key, batch);
  return batch;
}

/** The open batch of container `containerId` in namespace `netns`, if any. */
export function openBatchOf(containerId: string, netns: string): RemovalBatch | undefined {
  return open.get(batchKey(containerId, netns));
}

/**
 * Leaves the batch; the last user deletes its links (see
 * link_removal.ts). Returns the links that could not be removed, by owner.
 */
export async function closeRemovalBatch(batch: RemovalBatch): Promise<RemovalFailure[]> {
  if (--batch.users > 0) return [];
  open.delete(batch.key);
  if (batch.links.size === 0) return [];
  // Only built-in plugins add links, and they loaded this module already.
  const { flushRemovalBatch } = await import("./link_removal.ts");
  return flushRemovalBatch(batch);
}
