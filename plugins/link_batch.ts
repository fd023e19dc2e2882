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
 * A process that outlives its DELs (the node daemon running whole
 * meta-CNI invocations) can do better with {@link deferLinkDeletion}: the
 * links of a batch are taken out of use and renamed out of the pod's way
 * as they are removed, the DEL answers, and the group is deleted right after,
 * off the JavaScript thread. The runtime's wait then no longer includes
 * the grace periods; what it sees is what DEL promises (the interfaces
 * gone from their names, their addresses and routes no longer in use, the
 * IPAM reservations released), and the kernel finishes the unregistering
 * a few tens of milliseconds later. {@link settleDeferredDeletions} waits
 * for what is still under way, for a clean shutdown.
 *
 * This module loads no kernel code: a meta-CNI that only execs plugins
 * never needs it.
 *
 * @module
 */
import { settlesWithin } from "../pkg/async.ts";

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
  /** Deleted after the DEL answers (see {@link deferLinkDeletion}); failures go here. */
  readonly deferredTo?: DeferredFailureHandler;
  /**
   * Deletes the batch's links: set by whoever adds the first one
   * (link_removal.ts), so this bookkeeping never loads kernel code itself.
   */
  flush?: (batch: RemovalBatch) => Promise<RemovalFailure[]>;
}

/** A link of the batch the kernel would not delete, and why. */
export interface RemovalFailure {
  owner: number;
  error: Error;
}

/** Told of a deferred deletion that failed: the namespace and the error. */
export type DeferredFailureHandler = (netns: string, error: Error) => void;

const open = new Map<string, RemovalBatch>();
/** Deferred deletions under way. */
const pending = new Set<Promise<void>>();
let deferTo: DeferredFailureHandler | undefined;

/**
 * From now on, batches opened in this process delete their links after
 * the DEL has answered (see the module text), until the returned function
 * is called. For processes that outlive their DELs only: one that exits at
 * once would leave the links behind. Failures, which no DEL can report any
 * more, go to `onFailure`.
 */
export function deferLinkDeletion(onFailure: DeferredFailureHandler): () => void {
  deferTo = onFailure;
  return () => {
    if (deferTo === onFailure) deferTo = undefined;
  };
}

/**
 * Waits for the deferred deletions under way, at most `timeoutMs`; true
 * when none is left.
 */
export async function settleDeferredDeletions(timeoutMs: number): Promise<boolean> {
  if (!pending.size) return true;
  return await settlesWithin(Promise.all(pending), timeoutMs);
}

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
    ...(deferTo ? { deferredTo: deferTo } : {}),
  };
  open.set(key, batch);
  return batch;
}

/**
 * Runs `work` in a batch of its own for container `containerId` in `netns`
 * (its links owned by `owner`), closing it also when `work` throws; returns
 * the links the kernel would not delete (see {@link closeRemovalBatch}).
 */
export async function withRemovalBatch(
  containerId: string,
  netns: string,
  work: () => Promise<void>,
  owner = 0,
): Promise<RemovalFailure[]> {
  const batch = openRemovalBatch(containerId, netns);
  batch.owner = owner;
  try {
    await work();
  } catch (err) {
    await closeRemovalBatch(batch);
    throw err;
  }
  return await closeRemovalBatch(batch);
}

/** The open batch of container `containerId` in namespace `netns`, if any. */
export function openBatchOf(containerId: string, netns: string): RemovalBatch | undefined {
  return open.get(batchKey(containerId, netns));
}

/**
 * Leaves the batch; the last user deletes its links (see
 * link_removal.ts). Returns the links that could not be removed, by owner;
 * a deferred batch returns at once with none, its deletion under way.
 */
export async function closeRemovalBatch(batch: RemovalBatch): Promise<RemovalFailure[]> {
  if (--batch.users > 0) return [];
  open.delete(batch.key);
  const flush = batch.flush;
  if (batch.links.size === 0 || !flush) return [];
  const onFailure = batch.deferredTo;
  if (!onFailure) return await flush(batch);
  const report = (error: Error) => {
    try {
      onFailure(batch.netns, error);
    } catch {
      // A handler that throws changes nothing.
    }
  };
  const deletion: Promise<void> = flush(batch).then(
    (failures) => failures.forEach((f) => report(f.error)),
    (err) => report(err instanceof Error ? err : new Error(String(err))),
  ).finally(() => pending.delete(deletion));
  pending.add(deletion);
  return [];
}
