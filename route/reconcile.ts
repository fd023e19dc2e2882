/**
 * Applies a network's desired state to the kernel, changing only what
 * differs and only what the network owns: routes carrying its protocol
 * number, and the FDB and permanent neighbour entries of its own vxlan
 * device.
 *
 * A full pass reads the kernel (a dump filtered by protocol, so other
 * routes are never even looked at) and adopts whatever a previous run left.
 * An incremental pass compares with what the last pass left instead (the
 * mirror), so a single node change costs a handful of syscalls, not a dump.
 * Periodic full passes repair anything changed behind the router's back.
 *
 * A new route is added exclusively: if a route of another protocol holds
 * the same table, destination and metric, the kernel refuses, and that is
 * reported rather than overwritten.
 *
 * @module
 */

import {
  delFdb,
  delNeigh,
  delRoute,
  type Handle,
  isNotFound,
  listFdb,
  listNeighs,
  listRoutes,
  NTF,
  NUD,
  replaceFdb,
  replaceNeigh,
  type Route,
} from "../netlink/mod.ts";
import { type DesiredNetwork, type Problem, routeKey, routeSignature } from "./desired.ts";
import type { ChangedKeys } from "./incremental.ts";
import { readNexthops, releaseNexthop, sweepNexthops } from "./nexthops.ts";
import { applyRoutes } from "./apply_routes.ts";
import type { ChangeCounts, NetworkMirror } from "./mirror.ts";
import {
  DeviceConflictError,
  DeviceMissingError,
  deviceSignature,
  ensureVxlanDevice,
} from "./vxlan_device.ts";

/** Outcome of {@link reconcileNetwork}. */
export interface ReconcileResult {
  /** The new mirror (undefined when the network was held and had none). */
  mirror?: NetworkMirror;
  changes: ChangeCounts;
  problems: Problem[];
  /** Something failed in a way a later full pass may fix. */
  retry: boolean;
  /** Log lines for changes of the device. */
  deviceChanges: string[];
}

const ZERO_MAC = "00:00:00:00:00:00";

function emptyCounts(): ChangeCounts {
  return { routesAdded: 0, routesReplaced: 0, routesDeleted: 0, fdbChanged: 0, neighChanged: 0 };
}

/** The kernel route's signature, comparable with {@link DesiredRoute.sig}. */
function kernelSig(r: Route, deviceIndex: number | undefined): string {
  if (r.multipath || r.type !== 1 || !r.gateway) return `other:${r.type}`;
  const viaDevice = deviceIndex !== undefined && r.oif === deviceIndex && r.onlink;
  if (deviceIndex !== undefined && !viaDevice) return `elsewhere:${r.oif}`;
  return routeSignature(r.gateway, viaDevice, r.mtu);
}

function metricOf(r: Route): number {
  return r.priority ?? 0;
}

/** Reads the network's routes, FDB and neighbours from the kernel. */
function readKernel(
  h: Handle,
  d: DesiredNetwork,
  deviceIndex: number | undefined,
): NetworkMirror {
  const nexthops = readNexthops(h, d.net.protocol);
  const mirror: NetworkMirror = { routes: new Map(), fdb: new Map(), neighs: new Map(), nexthops };
  for (const r of listRoutes(h, { protocol: d.net.protocol })) {
    const key = routeKey(r.table, r.dst, r.family, r.priority);
    const nh = r.nhid === undefined ? undefined : nexthops.byId.get(r.nhid);
    if (nh) {
      // The nexthop says where the route leads, whether or not the dump repeats it.
      nh.refs++;
      r.gateway = nh.gateway;
      r.oif = nh.oif;
      r.onlink = nh.onlink;
    }
    mirror.routes.set(key, {
      dst: r.dst,
      table: r.table,
      metric: metricOf(r),
      sig: kernelSig(r, deviceIndex),
      nh: nh?.id,
    });
  }
  if (deviceIndex !== undefined) {
    for (const e of listFdb(h, { link: deviceIndex })) {
      if (!e.dst || e.mac === ZERO_MAC || !(e.flags & NTF.SELF) || e.vlan !== undefined) continue;
      // Several remotes for one MAC: keep one, the rest is removed by the diff.
      if (mirror.fdb.has(e.mac)) mirror.fdb.set(`${e.mac}#${e.dst}`, e.dst);
      else mirror.fdb.set(e.mac, e.dst);
    }
    for (const n of listNeighs(h, { link: deviceIndex })) {
      if (n.state & NUD.PERMANENT) mirror.neighs.set(n.ip, n.mac ?? "");
    }
  }
  return mirror;
}

