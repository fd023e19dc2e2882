/**
 * Routes in any table: add, replace, delete, list (filtered by the kernel by
 * table, protocol, type and device), and lookup of the route to an address.
 * Multipath routes are listed but not created.
 *
 * @module
 */

import {
  AF,
  afOf,
  RT_SCOPE,
  RT_TABLE,
  RTA,
  RTAX,
  RTM,
  RTM_F_CLONED,
  RTN,
  RTNH_F_ONLINK,
  RTPROT,
} from "./constants.ts";
import { NetlinkError } from "./errors.ts";
import { formatIp, type IpFamily, parseCidr, parseIp } from "../ipaddr/ip.ts";
import type { LinkRef } from "./link_kinds.ts";
import { linkIndex } from "./link.ts";
import {
  attr,
  getI32,
  getU16,
  getU32,
  parseAttrs,
  type RequestVerb,
  VERB_FLAGS,
  type Writer,
} from "./message.ts";
import {
  beginDump,
  beginRequest,
  execute,
  executeDump,
  type Handle,
  type RequestBatch,
} from "./socket.ts";

/** RTA_NH_ID: the nexthop object a route uses (see nexthop.ts). */
const RTA_NH_ID = 30;

/** One hop of a multipath route. */
export interface NextHop {
  gateway?: string;
  oif: number;
  /** Weight as `ip` prints it (kernel hops + 1). */
  weight: number;
}

/** A route as the kernel reports it. */
export interface Route {
  family: IpFamily;
  /** Destination CIDR; the default route is "0.0.0.0/0" or "::/0". */
  dst: string;
  /** Source-specific routing prefix (RTA_SRC), rare. */
  src?: string;
  gateway?: string;
  /** Output link index. */
  oif?: number;
  /** Preferred source address (RTA_PREFSRC). */
  prefsrc?: string;
  table: number;
  /** RTPROT_* of whoever installed it (2 kernel, 3 boot, 4 static, hydra's router 202). */
  protocol: number;
  /** RT_SCOPE_*. */
  scope: number;
  /** RTN_* (1 unicast, 2 local, 6 blackhole, …). */
  type: number;
  /** Metric. */
  priority?: number;
  /** RTAX_MTU of the route. */
  mtu?: number;
  advmss?: number;
  /** rtm_flags. */
  flags: number;
  /** The gateway is taken as on-link. */
  onlink: boolean;
  multipath?: NextHop[];
  /** The nexthop object the route uses, if it names one. */
  nhid?: number;
}

/** A route to add, replace or delete. */
export interface RouteSpec {
  /** Destination CIDR, or "default" (then the family comes from `gateway` or `family`). */
  dst: string;
  family?: IpFamily;
  gateway?: string;
  /** Output link. */
  oif?: LinkRef;
  /** Preferred source address. */
  prefsrc?: string;
  /** Default main (254). */
  table?: number;
  /** Default RTPROT_BOOT (3), as `ip route add` and the reference plugins use. */
  protocol?: number;
  /**
   * Default as `ip route` picks it: host for local/nat routes, link for
   * unicast routes without a gateway, global otherwise.
   */
  scope?: number;
  /** Default unicast. */
  type?: number;
  /** Metric. */
  priority?: number;
  mtu?: number;
  advmss?: number;
  /** Take the gateway as directly reachable on `oif`. */
  onlink?: boolean;
  /** Use this nexthop object (then no gateway, device or onlink). */
  nhid?: number;
}

/** Which routes {@link listRoutes} returns; the kernel filters when it can. */
export interface RouteFilter {
  family?: IpFamily;
  /** Only this table; default: every table. */
  table?: number;
  protocol?: number;
  type?: number;
  oif?: LinkRef;
}

function resolveDst(spec: RouteSpec): { family: IpFamily; bytes: Uint8Array | null; len: number } {
  if (spec.dst === "default") {
    const family = spec.family ??
      (spec.gateway ? (parseIp(spec.gateway).length === 4 ? 4 : 6) : undefined);
    if (!family) throw new TypeError('route "default" needs a gateway or a family');
    return { family, bytes: null, len: 0 };
  }
  const c = parseCidr(spec.dst);
  return { family: c.family, bytes: c.prefixLen ? c.bytes : null, len: c.prefixLen };
}

function writeRtmsg(
  w: Writer,
  family: number,
  dstLen: number,
  table: number,
  protocol: number,
  scope: number,
  type: number,
  flags: number,
) {
  w.u8(family);
  w.u8(dstLen);
  w.u8(0); // src_len
  w.u8(0); // tos
  w.u8(table < 256 ? table : RT_TABLE.UNSPEC);
  w.u8(protocol);
  w.u8(scope);
  w.u8(type);
  w.u32(flags);
}

