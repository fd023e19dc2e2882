/**
 * Neighbours (ARP/NDP entries) and bridge forwarding database (FDB) entries,
 * including the per-MAC remote endpoints of a vxlan device.
 *
 * @module
 */

import { AF, NDA, NTF, NUD, RTM } from "./constants.ts";
import { formatIp, formatMac, type IpFamily, parseIp } from "../ipaddr/ip.ts";
import { parseMac } from "./mac.ts";
import { linkLabel, type LinkRef } from "./link_kinds.ts";
import { linkIndex } from "./link.ts";
import {
  attr,
  getI32,
  getU16,
  parseAttrs,
  type RequestVerb,
  VERB_FLAGS,
  type Writer,
} from "./message.ts";
import { beginDump, beginRequest, execute, executeDump, type Handle } from "./socket.ts";

/** A neighbour entry as the kernel reports it. */
export interface Neigh {
  family: IpFamily;
  /** Link index. */
  index: number;
  ip: string;
  /** Link-layer address; absent while unresolved. */
  mac?: string;
  /** NUD_* state bits (0x80 PERMANENT, 0x02 REACHABLE, 0x04 STALE, …). */
  state: number;
  /** NTF_* flags (0x80 ROUTER, 0x08 PROXY, …). */
  flags: number;
}

/** A neighbour to add, replace or delete. */
export interface NeighSpec {
  link: LinkRef;
  ip: string;
  /** Required to add or replace. */
  mac?: string;
  /** Default NUD_PERMANENT. */
  state?: number;
  /** NTF_* flags, e.g. NTF.ROUTER for an IPv6 router entry. */
  flags?: number;
}

/** Which neighbours {@link listNeighs} returns. */
export interface NeighFilter {
  link?: LinkRef;
  family?: IpFamily;
  /** Only entries on ports of this master. */
  master?: LinkRef;
}

/** A bridge/vxlan FDB entry as the kernel reports it. */
export interface FdbEntry {
  mac: string;
  /** Index of the port (or vxlan device) the entry is on. */
  index: number;
  /** Bridge the port belongs to, for entries held by the bridge. */
  master?: number;
  vlan?: number;
  /** vxlan: the remote endpoint (underlay address). */
  dst?: string;
  /** vxlan: remote UDP port, when not the device's. */
  port?: number;
  /** vxlan: VNI, when not the device's. */
  vni?: number;
  /** vxlan: underlay device index for the remote. */
  via?: number;
  /** NUD_* state (0x80 permanent, 0x40 static/noarp, 0x02 learned/reachable). */
  state: number;
  /** NTF_* flags (0x02 SELF: held by the device itself; 0x04 MASTER: by its bridge). */
  flags: number;
}

/** An FDB entry to add, replace, append or delete. */
export interface FdbSpec {
  /** Bridge port or vxlan device. */
  link: LinkRef;
  mac: string;
  /** vxlan remote endpoint. */
  dst?: string;
  vni?: number;
  port?: number;
  vlan?: number;
  /**
   * Who holds the entry: "self" (the device itself: vxlan, or a bridge
   * device's own table) or "master" (the bridge the port belongs to).
   * Default "self".
   */
  target?: "self" | "master";
  /** Default NUD_PERMANENT. */
  state?: number;
}

/** Which FDB entries {@link listFdb} returns. */
export interface FdbFilter {
  /** Only entries on this port/device. */
  link?: LinkRef;
  /** Only entries of ports of this bridge. */
  master?: LinkRef;
}

function writeNdmsg(w: Writer, family: number, index: number, state: number, flags: number): void {
  w.u8(family);
  w.u8(0);
  w.u16(0);
  w.i32(index);
  w.u16(state);
  w.u8(flags);
  w.u8(0);
}

function writeNeigh(h: Handle, spec: NeighSpec, verb: Exclude<RequestVerb, "append">): void {
  const index = linkIndex(h, spec.link);
  const ip = parseIp(spec.ip);
  const type = verb === "delete" ? RTM.DELNEIGH : RTM.NEWNEIGH;
  const w = beginRequest(h, type, VERB_FLAGS[verb]);
  writeNdmsg(
    w,
    ip.length === 4 ? AF.INET : AF.INET6,
    index,
    type === RTM.DELNEIGH ? 0 : spec.state ?? NUD.PERMANENT,
    spec.flags ?? 0,
  );
  w.attrBytes(NDA.DST, ip);
  if (spec.mac && type !== RTM.DELNEIGH) w.attrBytes(NDA.LLADDR, parseMac(spec.mac));
  execute(h, `${verb} neighbour ${spec.ip} on ${linkLabel(spec.link)}`);
}

/** Adds a neighbour entry (default permanent). EEXIST when one exists for the address. */
export function addNeigh(h: Handle, spec: NeighSpec): void {
  writeNeigh(h, spec, "add");
}

/** Adds or overwrites a neighbour entry. */
export function replaceNeigh(h: Handle, spec: NeighSpec): void {
  writeNeigh(h, spec, "replace");
}

/** Deletes the neighbour entry for `spec.ip` on `spec.link`. ENOENT when absent. */
export function delNeigh(h: Handle, spec: Pick<NeighSpec, "link" | "ip">): void {
  writeNeigh(h, spec, "delete");
}