/** One pass over one network: what it changed and found so far. */
interface Pass {
  h: Handle;
  d: DesiredNetwork;
  changes: ChangeCounts;
  problems: Problem[];
  deviceChanges: string[];
  retry: boolean;
}

/** Records a kernel refusal (retried by a later pass). */
function kernelProblem(pass: Pass, err: unknown): void {
  problem(pass, "kernel", `network ${pass.d.net.name}: ${(err as Error).message}`);
  pass.retry = true;
}

function problem(pass: Pass, kind: Problem["kind"], message: string, node?: string): void {
  pass.problems.push({ kind, level: "error", network: pass.d.net.name, node, message });
}

function outcome(pass: Pass, mirror: NetworkMirror | undefined): ReconcileResult {
  const { changes, problems, retry, deviceChanges } = pass;
  return { mirror, changes, problems, retry, deviceChanges };
}

/**
 * Makes the network's vxlan device as it should be (when it is not known to
 * be). Returns the device and whether a full pass is now needed (a device
 * made anew lost whatever hung off the old one), or the pass's outcome when
 * the network must be left alone.
 */
function ensureDevice(
  pass: Pass,
  previous: NetworkMirror | undefined,
  full: boolean,
): { device?: NetworkMirror["device"]; full: boolean } | ReconcileResult {
  const vxlan = pass.d.vxlan!;
  const net = pass.d.net;
  const sig = deviceSignature(vxlan);
  const known = previous?.device;
  if (!full && known && known.sig === sig) return { device: known, full };
  try {
    const out = ensureVxlanDevice(pass.h, vxlan);
    pass.deviceChanges.push(...out.changes);
    const renewed = out.created || (known !== undefined && known.index !== out.index);
    return { device: { sig, index: out.index }, full: full || renewed };
  } catch (err) {
    if (err instanceof DeviceMissingError) {
      pass.problems.push({
        kind: "device_missing",
        level: "warn",
        network: net.name,
        message: `network ${net.name}: ${err.message}`,
      });
      return outcome(pass, previous);
    }
    const kind = err instanceof DeviceConflictError ? "device_conflict" : "kernel";
    problem(
      pass,
      kind,
      `network ${net.name}: vxlan device ${vxlan.device}: ${
        (err as Error).message
      }; network left as it is`,
    );
    pass.retry = true;
    return outcome(pass, previous);
  }
}

/** What to compare with: the kernel (full or no mirror), else a copy of the mirror. */
function currentState(
  h: Handle,
  d: DesiredNetwork,
  previous: NetworkMirror | undefined,
  full: boolean,
  deviceIndex: number | undefined,
): NetworkMirror {
  if (full || !previous) return readKernel(h, d, deviceIndex);
  return {
    routes: new Map(previous.routes),
    fdb: new Map(previous.fdb),
    neighs: new Map(previous.neighs),
    nexthops: previous.nexthops,
  };
}

/** Step 1: routes that should go (or whose key moved) go first. */
function deleteRoutes(pass: Pass, have: NetworkMirror, keys: Iterable<string>): void {
  const { h, d } = pass;
  for (const key of keys) {
    const owned = have.routes.get(key);
    if (!owned || d.routes.has(key)) continue;
    try {
      delRoute(h, {
        dst: owned.dst,
        table: owned.table,
        protocol: d.net.protocol,
        priority: owned.metric,
      });
      pass.changes.routesDeleted++;
    } catch (err) {
      if (!isNotFound(err)) {
        kernelProblem(pass, err);
        continue;
      }
    }
    have.routes.delete(key);
    releaseNexthop(h, have.nexthops!, owned.nh);
  }
}