function defaultScope(type: number, hasGateway: boolean): number {
  if (type === RTN.LOCAL || type === RTN.NAT) return RT_SCOPE.HOST;
  if (type === RTN.BROADCAST || type === RTN.MULTICAST || type === RTN.ANYCAST) {
    return RT_SCOPE.LINK;
  }
  if ((type === RTN.UNICAST || type === RTN.UNSPEC) && !hasGateway) return RT_SCOPE.LINK;
  return RT_SCOPE.UNIVERSE;
}

/** Builds the request for `spec` in the handle's writer; returns its description for errors. */
function build(h: Handle, spec: RouteSpec, verb: Exclude<RequestVerb, "append">): string {
  const { family, bytes, len } = resolveDst(spec);
  const del = verb === "delete";
  const table = spec.table ?? RT_TABLE.MAIN;
  const type = spec.type ?? (del ? RTN.UNSPEC : RTN.UNICAST);
  const protocol = spec.protocol ?? (del ? RTPROT.UNSPEC : RTPROT.BOOT);
  // On delete, "nowhere" matches any scope.
  const scope = spec.scope ??
    (del ? RT_SCOPE.NOWHERE : defaultScope(type, spec.gateway !== undefined || !!spec.nhid));
  const oif = spec.oif === undefined ? undefined : linkIndex(h, spec.oif);
  const w = beginRequest(h, del ? RTM.DELROUTE : RTM.NEWROUTE, VERB_FLAGS[verb]);
  writeRtmsg(w, afOf(family), len, table, protocol, scope, type, spec.onlink ? RTNH_F_ONLINK : 0);
  w.attrU32(RTA.TABLE, table);
  if (bytes) w.attrBytes(RTA.DST, bytes);
  if (spec.gateway) w.attrBytes(RTA.GATEWAY, parseIp(spec.gateway));
  if (oif !== undefined) w.attrU32(RTA.OIF, oif);
  if (spec.nhid !== undefined) w.attrU32(RTA_NH_ID, spec.nhid);
  if (spec.prefsrc) w.attrBytes(RTA.PREFSRC, parseIp(spec.prefsrc));
  if (spec.priority !== undefined) w.attrU32(RTA.PRIORITY, spec.priority);
  if (spec.mtu !== undefined || spec.advmss !== undefined) {
    const m = w.nestStart(RTA.METRICS);
    if (spec.mtu !== undefined) w.attrU32(RTAX.MTU, spec.mtu);
    if (spec.advmss !== undefined) w.attrU32(RTAX.ADVMSS, spec.advmss);
    w.nestEnd(m);
  }
  return `${verb} route ${spec.dst}${table !== RT_TABLE.MAIN ? ` table ${table}` : ""}`;
}

function write(h: Handle, spec: RouteSpec, verb: Exclude<RequestVerb, "append">): void {
  execute(h, build(h, spec, verb));
}

/**
 * Queues an add, replace or delete of a route in `batch` (see
 * {@link RequestBatch}); its outcome comes with the batch's flush.
 */
export function queueRoute(
  h: Handle,
  batch: RequestBatch,
  spec: RouteSpec,
  verb: "add" | "replace" | "delete",
): number {
  return batch.add(build(h, spec, verb));
}

/** Adds a route. EEXIST when an equal route is there, ENETUNREACH when the gateway is not reachable. */
export function addRoute(h: Handle, spec: RouteSpec): void {
  write(h, spec, "add");
}

/** Adds a route or replaces the one with the same destination, table and metric. */
export function replaceRoute(h: Handle, spec: RouteSpec): void {
  write(h, spec, "replace");
}

/**
 * Deletes a route. Fields left out match anything (protocol, type, scope,
 * gateway, device, metric). ESRCH (IPv4) or ENOENT (IPv6) when none matches.
 */
export function delRoute(h: Handle, spec: RouteSpec): void {
  write(h, spec, "delete");
}

function parseMultipath(b: Uint8Array, family: IpFamily): NextHop[] {
  const hops: NextHop[] = [];
  let off = 0;
  while (off + 8 <= b.length) {
    const len = getU16(b, off);
    if (len < 8 || off + len > b.length) break;
    const hop: NextHop = { oif: getI32(b, off + 4), weight: b[off + 3] + 1 };
    const gw = parseAttrs(b, off + 8, off + len).get(RTA.GATEWAY);
    if (gw && gw.length === (family === 4 ? 4 : 16)) hop.gateway = formatIp(gw);
    hops.push(hop);
    off += (len + 3) & ~3;
  }
  return hops;
}

