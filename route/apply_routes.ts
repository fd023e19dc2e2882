/**
 * Step three of a network's reconcile: the routes that are missing go in
 * and the changed ones are replaced, through the network's nexthop
 * objects where there can be one.
 *
 * The requests go to the kernel in batches (several to a sendmsg, only
 * failures answered; see `createBatch`): a first sync of thousands of nodes
 * costs a few hundred system calls instead of tens of thousands. A new
 * nexthop is queued before the first route that uses it. When a nexthop
 * cannot be made, its routes are done again one at a time, the way a
 * single change is: with another nexthop, or with the gateway in the route.
 *
 * @module
 */

import { addRoute, type Handle, hasErrno, isExists, replaceRoute } from "../netlink/mod.ts";
import type { NetlinkError } from "../netlink/errors.ts";
import { queueRoute, type RouteSpec } from "../netlink/route.ts";
import { createBatch, type RequestBatch } from "../netlink/socket.ts";
import type { NetworkConfig } from "./config.ts";
import type { DesiredRoute, Problem } from "./desired.ts";
import {
  acquireNexthop,
  connectedDeviceFinder,
  forgetNexthop,
  type NexthopTable,
  releaseNexthop,
  reserveNexthop,
} from "./nexthops.ts";
import type { ChangeCounts, NetworkMirror } from "./mirror.ts";

/** What {@link applyRoutes} works on. */
export interface ApplyContext {
  h: Handle;
  net: NetworkConfig;
  /** A full pass: a route held by another protocol is reported (otherwise retried). */
  full: boolean;
  /** vxlan: the network's device. */
  deviceIndex?: number;
  /** The kernel state, updated as changes succeed. */
  have: NetworkMirror & { nexthops: NexthopTable };
  changes: ChangeCounts;
  report(kind: Problem["kind"], message: string, node?: string): void;
}

function routeSpec(
  r: DesiredRoute,
  deviceIndex: number | undefined,
  nhid: number | undefined,
): RouteSpec {
  const spec: RouteSpec = { dst: r.dst, table: r.table, protocol: r.protocol };
  if (nhid !== undefined) spec.nhid = nhid;
  else {
    spec.gateway = r.gateway;
    if (r.device !== undefined) {
      spec.oif = deviceIndex;
      spec.onlink = true;
    }
  }
  if (r.metric !== undefined) spec.priority = r.metric;
  if (r.mtu !== undefined) spec.mtu = r.mtu;
  return spec;
}

/** A route change sent in a batch, waiting for its outcome. */
interface Queued {
  key: string;
  r: DesiredRoute;
  owned: boolean;
  oldNh?: number;
  nh?: { id: number; index?: number };
  index: number;
}

/** One application's context and whether something failed that a later pass may fix. */
interface Apply {
  ctx: ApplyContext;
  connectedDevice: (gateway: string) => number | undefined;
  retry: boolean;
}

/** Where a new IPv4 route's nexthop leads: the device, and whether on-link. */
function nexthopTarget(a: Apply, r: DesiredRoute): { oif: number; onlink: boolean } | undefined {
  if (r.family !== 4 || !a.ctx.have.nexthops.supported) return undefined;
  const oif = r.device !== undefined ? a.ctx.deviceIndex : a.connectedDevice(r.gateway);
  return oif === undefined ? undefined : { oif, onlink: r.device !== undefined };
}

/** Reports a route the kernel refused (EEXIST of another protocol's route, or any error). */
function refused(a: Apply, r: DesiredRoute, owned: boolean, err: unknown): void {
  const { ctx } = a;
  const net = ctx.net;
  if (isExists(err) && !owned) {
    if (ctx.full) {
      ctx.report(
        "route_conflict",
        `network ${net.name}: route ${r.dst} (table ${r.table}) to node ${r.node} is held by a ` +
          `route of another protocol; left alone`,
        r.node,
      );
    } else {
      // Maybe ours after all (left by another run): the next full pass tells.
      a.retry = true;
    }
    return;
  }
  const hint = hasErrno(err, "ENETUNREACH")
    ? ` (gateway ${r.gateway} is not on a directly connected network)`
    : "";
  ctx.report(
    "kernel",
    `network ${net.name}: route to node ${r.node}: ${(err as Error).message}${hint}`,
    r.node,
  );
  a.retry = true;
}

