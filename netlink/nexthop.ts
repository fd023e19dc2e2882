/**
 * Nexthop objects (RTM_*NEXTHOP, Linux 5.3+): a gateway and device with an
 * id of its own, which routes then name (RTA_NH_ID) instead of carrying the
 * gateway themselves. Only single IPv4/IPv6 gateway nexthops are created;
 * groups, blackholes and FDB nexthops are listed but not made.
 *
 * Why they matter: the kernel keeps one shared "fib_info" per distinct
 * IPv4 gateway, found through a hash that does not include the gateway, so
 * thousands of routes each via another gateway on one device cost time
 * quadratic in their number to add. A route naming a nexthop id hashes by
 * that id and adds in constant time.
 *
 * @module
 */

import { AF, afOf, RTNH_F_ONLINK } from "./constants.ts";
import { NetlinkError } from "./errors.ts";
import { formatIp, type IpFamily, parseIp } from "../ipaddr/ip.ts";
import { attr, getU32, parseAttrs, type RequestVerb, VERB_FLAGS } from "./message.ts";
import {
  beginDump,
  beginRequest,
  execute,
  executeDump,
  type Handle,
  type RequestBatch,
} from "./socket.ts";

const RTM_NEWNEXTHOP = 104;
const RTM_DELNEXTHOP = 105;
const RTM_GETNEXTHOP = 106;

const NHA_ID = 1;
const NHA_GROUP = 2;
const NHA_BLACKHOLE = 4;
const NHA_OIF = 5;
const NHA_GATEWAY = 6;
const NHA_FDB = 11;

/** A nexthop object as the kernel reports it. */
export interface Nexthop {
  id: number;
  /** Family of the gateway (undefined for groups and blackholes). */
  family?: IpFamily;
  gateway?: string;
  oif?: number;
  /** Who made it (RTPROT_*). */
  protocol: number;
  flags: number;
  onlink: boolean;
  /** A group, a blackhole or an FDB nexthop: not a plain gateway. */
  special: boolean;
}

/** A single-gateway nexthop to create. */
export interface NexthopSpec {
  id: number;
  gateway: string;
  /** Output device index (the kernel requires one for a gateway). */
  oif: number;
  protocol: number;
  /** Take the gateway as directly reachable on `oif`. */
  onlink?: boolean;
}

function build(h: Handle, spec: NexthopSpec, verb: "add" | "replace"): string {
  const gw = parseIp(spec.gateway);
  const family: IpFamily = gw.length === 4 ? 4 : 6;
  const w = beginRequest(h, RTM_NEWNEXTHOP, VERB_FLAGS[verb as RequestVerb]);
  w.u8(afOf(family));
  w.u8(0); // scope
  w.u8(spec.protocol);
  w.u8(0);
  w.u32(spec.onlink ? RTNH_F_ONLINK : 0);
  w.attrU32(NHA_ID, spec.id);
  w.attrU32(NHA_OIF, spec.oif);
  w.attrBytes(NHA_GATEWAY, gw);
  return `${verb} nexthop ${spec.id} via ${spec.gateway}`;
}

function write(h: Handle, spec: NexthopSpec, verb: "add" | "replace"): void {
  execute(h, build(h, spec, verb));
}

/** Queues the creation of a nexthop in `batch`; its outcome comes with the batch's flush. */
export function queueAddNexthop(h: Handle, batch: RequestBatch, spec: NexthopSpec): number {
  return batch.add(build(h, spec, "add"));
}

/** Creates a nexthop; EEXIST when the id is taken. */
export function addNexthop(h: Handle, spec: NexthopSpec): void {
  write(h, spec, "add");
}

/** Creates a nexthop or changes the one with that id (its routes follow). */
export function replaceNexthop(h: Handle, spec: NexthopSpec): void {
  write(h, spec, "replace");
}

/** Deletes a nexthop, and with it every route that names it. ENOENT when there is none. */
export function delNexthop(h: Handle, id: number): void {
  const w = beginRequest(h, RTM_DELNEXTHOP);
  w.u8(AF.UNSPEC);
  w.u8(0);
  w.u8(0);
  w.u8(0);
  w.u32(0);
  w.attrU32(NHA_ID, id);
  execute(h, `delete nexthop ${id}`);
}

function parseNexthop(payload: Uint8Array): Nexthop | undefined {
  const a = parseAttrs(payload, 8);
  const id = attr.u32(a, NHA_ID);
  if (id === undefined) return undefined;
  const flags = getU32(payload, 4);
  const nh: Nexthop = {
    id,
    protocol: payload[2],
    flags,
    onlink: (flags & RTNH_F_ONLINK) !== 0,
    special: a.has(NHA_GROUP) || a.has(NHA_BLACKHOLE) || a.has(NHA_FDB),
  };
  const oif = attr.u32(a, NHA_OIF);
  if (oif !== undefined) nh.oif = oif;
  const gw = a.get(NHA_GATEWAY);
  if (gw && (gw.length === 4 || gw.length === 16)) {
    nh.family = gw.length === 4 ? 4 : 6;
    nh.gateway = formatIp(gw);
  }
  return nh;
}

/**
 * Every nexthop object in the handle's namespace (`protocol`: only those).
 * A kernel without nexthop objects answers with an error (see
 * {@link nexthopsUnsupported}).
 */
export function listNexthops(h: Handle, filter: { protocol?: number } = {}): Nexthop[] {
  const w = beginDump(h, RTM_GETNEXTHOP);
  // Strict checking wants an all-zero header; filters would be attributes.
  w.u8(AF.UNSPEC);
  w.u8(0);
  w.u8(0);
  w.u8(0);
  w.u32(0);
  return executeDump(h, "list nexthops", (type, payload) => {
    if (type !== RTM_NEWNEXTHOP) return undefined;
    const nh = parseNexthop(payload);
    if (!nh || (filter.protocol !== undefined && nh.protocol !== filter.protocol)) {
      return undefined;
    }
    return nh;
  });
}

/** Whether `err` says the kernel has no nexthop objects (older than 5.3, or built without). */
export function nexthopsUnsupported(err: unknown): boolean {
  return err instanceof NetlinkError &&
    (err.code === "EOPNOTSUPP" || err.code === "EINVAL" || err.code === "EAFNOSUPPORT" ||
      err.code === "ENOTSUP");
}