/** Step 2a: FDB entries (MAC → remote) of the vxlan device: stale ones out, missing ones in. */
function syncFdb(pass: Pass, have: NetworkMirror, link: number, keys?: ChangedKeys): void {
  const want = pass.d.vxlan!.fdb;
  for (const mac of keys ? keys.fdb : [...have.fdb.keys()]) {
    const dst = have.fdb.get(mac);
    if (dst === undefined || want.get(mac) === dst) continue;
    try {
      delFdb(pass.h, { link, mac: mac.split("#")[0], dst });
      pass.changes.fdbChanged++;
    } catch (err) {
      if (!isNotFound(err)) {
        kernelProblem(pass, err);
        continue;
      }
    }
    have.fdb.delete(mac);
  }
  for (const mac of keys ? keys.fdb : want.keys()) {
    const dst = want.get(mac);
    if (dst === undefined || have.fdb.get(mac) === dst) continue;
    try {
      replaceFdb(pass.h, { link, mac, dst });
      have.fdb.set(mac, dst);
      pass.changes.fdbChanged++;
    } catch (err) {
      kernelProblem(pass, err);
    }
  }
}

/** Step 2b: permanent neighbours (IP → MAC) of the vxlan device: stale ones out, missing ones in. */
function syncNeighs(pass: Pass, have: NetworkMirror, link: number, keys?: ChangedKeys): void {
  const want = pass.d.vxlan!.neighs;
  for (const ip of keys ? keys.neighs : [...have.neighs.keys()]) {
    const mac = have.neighs.get(ip);
    if (mac === undefined || want.get(ip) === mac) continue;
    if (want.has(ip)) continue; // replaced below
    try {
      delNeigh(pass.h, { link, ip });
      pass.changes.neighChanged++;
    } catch (err) {
      if (!isNotFound(err)) {
        kernelProblem(pass, err);
        continue;
      }
    }
    have.neighs.delete(ip);
  }
  for (const ip of keys ? keys.neighs : want.keys()) {
    const mac = want.get(ip);
    if (mac === undefined || have.neighs.get(ip) === mac) continue;
    try {
      replaceNeigh(pass.h, { link, ip, mac });
      have.neighs.set(ip, mac);
      pass.changes.neighChanged++;
    } catch (err) {
      kernelProblem(pass, err);
    }
  }
}

/**
 * Brings one network's kernel state to `d`. `full` reads the kernel first;
 * otherwise `previous` (the last mirror) stands for the kernel. With
 * `only` (and not full), just those keys are compared and `previous` is
 * updated in place: a change of one node costs a few syscalls, however
 * many nodes there are. Never throws for kernel refusals: they come back
 * as problems with `retry` set.
 */
export function reconcileNetwork(
  h: Handle,
  d: DesiredNetwork,
  previous: NetworkMirror | undefined,
  full: boolean,
  only?: ChangedKeys,
): ReconcileResult {
  const pass: Pass = {
    h,
    d,
    changes: emptyCounts(),
    problems: [],
    deviceChanges: [],
    retry: false,
  };
  if (d.hold) return outcome(pass, previous);

  // The device first: routes and entries hang off it.
  let device = previous?.device;
  if (d.vxlan) {
    const ensured = ensureDevice(pass, previous, full);
    if ("changes" in ensured) return ensured;
    device = ensured.device;
    full = ensured.full;
  }
  const deviceIndex = device?.index;
  // Only the touched keys, when the device stayed as it was; otherwise everything.
  const keys = !full && previous && only && device === previous.device ? only : undefined;
  let have: NetworkMirror;
  try {
    have = keys ? previous! : currentState(h, d, previous, full, deviceIndex);
    have.nexthops ??= readNexthops(h, d.net.protocol);
  } catch (err) {
    problem(
      pass,
      "kernel",
      `network ${d.net.name}: reading the kernel failed: ${(err as Error).message}`,
    );
    pass.retry = true;
    return outcome(pass, previous);
  }
  have.device = device;
  const nexthops = have.nexthops!;

  deleteRoutes(pass, have, keys ? keys.routes : [...have.routes.keys()]);
  // vxlan entries before the routes that use them.
  if (d.vxlan && deviceIndex !== undefined) {
    syncFdb(pass, have, deviceIndex, keys);
    syncNeighs(pass, have, deviceIndex, keys);
  }
  // 3. Missing routes in, changed ones replaced.
  const routeCtx = {
    h,
    net: d.net,
    full,
    deviceIndex,
    have: Object.assign(have, { nexthops }),
    changes: pass.changes,
    report: (kind: Problem["kind"], message: string, node?: string) =>
      problem(pass, kind, message, node),
  };
  if (applyRoutes(routeCtx, keys ? keys.routes : d.routes.keys(), d.routes)) pass.retry = true;
  if (full) sweepNexthops(h, nexthops);
  return outcome(pass, have);
}
