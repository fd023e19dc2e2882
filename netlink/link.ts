/**
 * Links: create (veth, bridge, macvlan, vxlan, vlan, ipvlan, dummy, tap),
 * change (up/down, MTU, MAC, master, name, alias, promiscuous mode, netns,
 * bridge-port settings such as hairpin), delete, get and list.
 *
 * @module
 */

import {
  AF,
  IFF,
  IFLA,
  IFLA_INFO,
  OPERSTATES,
  RTEXT_FILTER_SKIP_STATS,
  RTEXT_FILTER_VF,
  RTM,
} from "./constants.ts";
import { NetlinkError } from "./errors.ts";
import { closeFd } from "./ffi.ts";
import { type BridgePortInfo, parseBridgePort, writeBridgePort } from "./bridge_port.ts";
import { formatMac } from "../ipaddr/ip.ts";
import { parseMac } from "./mac.ts";
import {
  type KindInfo,
  type LinkNetns,
  type LinkRef,
  type LinkSpec,
  parseKindData,
  writeIfinfo,
  writeKindData,
  writeNetnsAttr,
} from "./link_kinds.ts";
import {
  attr,
  getI32,
  getU32,
  NLM_F_CREATE,
  NLM_F_EXCL,
  parseAttrs,
  type Writer,
} from "./message.ts";
import { beginDump, beginRequest, execute, executeDump, type Handle } from "./socket.ts";
import { createTap } from "./tap.ts";

/** A link as the kernel reports it. Kind-specific data sits under `vxlan`, `bridge`, … */
export interface Link extends KindInfo {
  index: number;
  name: string;
  /** IFLA_INFO_KIND ("veth", "bridge", …); undefined for physical and loopback devices. */
  kind?: string;
  /** Raw IFF_* flags. */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Carrier present (IFF_LOWER_UP). */
  lowerUp: boolean;
  mtu: number;
  /** Hardware address, "aa:bb:cc:dd:ee:ff". */
  mac?: string;
  broadcast?: string;
  /** Permanent hardware address, when the device has one. */
  permanentMac?: string;
  /** Index of the master (bridge) this link is enslaved to. */
  master?: number;
  /** IFLA_LINK: the lower device, or the veth peer; in namespace `linkNetnsId` when set. */
  link?: number;
  /** Namespace id (as seen from this namespace) where `link` lives. */
  linkNetnsId?: number;
  /** Operational state as `ip` prints it: "UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN", … */
  operstate: string;
  alias?: string;
  /** Promiscuity counter (> 0 means promiscuous). */
  promiscuity: number;
  /** Interface group (IFLA_GROUP; 0 unless set). */
  group?: number;
  txqlen?: number;
  minMtu?: number;
  maxMtu?: number;
  /** Kind of the master when enslaved ("bridge"). */
  slaveKind?: string;
  /** Bridge-port settings when enslaved to a bridge. */
  bridgePort?: BridgePortInfo;
}

/** Changes {@link setLink} applies in one request; unset keys stay as they are. */
export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** Master to enslave to; null releases from the current master. */
  master?: LinkRef | null;
  /** New name; kernels before 6.2 refuse to rename a link that is up (EBUSY). */
  name?: string;
  /** Alias (ifalias); "" clears it. */
  alias?: string;
  promisc?: boolean;
  allmulti?: boolean;
  /** Turn ARP off (IFF_NOARP) or on. */
  arp?: boolean;
  txqlen?: number;
  /** Move into this namespace (with `name`: under that name there). */
  netns?: LinkNetns;
  /** Interface group (IFLA_GROUP; see link_group.ts). */
  group?: number;
}

const EXT_MASK = RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS;
const EINVAL = 22;
const encoder = new TextEncoder();

function describe(ref: LinkRef): string {
  return typeof ref === "number" ? `#${ref}` : JSON.stringify(ref);
}

/**
 * True when `name` is a name the kernel accepts for an interface: 1–15
 * bytes, not "." or "..", without "/", ":" or whitespace.
 */
export function isValidIfname(name: string): boolean {
  return name.length > 0 && encoder.encode(name).length <= 15 && name !== "." && name !== ".." &&
    !/[/:\s]/.test(name);
}

function checkIfname(name: string, op: string): void {
  if (!isValidIfname(name)) {
    throw new NetlinkError(
      `${op}: invalid interface name ${JSON.stringify(name)} (1-15 bytes, no "/", ":" or spaces)`,
      EINVAL,
    );
  }
}

