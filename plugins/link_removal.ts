/**
 * Removing pod-side links, at once or set aside for the meta-CNI's batch
 * (see link_batch.ts), and deleting a batch's links.
 *
 * @module
 */

import {
  closeHandle,
  delLink,
  delLinkGroup,
  delLinkGroupOffThread,
  type Handle,
  hasErrno,
  linkIndex,
  listLinks,
  setLink,
  setLinkGroup,
} from "../netlink/mod.ts";
import { openBatchOf, type RemovalBatch, type RemovalFailure } from "./link_batch.ts";
import { openNetnsForDel } from "./links.ts";

/**
 * The name a link of a deferred batch waits under: free of the pod's
 * names, unique in its namespace (the index is), at most 15 bytes.
 */
export function parkedName(index: number): string {
  return `hy-del-${index.toString(36)}`;
}

/**
 * Removes the pod-side link `ref` (index or name) of container
 * `containerId` from the namespace `pod` is a handle of (path `netns`): set
 * aside for the open batch of that container and namespace, or deleted now
 * when there is none. Fails like a deletion would when the link is not there.
 *
 * In a deferred batch the link is also brought down (which takes its
 * routes with it) and renamed (see {@link parkedName}), so that its name is
 * free again when the DEL answers, before the kernel has deleted it.
 */
export function removePodLink(
  pod: Handle,
  containerId: string,
  netns: string,
  ref: number | string,
): void {
  const batch = openBatchOf(containerId, netns);
  if (!batch) {
    delLink(pod, ref);
    return;
  }
  const index = linkIndex(pod, ref);
  if (!batch.deferredTo) {
    setLinkGroup(pod, index, batch.group);
  } else {
    // The kernel renames only links that are down.
    setLink(pod, index, { up: false, group: batch.group });
    try {
      setLink(pod, index, { name: parkedName(index) });
    } catch {
      // The name is taken (by nothing of ours): the link goes now, the slow way.
      delLink(pod, index);
      return;
    }
  }
  batch.links.set(index, batch.owner);
  batch.flush ??= flushRemovalBatch;
}

function isGone(err: unknown): boolean {
  return hasErrno(err, "ENODEV", "ENOENT");
}

/**
 * Deletes a closed batch's links: the whole group in one request when every
 * link in the group is one of the batch's, one by one otherwise. Links
 * already gone, or a namespace already gone, count as removed. Returns the
 * links that could not be removed, by owner.
 *
 * A deferred batch's group is deleted off the JavaScript thread (see
 * executeOffThread in netlink/socket.ts).
 */
export async function flushRemovalBatch(batch: RemovalBatch): Promise<RemovalFailure[]> {
  let pod: Handle | undefined;
  try {
    pod = openNetnsForDel(batch.netns);
  } catch (err) {
    return [...new Set(batch.links.values())].map((owner) => ({ owner, error: err as Error }));
  }
  if (!pod) return [];
  try {
    return await deleteBatchLinks(pod, batch);
  } finally {
    closeHandle(pod);
  }
}

async function deleteBatchLinks(pod: Handle, batch: RemovalBatch): Promise<RemovalFailure[]> {
  try {
    const members = listLinks(pod).filter((l) => l.group === batch.group);
    if (members.length > 0 && members.every((l) => batch.links.has(l.index))) {
      if (batch.deferredTo) await delLinkGroupOffThread(pod, batch.group);
      else delLinkGroup(pod, batch.group);
      return [];
    }
  } catch {
    // Fall back to deleting them one by one, which reports per link.
  }
  const failures: RemovalFailure[] = [];
  for (const [index, owner] of batch.links) {
    try {
      delLink(pod, index);
    } catch (err) {
      if (!isGone(err)) failures.push({ owner, error: err as Error });
    }
  }
  return failures;
}
