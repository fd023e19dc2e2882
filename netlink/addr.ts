/**
 * IPv4 and IPv6 addresses on links: add, replace, delete, list.
 *
 * @module
 */

import { AF, afOf, IFA, IFA_F, RT_SCOPE, RTM } from "./constants.ts";
import { formatIp, type IpFamily, lastAddress, parseCidr, parseIp } from "../ipaddr/ip.ts";
import { linkLabel, type LinkRef } from "./link_kinds.ts";
import { linkIndex } from "./link.ts";
import { attr, getU32, parseAttrs, VERB_FLAGS, type Writer } from "./message.ts";
import { beginDump, beginRequest, execute, executeDump, type Handle } from "./socket.ts";

/** An address as the kernel reports it. */
export interface Addr {
  family: IpFamily;
  /** The local address ("10.1.0.5", "fd00::5"). */
  address: string;
  prefixLen: number;
  /** `address/prefixLen`. */
  cidr: string;
  /** Index of the link the address is on. */
  index: number;
  /** RT_SCOPE_* (0 global, 253 link, 254 host). */
  scope: number;
  /** IFA_F_* bits (PERMANENT, NODAD, TENTATIVE, …). */
  flags: number;
  label?: string;
  broadcast?: string;
  /** Peer address of a point-to-point address. */
  peer?: string;
  /** Seconds left of valid / preferred lifetime; 0xffffffff is forever. */
  validLft?: number;
  preferredLft?: number;
}

/** Options of {@link addAddr}. */
export interface AddrOptions {
  /** IPv4 broadcast address, or true to derive it from the prefix (as `ip addr add … brd +`). */
  broadcast?: string | true;
  /** Skip duplicate address detection (IPv6). */
  nodad?: boolean;
  /** Do not add the prefix route for the address. */
  noprefixroute?: boolean;
  /** More IFA_F_* bits. */
  flags?: number;
  /** Scope; default host for loopback addresses, global otherwise. */
  scope?: number;
  /** IPv4 label ("eth0:1"). */
  label?: string;
  /** Peer address (point-to-point). */
  peer?: string;
  /** Lifetimes in seconds (default forever). */
  validLft?: number;
  preferredLft?: number;
}

/** Which addresses {@link listAddrs} returns. */
export interface AddrFilter {
  link?: LinkRef;
  family?: IpFamily;
}

const FOREVER = 0xffffffff;

function isLoopback(b: Uint8Array): boolean {
  return b.length === 4 ? b[0] === 127 : b.every((x, i) => x === (i === 15 ? 1 : 0));
}

function writeIfaddr(
  w: Writer,
  family: IpFamily,
  prefixLen: number,
  flags: number,
  scope: number,
  index: number,
) {
  w.u8(afOf(family));
  w.u8(prefixLen);
  w.u8(flags & 0xff);
  w.u8(scope);
  w.u32(index);
}

function write(
  h: Handle,
  link: LinkRef,
  cidr: string,
  opts: AddrOptions,
  verb: "add" | "replace",
) {
  const index = linkIndex(h, link);
  const c = parseCidr(cidr);
  let flags = opts.flags ?? 0;
  if (opts.nodad) flags |= IFA_F.NODAD;
  if (opts.noprefixroute) flags |= IFA_F.NOPREFIXROUTE;
  const scope = opts.scope ?? (isLoopback(c.bytes) ? RT_SCOPE.HOST : RT_SCOPE.UNIVERSE);
  const w = beginRequest(h, RTM.NEWADDR, VERB_FLAGS[verb]);
  writeIfaddr(w, c.family, c.prefixLen, flags, scope, index);
  w.attrBytes(IFA.LOCAL, c.bytes);
  w.attrBytes(IFA.ADDRESS, opts.peer ? parseIp(opts.peer) : c.bytes);
  if (flags > 0xff) w.attrU32(IFA.FLAGS, flags);
  if (opts.broadcast !== undefined && c.family === 4) {
    const brd = opts.broadcast === true ? lastAddress(cidr) : opts.broadcast;
    w.attrBytes(IFA.BROADCAST, parseIp(brd));
  }
  if (opts.label) w.attrString(IFA.LABEL, opts.label);
  if (opts.validLft !== undefined || opts.preferredLft !== undefined) {
    const ci = new Uint8Array(16);
    const v = new DataView(ci.buffer);
    v.setUint32(0, opts.preferredLft ?? FOREVER, true);
    v.setUint32(4, opts.validLft ?? FOREVER, true);
    w.attrBytes(IFA.CACHEINFO, ci);
  }
  execute(h, `${verb} address ${cidr} on ${linkLabel(link)}`);
}