/** Writes the ifinfomsg and name attribute that identify `ref`. */
function writeTarget(
  w: Writer,
  ref: LinkRef,
  family: number = AF.UNSPEC,
  flags = 0,
  change = 0,
): void {
  writeIfinfo(w, family, typeof ref === "number" ? ref : 0, flags, change);
  if (typeof ref === "string") w.attrString(IFLA.IFNAME, ref);
}

/** Parses an RTM_NEWLINK payload (ifinfomsg + attributes). */
export function parseLink(payload: Uint8Array): Link {
  const flags = getU32(payload, 8);
  const a = parseAttrs(payload, 16);
  const operstate = attr.u8(a, IFLA.OPERSTATE) ?? 0;
  const link: Link = {
    index: getI32(payload, 4),
    name: attr.str(a, IFLA.IFNAME) ?? "",
    flags,
    up: (flags & IFF.UP) !== 0,
    lowerUp: (flags & IFF.LOWER_UP) !== 0,
    mtu: attr.u32(a, IFLA.MTU) ?? 0,
    operstate: OPERSTATES[operstate] ?? String(operstate),
    promiscuity: attr.u32(a, IFLA.PROMISCUITY) ?? 0,
  };
  const mac = a.get(IFLA.ADDRESS);
  if (mac && mac.length) link.mac = formatMac(mac);
  const brd = a.get(IFLA.BROADCAST);
  if (brd && brd.length) link.broadcast = formatMac(brd);
  const perm = a.get(IFLA.PERM_ADDRESS);
  if (perm && perm.some((x) => x !== 0)) link.permanentMac = formatMac(perm);
  const opt = (
    k: "master" | "link" | "linkNetnsId" | "txqlen" | "minMtu" | "maxMtu" | "group",
    t: number,
  ) => {
    const v = attr.u32(a, t);
    if (v !== undefined) link[k] = v;
  };
  opt("master", IFLA.MASTER);
  opt("link", IFLA.LINK);
  opt("linkNetnsId", IFLA.LINK_NETNSID);
  opt("txqlen", IFLA.TXQLEN);
  opt("minMtu", IFLA.MIN_MTU);
  opt("maxMtu", IFLA.MAX_MTU);
  opt("group", IFLA.GROUP);
  if (link.link === link.index && link.linkNetnsId === undefined) delete link.link;
  const alias = attr.str(a, IFLA.IFALIAS);
  if (alias) link.alias = alias;
  const info = attr.nested(a, IFLA.LINKINFO);
  if (info) {
    const kind = attr.str(info, IFLA_INFO.KIND);
    if (kind) {
      link.kind = kind;
      const data = attr.nested(info, IFLA_INFO.DATA);
      if (data) Object.assign(link, parseKindData(kind, data));
    }
    const slaveKind = attr.str(info, IFLA_INFO.SLAVE_KIND);
    if (slaveKind) {
      link.slaveKind = slaveKind;
      const sdata = attr.nested(info, IFLA_INFO.SLAVE_DATA);
      if (slaveKind === "bridge" && sdata) link.bridgePort = parseBridgePort(sdata);
    }
  }
  return link;
}

/** The link `ref` (index or name); throws NetlinkError ENODEV when there is none. */
export function getLink(h: Handle, ref: LinkRef): Link {
  const w = beginRequest(h, RTM.GETLINK);
  writeTarget(w, ref);
  w.attrU32(IFLA.EXT_MASK, EXT_MASK);
  let found: Link | undefined;
  execute(h, `get link ${describe(ref)}`, (type, _flags, payload) => {
    if (type === RTM.NEWLINK) found = parseLink(payload);
  });
  if (!found) throw new NetlinkError(`get link ${describe(ref)}`, 19);
  return found;
}

/** The link `ref`, or undefined when there is none (other errors still throw). */
export function findLink(h: Handle, ref: LinkRef): Link | undefined {
  try {
    return getLink(h, ref);
  } catch (e) {
    if (e instanceof NetlinkError && e.code === "ENODEV") return undefined;
    throw e;
  }
}

/** The index of link `ref`: a number is returned as is, a name is looked up. */
export function linkIndex(h: Handle, ref: LinkRef): number {
  return typeof ref === "number" ? ref : getLink(h, ref).index;
}