/** Parses an RTM_NEWNEIGH payload of family IPv4/IPv6. */
export function parseNeigh(payload: Uint8Array): Neigh | undefined {
  const fam = payload[0];
  if (fam !== AF.INET && fam !== AF.INET6) return undefined;
  const a = parseAttrs(payload, 12);
  const dst = a.get(NDA.DST);
  if (!dst) return undefined;
  const n: Neigh = {
    family: fam === AF.INET ? 4 : 6,
    index: getI32(payload, 4),
    ip: formatIp(dst),
    state: getU16(payload, 8),
    flags: payload[10],
  };
  const ll = a.get(NDA.LLADDR);
  if (ll && ll.length) n.mac = formatMac(ll);
  return n;
}

/** Neighbour entries (ARP and NDP), optionally of one link, family or master. */
export function listNeighs(h: Handle, filter: NeighFilter = {}): Neigh[] {
  const index = filter.link === undefined ? undefined : linkIndex(h, filter.link);
  const master = filter.master === undefined ? undefined : linkIndex(h, filter.master);
  const family = filter.family === 4 ? AF.INET : filter.family === 6 ? AF.INET6 : AF.UNSPEC;
  const w = beginDump(h, RTM.GETNEIGH);
  writeNdmsg(w, family, 0, 0, 0);
  if (index !== undefined) w.attrU32(NDA.IFINDEX, index);
  if (master !== undefined) w.attrU32(NDA.MASTER, master);
  return executeDump(h, "list neighbours", (type, payload) => {
    if (type !== RTM.NEWNEIGH) return undefined;
    const n = parseNeigh(payload);
    if (!n || (index !== undefined && n.index !== index)) return undefined;
    if (filter.family && n.family !== filter.family) return undefined;
    return n;
  });
}

function writeFdb(h: Handle, spec: FdbSpec, verb: RequestVerb): void {
  const index = linkIndex(h, spec.link);
  const w = beginRequest(h, verb === "delete" ? RTM.DELNEIGH : RTM.NEWNEIGH, VERB_FLAGS[verb]);
  writeNdmsg(
    w,
    AF.BRIDGE,
    index,
    spec.state ?? NUD.PERMANENT,
    spec.target === "master" ? NTF.MASTER : NTF.SELF,
  );
  w.attrBytes(NDA.LLADDR, parseMac(spec.mac));
  if (spec.dst) w.attrBytes(NDA.DST, parseIp(spec.dst));
  if (spec.vlan !== undefined) w.attrU16(NDA.VLAN, spec.vlan);
  if (spec.port !== undefined) w.attrBe16(NDA.PORT, spec.port);
  if (spec.vni !== undefined) w.attrU32(NDA.VNI, spec.vni);
  const where = spec.dst ? ` dst ${spec.dst}` : "";
  execute(h, `${verb} fdb ${spec.mac}${where} on ${linkLabel(spec.link)}`);
}

/** Adds an FDB entry. EEXIST when the MAC already has an entry. */
export function addFdb(h: Handle, spec: FdbSpec): void {
  writeFdb(h, spec, "add");
}

/** Adds or overwrites the FDB entry for a MAC. */
export function replaceFdb(h: Handle, spec: FdbSpec): void {
  writeFdb(h, spec, "replace");
}

/**
 * Adds another remote for a MAC on a vxlan device (`bridge fdb append`):
 * the all-zero MAC with several remotes floods broadcast and unknown
 * traffic to each of them.
 */
export function appendFdb(h: Handle, spec: FdbSpec): void {
  writeFdb(h, spec, "append");
}

/** Deletes an FDB entry; for vxlan, `dst` picks one remote of several. ENOENT when absent. */
export function delFdb(h: Handle, spec: FdbSpec): void {
  writeFdb(h, spec, "delete");
}

/** Parses an RTM_NEWNEIGH payload of family AF_BRIDGE. */
export function parseFdb(payload: Uint8Array): FdbEntry | undefined {
  if (payload[0] !== AF.BRIDGE) return undefined;
  const a = parseAttrs(payload, 12);
  const ll = a.get(NDA.LLADDR);
  if (!ll) return undefined;
  const e: FdbEntry = {
    mac: formatMac(ll),
    index: getI32(payload, 4),
    state: getU16(payload, 8),
    flags: payload[10],
  };
  const master = attr.u32(a, NDA.MASTER);
  if (master !== undefined) e.master = master;
  const vlan = attr.u16(a, NDA.VLAN);
  if (vlan !== undefined) e.vlan = vlan;
  const dst = a.get(NDA.DST);
  if (dst) e.dst = formatIp(dst);
  const port = attr.be16(a, NDA.PORT);
  if (port !== undefined) e.port = port;
  const vni = attr.u32(a, NDA.VNI);
  if (vni !== undefined) e.vni = vni;
  const via = attr.u32(a, NDA.IFINDEX);
  if (via !== undefined) e.via = via;
  return e;
}

/** FDB entries, optionally of one port/device or of one bridge's ports. */
export function listFdb(h: Handle, filter: FdbFilter = {}): FdbEntry[] {
  const index = filter.link === undefined ? undefined : linkIndex(h, filter.link);
  const master = filter.master === undefined ? undefined : linkIndex(h, filter.master);
  const w = beginDump(h, RTM.GETNEIGH);
  writeNdmsg(w, AF.BRIDGE, 0, 0, 0);
  if (index !== undefined) w.attrU32(NDA.IFINDEX, index);
  if (master !== undefined) w.attrU32(NDA.MASTER, master);
  return executeDump(h, "list fdb", (type, payload) => {
    if (type !== RTM.NEWNEIGH) return undefined;
    const e = parseFdb(payload);
    if (!e || (index !== undefined && e.index !== index)) return undefined;
    return e;
  });
}
