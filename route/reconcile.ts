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
  const changes = emptyCounts();
  const problems: Problem[] = [];
  const deviceChanges: string[] = [];
  let retry = false;
  const net = d.net;
  const report = (kind: Problem["kind"], message: string, node?: string) => {
    problems.push({ kind, level: "error", network: net.name, node, message });
  };
  if (d.hold) return { mirror: previous, changes, problems, retry, deviceChanges };

  // The device first: routes and entries hang off it.
  let device = previous?.device;
  if (d.vxlan) {
    const sig = deviceSignature(d.vxlan);
    if (full || !device || device.sig !== sig) {
      try {
        const out = ensureVxlanDevice(h, d.vxlan);
        deviceChanges.push(...out.changes);
        // A new device (or a plugin device made again) has lost whatever hung off the old one.
        if (out.created || (previous?.device && previous.device.index !== out.index)) full = true;
        device = { sig, index: out.index };
      } catch (err) {
        if (err instanceof DeviceMissingError) {
          problems.push({
            kind: "device_missing",
            level: "warn",
            network: net.name,
            message: `network ${net.name}: ${err.message}`,
          });
          return { mirror: previous, changes, problems, retry, deviceChanges };
        }
        const kind = err instanceof DeviceConflictError ? "device_conflict" : "kernel";
        report(
          kind,
          `network ${net.name}: vxlan device ${d.vxlan.device}: ${
            (err as Error).message
          }; network left as it is`,
        );
        return { mirror: previous, changes, problems, retry: true, deviceChanges };
      }
    }
  }
  const deviceIndex = device?.index;
  // Only the touched keys, when the device stayed as it was; otherwise everything.
  const keys = !full && previous && only && device === previous.device ? only : undefined;
  let have: NetworkMirror;
  try {
    have = keys ? previous! : full || !previous ? readKernel(h, d, deviceIndex) : {
      routes: new Map(previous.routes),
      fdb: new Map(previous.fdb),
      neighs: new Map(previous.neighs),
      nexthops: previous.nexthops,
    };
    have.nexthops ??= readNexthops(h, net.protocol);
  } catch (err) {
    report("kernel", `network ${net.name}: reading the kernel failed: ${(err as Error).message}`);
    return { mirror: previous, changes, problems, retry: true, deviceChanges };
  }
  have.device = device;
  const nexthops = have.nexthops!;

  // 1. Routes that should go (or whose key moved) go first.
  for (const key of keys ? keys.routes : [...have.routes.keys()]) {
    const owned = have.routes.get(key);
    if (!owned || d.routes.has(key)) continue;
    try {
      delRoute(h, {
        dst: owned.dst,
        table: owned.table,
        protocol: net.protocol,
        priority: owned.metric,
      });
      changes.routesDeleted++;
    } catch (err) {
      if (!isNotFound(err)) {
        report("kernel", `network ${net.name}: ${(err as Error).message}`);
        retry = true;
        continue;
      }
    }
    have.routes.delete(key);
    releaseNexthop(h, nexthops, owned.nh);
  }

  // 2. vxlan entries: stale ones out, missing ones in, before the routes that use them.
  if (d.vxlan && deviceIndex !== undefined) {
    const link = deviceIndex;
    for (const mac of keys ? keys.fdb : [...have.fdb.keys()]) {
      const dst = have.fdb.get(mac);
      const realMac = mac.split("#")[0];
      if (dst === undefined || d.vxlan.fdb.get(mac) === dst) continue;
      try {
        delFdb(h, { link, mac: realMac, dst });
        changes.fdbChanged++;
      } catch (err) {
        if (!isNotFound(err)) {
          report("kernel", `network ${net.name}: ${(err as Error).message}`);
          retry = true;
          continue;
        }
      }
      have.fdb.delete(mac);
    }
    for (const mac of keys ? keys.fdb : d.vxlan.fdb.keys()) {
      const dst = d.vxlan.fdb.get(mac);
      if (dst === undefined || have.fdb.get(mac) === dst) continue;
      try {
        replaceFdb(h, { link, mac, dst });
        have.fdb.set(mac, dst);
        changes.fdbChanged++;
      } catch (err) {
        report("kernel", `network ${net.name}: ${(err as Error).message}`);
        retry = true;
      }
    }
    for (const ip of keys ? keys.neighs : [...have.neighs.keys()]) {
      const mac = have.neighs.get(ip);
      if (mac === undefined || d.vxlan.neighs.get(ip) === mac) continue;
      if (d.vxlan.neighs.has(ip)) continue; // replaced below
      try {
        delNeigh(h, { link, ip });
        changes.neighChanged++;
      } catch (err) {
        if (!isNotFound(err)) {
          report("kernel", `network ${net.name}: ${(err as Error).message}`);
          retry = true;
          continue;
        }
      }
      have.neighs.delete(ip);
    }
    for (const ip of keys ? keys.neighs : d.vxlan.neighs.keys()) {
      const mac = d.vxlan.neighs.get(ip);
      if (mac === undefined || have.neighs.get(ip) === mac) continue;
      try {
        replaceNeigh(h, { link, ip, mac });
        have.neighs.set(ip, mac);
        changes.neighChanged++;
      } catch (err) {
        report("kernel", `network ${net.name}: ${(err as Error).message}`);
        retry = true;
      }
    }
  }

  // 3. Missing routes in, changed ones replaced.
  const routeCtx = {
    h,
    net,
    full,
    deviceIndex,
    have: Object.assign(have, { nexthops }),
    changes,
    report,
  };
  if (applyRoutes(routeCtx, keys ? keys.routes : d.routes.keys(), d.routes)) retry = true;
  if (full) sweepNexthops(h, nexthops);
  return { mirror: have, changes, problems, retry, deviceChanges };
}