/** Which links {@link listLinks} returns. */
export interface LinkFilter {
  /** Only links of this kind ("veth", "bridge", …). */
  kind?: string;
  /** Only links enslaved to this master. */
  master?: LinkRef;
}

/** Every link in the handle's namespace, optionally filtered (by the kernel). */
export function listLinks(h: Handle, filter: LinkFilter = {}): Link[] {
  const master = filter.master === undefined ? undefined : linkIndex(h, filter.master);
  const w = beginDump(h, RTM.GETLINK);
  writeIfinfo(w, AF.UNSPEC, 0);
  w.attrU32(IFLA.EXT_MASK, EXT_MASK);
  if (master !== undefined) w.attrU32(IFLA.MASTER, master);
  if (filter.kind) {
    const info = w.nestStart(IFLA.LINKINFO);
    w.attrString(IFLA_INFO.KIND, filter.kind);
    w.nestEnd(info);
  }
  return executeDump(h, "list links", (type, payload) => {
    if (type !== RTM.NEWLINK) return undefined;
    const link = parseLink(payload);
    if (filter.kind !== undefined && link.kind !== filter.kind) return undefined;
    if (master !== undefined && link.master !== master) return undefined;
    return link;
  });
}

/**
 * Creates a link. Fails with EEXIST when the name is taken (in the namespace
 * it is created in), ENODEV when the parent is missing. Returns nothing: the
 * link may live in another namespace; look it up with a handle there.
 */