/** Adds address `cidr` ("10.1.0.5/24") to `link`. EEXIST when it is already there. */
export function addAddr(h: Handle, link: LinkRef, cidr: string, opts: AddrOptions = {}): void {
  write(h, link, cidr, opts, "add");
}

/** Adds address `cidr` to `link`, or updates it (flags, lifetimes) when present. */
export function replaceAddr(h: Handle, link: LinkRef, cidr: string, opts: AddrOptions = {}): void {
  write(h, link, cidr, opts, "replace");
}

/** Deletes address `cidr` from `link`. EADDRNOTAVAIL when it is not there. */
export function delAddr(h: Handle, link: LinkRef, cidr: string): void {
  const index = linkIndex(h, link);
  const c = parseCidr(cidr);
  const w = beginRequest(h, RTM.DELADDR);
  writeIfaddr(w, c.family, c.prefixLen, 0, 0, index);
  w.attrBytes(IFA.LOCAL, c.bytes);
  w.attrBytes(IFA.ADDRESS, c.bytes);
  execute(h, `delete address ${cidr} from ${linkLabel(link)}`);
}

/** Parses an RTM_NEWADDR payload. */
export function parseAddr(payload: Uint8Array): Addr {
  const family: IpFamily = payload[0] === AF.INET ? 4 : 6;
  const prefixLen = payload[1];
  const a = parseAttrs(payload, 8);
  const local = a.get(IFA.LOCAL);
  const address = a.get(IFA.ADDRESS);
  const mine = local ?? address ?? new Uint8Array(family === 4 ? 4 : 16);
  const text = formatIp(mine);
  const out: Addr = {
    family,
    address: text,
    prefixLen,
    cidr: `${text}/${prefixLen}`,
    index: getU32(payload, 4),
    scope: payload[3],
    flags: attr.u32(a, IFA.FLAGS) ?? payload[2],
  };
  if (local && address && formatIp(address) !== text) out.peer = formatIp(address);
  const label = attr.str(a, IFA.LABEL);
  if (label) out.label = label;
  const brd = a.get(IFA.BROADCAST);
  if (brd) out.broadcast = formatIp(brd);
  const ci = a.get(IFA.CACHEINFO);
  if (ci && ci.length >= 8) {
    out.preferredLft = getU32(ci, 0);
    out.validLft = getU32(ci, 4);
  }
  return out;
}

/** Addresses in the handle's namespace, optionally only of one link and/or family. */
export function listAddrs(h: Handle, filter: AddrFilter = {}): Addr[] {
  const index = filter.link === undefined ? 0 : linkIndex(h, filter.link);
  const w = beginDump(h, RTM.GETADDR);
  w.u8(filter.family ? afOf(filter.family) : AF.UNSPEC);
  w.u8(0);
  w.u8(0);
  w.u8(0);
  w.u32(index);
  return executeDump(h, "list addresses", (type, payload) => {
    if (type !== RTM.NEWADDR) return undefined;
    const addr = parseAddr(payload);
    if (index && addr.index !== index) return undefined;
    if (filter.family && addr.family !== filter.family) return undefined;
    return addr;
  });
}
