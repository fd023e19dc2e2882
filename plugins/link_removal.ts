/**
 * Removing pod-side links, at once or set aside for the meta-CNI's batch
 * (see link_batch.ts), and deleting a batch's links.
 *
 * @module
 */

import {
  closeHandle,
  delAddr,
  delLink,
  delLinkGroup,
  delLinkGroupOffThread,
  delRoute,
  type Handle,
  isNotFound,
  linkIndex,
  listAddrs,
  listLinks,
  listRoutes,
  type Route,
  type RouteSpec,
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

/** How {@link removePodLink} sets a link aside in a deferred batch. */
export interface RemovePodLinkOptions {
  /**
   * Park the link without bringing it down, where the kernel renames
   * running links (Linux 6.2 and later): its addresses and routes are
   * deleted instead. For kinds whose close waits a full RCU grace period
   * (a macvlan leaving its port's hash), which a DEL would otherwise wait
   * for; a veth goes down in well under a millisecond and keeps the usual
   * way, which also takes the host side's carrier.
   */
  keepUp?: boolean;
}

/**
 * Removes the pod-side link `ref` (index or name) of container
 * `containerId` from the namespace `pod` is a handle of (path `netns`): set
 * aside for the open batch of that container and namespace, or deleted now
 * when there is none. Fails like a deletion would when the link is not there.
 *
 * In a deferred batch the link is also taken out of use (brought down,
 * which takes its addresses and routes with it, or with `keepUp` stripped
 * of them) and renamed (see {@link parkedName}), so that its name is free
 * again when the DEL answers, before the kernel has deleted it.
 */
export function removePodLink(
  pod: Handle,
  containerId: string,
  netns: string,
  ref: number | string,
  opts: RemovePodLinkOptions = {},
): void {
  const batch = openBatchOf(containerId, netns);
  if (!batch) {
    delLink(pod, ref);
    return;
  }
  const index = linkIndex(pod, ref);
  if (!batch.deferredTo) {
    setLinkGroup(pod, index, batch.group);
  } else if (!parkLink(pod, index, batch.group, opts.keepUp ?? false)) {
    // The name is taken (by nothing of ours): the link goes now, the slow way.
    delLink(pod, index);
    return;
  }
  batch.links.set(index, batch.owner);
  batch.flush ??= flushRemovalBatch;
}

/**
 * Puts link `index` in `group` under its parked name, out of use; false
 * when the name is taken.
 */
function parkLink(pod: Handle, index: number, group: number, keepUp: boolean): boolean {
  if (keepUp && parkRunning(pod, index, group)) return true;
  // Bringing it down takes its addresses and routes out of use, and lets
  // kernels before 6.2 rename it (they rename only links that are down).
  setLink(pod, index, { up: false, group });
  try {
    setLink(pod, index, { name: parkedName(index) });
    return true;
  } catch {
    return false;
  }
}

/**
 * Renames running link `index` into `group` and deletes its addresses and
 * the routes through it. False when the kernel would not rename it, or the
 * routes through it cannot all be deleted one by one (a multipath hop, a
 * nexthop object, a source prefix): the caller then brings it down.
 */
function parkRunning(pod: Handle, index: number, group: number): boolean {
  try {
    setLink(pod, index, { name: parkedName(index), group });
  } catch {
    return false;
  }
  try {
    for (const addr of listAddrs(pod, { link: index })) {
      unlessGone(() => delAddr(pod, index, addr.cidr));
    }
    // IPv4 drops the link's routes with its last address; IPv6 keeps them.
    const routes = listRoutes(pod);
    if (routes.some((r) => usesIndirectly(r, index))) return false;
    for (const r of routes) {
      if (r.oif === index) unlessGone(() => delRoute(pod, specOf(r)));
    }
    return true;
  } catch {
    return false;
  }
}

/** Whether route `r` may go through link `index` without naming it as its only device. */
function usesIndirectly(r: Route, index: number): boolean {
  if (r.nhid !== undefined || r.multipath?.some((hop) => hop.oif === index)) return true;
  return r.oif === index && r.src !== undefined;
}

function specOf(r: Route): RouteSpec {
  return {
    dst: r.dst,
    family: r.family,
    table: r.table,
    type: r.type,
    oif: r.oif,
    ...(r.gateway ? { gateway: r.gateway } : {}),
    ...(r.priority !== undefined ? { priority: r.priority } : {}),
  };
}

/** Runs `work`; what it acts on being gone already is no failure. */
function unlessGone(work: () => void): void {
  try {
    work();
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
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
      if (!isNotFound(err)) failures.push({ owner, error: err as Error });
    }
  }
  return failures;
}