export function addLink(h: Handle, spec: LinkSpec): void {
  const op = `add ${spec.kind} link ${JSON.stringify(spec.name)}`;
  checkIfname(spec.name, op);
  if (spec.kind === "veth") checkIfname(spec.peer.name, op);
  if (spec.kind === "tap") {
    if (spec.netns !== undefined) {
      throw new NetlinkError(
        `${op}: open a handle in the target namespace instead of netns`,
        EINVAL,
      );
    }
    createTap(h.netns, spec.name, spec);
    const { name: _n, kind: _k, netns: _ns, ...rest } = spec;
    const changes: LinkChanges = {};
    if (rest.mtu !== undefined) changes.mtu = rest.mtu;
    if (rest.mac !== undefined) changes.mac = rest.mac;
    if (rest.txqlen !== undefined) changes.txqlen = rest.txqlen;
    if (rest.master !== undefined) changes.master = rest.master;
    if (rest.up) changes.up = true;
    if (Object.keys(changes).length) setLink(h, spec.name, changes);
    return;
  }
  const parentRef = "parent" in spec ? spec.parent : undefined;
  const parent = parentRef === undefined ? undefined : linkIndex(h, parentRef);
  const master = spec.master === undefined ? undefined : linkIndex(h, spec.master);
  const opened: number[] = [];
  try {
    const w = beginRequest(h, RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    writeIfinfo(w, AF.UNSPEC, 0, spec.up ? IFF.UP : 0, spec.up ? IFF.UP : 0);
    w.attrString(IFLA.IFNAME, spec.name);
    if (spec.mtu) w.attrU32(IFLA.MTU, spec.mtu);
    if (spec.mac) w.attrBytes(IFLA.ADDRESS, parseMac(spec.mac));
    if (spec.txqlen !== undefined) w.attrU32(IFLA.TXQLEN, spec.txqlen);
    if (master !== undefined) w.attrU32(IFLA.MASTER, master);
    if (parent !== undefined && spec.kind !== "vxlan") w.attrU32(IFLA.LINK, parent);
    if (spec.netns !== undefined) writeNetnsAttr(w, spec.netns, opened);
    const info = w.nestStart(IFLA.LINKINFO);
    w.attrString(IFLA_INFO.KIND, spec.kind);
    writeKindData(w, spec, parent, opened);
    w.nestEnd(info);
    execute(h, op);
  } finally {
    for (const fd of opened) closeFd(fd);
  }
}

/** Deletes link `ref` (for a veth pair, both ends go). ENODEV when it is not there. */
export function delLink(h: Handle, ref: LinkRef): void {
  const w = beginRequest(h, RTM.DELLINK);
  writeTarget(w, ref);
  execute(h, `delete link ${describe(ref)}`);
}

/** Applies `changes` to link `ref` in one request. */
export function setLink(h: Handle, ref: LinkRef, changes: LinkChanges): void {
  if (changes.name !== undefined) checkIfname(changes.name, `rename link ${describe(ref)}`);
  // Renaming needs the index: the name attribute then carries the new name.
  const target = changes.name !== undefined && typeof ref === "string" ? linkIndex(h, ref) : ref;
  const master = changes.master === undefined || changes.master === null
    ? changes.master
    : linkIndex(h, changes.master);
  let flags = 0;
  let change = 0;
  const flag = (bit: number, on: boolean | undefined) => {
    if (on === undefined) return;
    change |= bit;
    if (on) flags |= bit;
  };
  flag(IFF.UP, changes.up);
  flag(IFF.PROMISC, changes.promisc);
  flag(IFF.ALLMULTI, changes.allmulti);
  flag(IFF.NOARP, changes.arp === undefined ? undefined : !changes.arp);
  const opened: number[] = [];
  try {
    const w = beginRequest(h, RTM.NEWLINK);
    writeIfinfo(w, AF.UNSPEC, typeof target === "number" ? target : 0, flags, change);
    if (typeof target === "string") w.attrString(IFLA.IFNAME, target);
    else if (changes.name !== undefined) w.attrString(IFLA.IFNAME, changes.name);
    if (changes.mtu !== undefined) w.attrU32(IFLA.MTU, changes.mtu);
    if (changes.mac !== undefined) w.attrBytes(IFLA.ADDRESS, parseMac(changes.mac));
    if (changes.txqlen !== undefined) w.attrU32(IFLA.TXQLEN, changes.txqlen);
    if (changes.group !== undefined) w.attrU32(IFLA.GROUP, changes.group);
    if (master !== undefined) w.attrU32(IFLA.MASTER, master ?? 0);
    if (changes.alias !== undefined) w.attrBytes(IFLA.IFALIAS, encoder.encode(changes.alias));
    if (changes.netns !== undefined) writeNetnsAttr(w, changes.netns, opened);
    execute(h, `set link ${describe(ref)}`);
  } finally {
    for (const fd of opened) closeFd(fd);
  }
}

/** Brings link `ref` up. */
export function setLinkUp(h: Handle, ref: LinkRef): void {
  setLink(h, ref, { up: true });
}

/** Brings link `ref` down. */
export function setLinkDown(h: Handle, ref: LinkRef): void {
  setLink(h, ref, { up: false });
}

/** Sets the MTU of link `ref`. */
export function setLinkMtu(h: Handle, ref: LinkRef, mtu: number): void {
  setLink(h, ref, { mtu });
}

/** Sets the MAC address of link `ref`. */
export function setLinkMac(h: Handle, ref: LinkRef, mac: string): void {
  setLink(h, ref, { mac });
}

/** Enslaves link `ref` to `master`, or releases it when `master` is null. */
export function setLinkMaster(h: Handle, ref: LinkRef, master: LinkRef | null): void {
  setLink(h, ref, { master });
}

/** Renames link `ref` (it must be down). */
export function setLinkName(h: Handle, ref: LinkRef, name: string): void {
  setLink(h, ref, { name });
}

/** Sets (or with "" clears) the alias of link `ref`. */
export function setLinkAlias(h: Handle, ref: LinkRef, alias: string): void {
  setLink(h, ref, { alias });
}

/** Turns promiscuous mode of link `ref` on or off. */
export function setLinkPromisc(h: Handle, ref: LinkRef, on: boolean): void {
  setLink(h, ref, { promisc: on });
}

/** Moves link `ref` into namespace `netns`, optionally renaming it there. The link arrives down. */
export function setLinkNetns(h: Handle, ref: LinkRef, netns: LinkNetns, newName?: string): void {
  setLink(h, ref, newName === undefined ? { netns } : { netns, name: newName });
}

/** Changes bridge-port settings (hairpin, learning, …) of link `ref`, which must be a bridge port. */
export function setBridgePort(h: Handle, ref: LinkRef, port: BridgePortInfo): void {
  const index = linkIndex(h, ref);
  const w = beginRequest(h, RTM.SETLINK);
  writeIfinfo(w, AF.BRIDGE, index);
  const nest = w.nestStart(IFLA.PROTINFO);
  writeBridgePort(w, port);
  w.nestEnd(nest);
  execute(h, `set bridge port ${describe(ref)}`);
}

/** Turns hairpin mode of bridge port `ref` on or off. */
export function setLinkHairpin(h: Handle, ref: LinkRef, on: boolean): void {
  setBridgePort(h, ref, { hairpin: on });
}