/** Records the outcome of adding or replacing one route. */
function settle(
  a: Apply,
  key: string,
  r: DesiredRoute,
  owned: boolean,
  oldNh: number | undefined,
  nh: number | undefined,
  err: unknown,
): void {
  const { h, have, changes } = a.ctx;
  if (err === undefined) {
    if (owned) changes.routesReplaced++;
    else changes.routesAdded++;
    const metric = r.metric ?? (r.family === 6 ? 1024 : 0);
    have.routes.set(key, { dst: r.dst, table: r.table, metric, sig: r.sig, nh });
    releaseNexthop(h, have.nexthops, oldNh);
    return;
  }
  releaseNexthop(h, have.nexthops, nh);
  refused(a, r, owned, err);
}

/** One route on its own, synchronously; `replace` also when it is not owned. */
function applyOne(a: Apply, key: string, r: DesiredRoute, replace: boolean): void {
  const { h, net, have } = a.ctx;
  const owned = have.routes.get(key);
  const t = nexthopTarget(a, r);
  const nh = t && acquireNexthop(h, have.nexthops, net.protocol, r.gateway, t.oif, t.onlink);
  let err: unknown;
  try {
    if (owned || replace) replaceRoute(h, routeSpec(r, a.ctx.deviceIndex, nh));
    else addRoute(h, routeSpec(r, a.ctx.deviceIndex, nh));
  } catch (e) {
    err = e;
  }
  settle(a, key, r, owned !== undefined, owned?.nh, nh, err);
}

/** Queues every route under `keys` that is missing or changed (and its nexthop) in `batch`. */
function queueRoutes(
  a: Apply,
  batch: RequestBatch,
  keys: Iterable<string>,
  desired: ReadonlyMap<string, DesiredRoute>,
): Queued[] {
  const { h, net, have } = a.ctx;
  const queued: Queued[] = [];
  for (const key of keys) {
    const r = desired.get(key);
    if (!r) continue;
    const owned = have.routes.get(key);
    if (owned && owned.sig === r.sig) continue;
    const t = nexthopTarget(a, r);
    const nh = t &&
      reserveNexthop(h, have.nexthops, batch, net.protocol, r.gateway, t.oif, t.onlink);
    const spec = routeSpec(r, a.ctx.deviceIndex, nh?.id);
    const index = queueRoute(h, batch, spec, owned ? "replace" : "add");
    queued.push({ key, r, owned: owned !== undefined, oldNh: owned?.nh, nh, index });
  }
  return queued;
}

/**
 * Brings the routes under `keys` to what `desired` wants (keys without a
 * desired route are left to the caller). Returns whether something failed
 * that a later pass may fix.
 */
export function applyRoutes(
  ctx: ApplyContext,
  keys: Iterable<string>,
  desired: ReadonlyMap<string, DesiredRoute>,
): boolean {
  const a: Apply = { ctx, connectedDevice: connectedDeviceFinder(ctx.h), retry: false };
  const nexthops = ctx.have.nexthops;
  const batch: RequestBatch = createBatch(ctx.h);
  const queued = queueRoutes(a, batch, keys, desired);
  const errors: (NetlinkError | undefined)[] = batch.size ? batch.flush() : [];
  for (const q of queued) {
    const nhErr = q.nh?.index === undefined ? undefined : errors[q.nh.index];
    if (!nhErr) {
      settle(a, q.key, q.r, q.owned, q.oldNh, q.nh?.id, errors[q.index]);
      continue;
    }
    // The nexthop was not made: whatever the route did, do it again on its own (if the route
    // went in, it names an id someone else took meanwhile: replace it).
    forgetNexthop(nexthops, q.nh!.id, nhErr);
    applyOne(a, q.key, q.r, errors[q.index] === undefined);
  }
  for (const nh of nexthops.byId.values()) nh.pending = undefined;
  return a.retry;
}