/** Parses an RTM_NEWROUTE payload; undefined for families other than IPv4/IPv6. */
export function parseRoute(payload: Uint8Array): Route | undefined {
  const fam = payload[0];
  if (fam !== AF.INET && fam !== AF.INET6) return undefined;
  const family: IpFamily = fam === AF.INET ? 4 : 6;
  const a = parseAttrs(payload, 12);
  const flags = getU32(payload, 8);
  const dst = a.get(RTA.DST);
  const dstLen = payload[1];
  const r: Route = {
    family,
    dst: `${formatIp(dst ?? new Uint8Array(family === 4 ? 4 : 16))}/${dstLen}`,
    table: attr.u32(a, RTA.TABLE) ?? payload[4],
    protocol: payload[5],
    scope: payload[6],
    type: payload[7],
    flags,
    onlink: (flags & RTNH_F_ONLINK) !== 0,
  };
  const src = a.get(RTA.SRC);
  if (src) r.src = `${formatIp(src)}/${payload[2]}`;
  const gw = a.get(RTA.GATEWAY);
  if (gw) r.gateway = formatIp(gw);
  const oif = attr.u32(a, RTA.OIF);
  if (oif !== undefined) r.oif = oif;
  const prefsrc = a.get(RTA.PREFSRC);
  if (prefsrc) r.prefsrc = formatIp(prefsrc);
  const prio = attr.u32(a, RTA.PRIORITY);
  if (prio !== undefined) r.priority = prio;
  const metrics = attr.nested(a, RTA.METRICS);
  if (metrics) {
    const mtu = attr.u32(metrics, RTAX.MTU);
    if (mtu !== undefined) r.mtu = mtu;
    const advmss = attr.u32(metrics, RTAX.ADVMSS);
    if (advmss !== undefined) r.advmss = advmss;
  }
  const mp = a.get(RTA.MULTIPATH);
  if (mp) r.multipath = parseMultipath(mp, family);
  const nhid = attr.u32(a, RTA_NH_ID);
  if (nhid !== undefined) r.nhid = nhid;
  return r;
}

/**
 * Routes in the handle's namespace. The kernel filters by table, protocol,
 * type and device, so asking for one protocol's routes stays cheap on a node
 * with many routes. Cached clones (route exceptions) are left out.
 */
export function listRoutes(h: Handle, filter: RouteFilter = {}): Route[] {
  const oif = filter.oif === undefined ? undefined : linkIndex(h, filter.oif);
  const table = filter.table ?? 0;
  const w = beginDump(h, RTM.GETROUTE);
  writeRtmsg(
    w,
    filter.family ? afOf(filter.family) : AF.UNSPEC,
    0,
    table,
    filter.protocol ?? 0,
    0,
    filter.type ?? 0,
    0,
  );
  if (table) w.attrU32(RTA.TABLE, table);
  if (oif !== undefined) w.attrU32(RTA.OIF, oif);
  try {
    return executeDump(h, "list routes", (type, payload) => {
      if (type !== RTM.NEWROUTE) return undefined;
      const r = parseRoute(payload);
      if (!r || r.flags & RTM_F_CLONED) return undefined;
      if (filter.family && r.family !== filter.family) return undefined;
      if (table && r.table !== table) return undefined;
      if (filter.protocol !== undefined && r.protocol !== filter.protocol) return undefined;
      if (filter.type !== undefined && r.type !== filter.type) return undefined;
      if (oif !== undefined && r.oif !== oif) return undefined;
      return r;
    });
  } catch (e) {
    // IPv4 answers ENOENT for a table that does not exist (yet): no routes.
    if (e instanceof NetlinkError && e.code === "ENOENT" && table) return [];
    throw e;
  }
}

/** The route the kernel would use to reach `ip` (like `ip route get`). ENETUNREACH when none. */
export function lookupRoute(h: Handle, ip: string, opts: { oif?: LinkRef } = {}): Route {
  const b = parseIp(ip);
  const family: IpFamily = b.length === 4 ? 4 : 6;
  const oif = opts.oif === undefined ? undefined : linkIndex(h, opts.oif);
  const w = beginRequest(h, RTM.GETROUTE);
  writeRtmsg(w, afOf(family), b.length * 8, 0, 0, 0, 0, 0);
  w.attrBytes(RTA.DST, b);
  if (oif !== undefined) w.attrU32(RTA.OIF, oif);
  let found: Route | undefined;
  execute(h, `get route to ${ip}`, (type, _f, payload) => {
    if (type === RTM.NEWROUTE) found = parseRoute(payload);
  });
  if (!found) throw new NetlinkError(`get route to ${ip}`, 101);
  return found;
}
