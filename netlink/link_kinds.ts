/**
 * Kind-specific link data: what each link kind (veth, bridge, macvlan,
 * vxlan, vlan, ipvlan, dummy, tap) takes when created and what the kernel
 * reports back about it (IFLA_INFO_DATA, and bridge-port data).
 *
 * @module
 */

import { IFLA } from "./constants.ts";
import { formatIp, parseIp } from "../ipaddr/ip.ts";
import { parseMac } from "./mac.ts";
import { attr, type Attrs, type Writer } from "./message.ts";
import { type NetnsRef, openNetnsFd } from "./netns.ts";

/** A link given by index or by name (resolved in the handle's namespace). */
export type LinkRef = number | string;

/** A link as error messages name it: its name, or "#<index>". */
export function linkLabel(link: LinkRef): string {
  return typeof link === "number" ? `#${link}` : link;
}

/** Where a link goes: a namespace path or fd, or the namespace of a process. */
export type LinkNetns = NetnsRef | { pid: number };

/** Settings every link kind accepts at creation. */
export interface LinkCommon {
  /** Interface name (at most 15 bytes). */
  name: string;
  mtu?: number;
  /** MAC address "aa:bb:cc:dd:ee:ff". */
  mac?: string;
  txqlen?: number;
  /** Bridge (or other master) to enslave the new link to. */
  master?: LinkRef;
  /** Bring the link up as part of creation. */
  up?: boolean;
  /**
   * Create the link directly inside this namespace (not for tap: create the
   * tap with a handle opened in the target namespace). `master` is then an
   * index in that namespace.
   */
  netns?: LinkNetns;
}

/** macvlan/macvtap modes. */
export type MacvlanMode = "private" | "vepa" | "bridge" | "passthru" | "source";
/** ipvlan modes. */
export type IpvlanMode = "l2" | "l3" | "l3s";

/** The other end of a veth pair. */
export interface VethPeer {
  name: string;
  mac?: string;
  mtu?: number;
  /** Namespace for the peer; default: the handle's namespace. */
  netns?: LinkNetns;
}

/** What to create. `parent` is the lower device (for vxlan: the underlay device). */
export type LinkSpec =
  | LinkCommon & { kind: "veth"; peer: VethPeer }
  | LinkCommon & {
    kind: "bridge";
    vlanFiltering?: boolean;
    stp?: boolean;
    /** Default PVID for ports when VLAN filtering is on (0 = none). */
    vlanDefaultPvid?: number;
    multicastSnooping?: boolean;
  }
  | LinkCommon & { kind: "macvlan" | "macvtap"; parent: LinkRef; mode?: MacvlanMode }
  | LinkCommon & {
    kind: "ipvlan";
    parent: LinkRef;
    mode?: IpvlanMode;
    flags?: "bridge" | "private" | "vepa";
  }
  | LinkCommon & { kind: "vlan"; parent: LinkRef; vlanId: number; protocol?: "802.1Q" | "802.1ad" }
  | LinkCommon & {
    kind: "vxlan";
    vni: number;
    /** Local underlay address (v4 or v6). */
    local?: string;
    /** Single unicast remote (mutually exclusive with group). */
    remote?: string;
    /** Multicast group. */
    group?: string;
    /** UDP destination port; the kernel's default is 8472, IANA's is 4789. */
    port?: number;
    /** Underlay device. */
    parent?: LinkRef;
    /** Learn remote MACs from traffic (kernel default on). */
    learning?: boolean;
    ttl?: number;
    tos?: number;
    /** FDB ageing in seconds. */
    ageing?: number;
    /** Send ARP/ND misses to userspace. */
    l2miss?: boolean;
    l3miss?: boolean;
    /** Answer ARP/ND from the neighbour table (ARP proxy). */
    proxy?: boolean;
    /** Compute UDP checksums over IPv4. */
    udpCsum?: boolean;
    /** UDP source port range [low, high]. */
    srcPortRange?: [number, number];
  }
  | LinkCommon & { kind: "dummy" }
  | LinkCommon & {
    kind: "tap";
    /** uid allowed to open the persistent tap. */
    owner?: number;
    group?: number;
    multiQueue?: boolean;
    /** Carry struct virtio_net_hdr (IFF_VNET_HDR). */
    vnetHdr?: boolean;
  };

/** Link kinds {@link LinkSpec} knows. */
export type LinkKind = LinkSpec["kind"];

/** vxlan settings as the kernel reports them. */
export interface VxlanInfo {
  vni: number;
  local?: string;
  remote?: string;
  group?: string;
  port: number;
  parent?: number;
  learning: boolean;
  ttl?: number;
  ageing?: number;
  l2miss: boolean;
  l3miss: boolean;
  proxy: boolean;
}

/** Bridge settings as the kernel reports them. */
export interface BridgeInfo {
  vlanFiltering: boolean;
  stp: boolean;
  vlanDefaultPvid?: number;
  multicastSnooping?: boolean;
}

const MACVLAN_MODES: Record<MacvlanMode, number> = {
  private: 1,
  vepa: 2,
  bridge: 4,
  passthru: 8,
  source: 16,
};
const IPVLAN_MODES: Record<IpvlanMode, number> = { l2: 0, l3: 1, l3s: 2 };
const IPVLAN_FLAGS = { bridge: 0, private: 1, vepa: 2 } as const;

const IFLA_BR = { STP_STATE: 5, VLAN_FILTERING: 7, MCAST_SNOOPING: 23, VLAN_DEFAULT_PVID: 39 };
const IFLA_VXLAN = {
  ID: 1,
  GROUP: 2,
  LINK: 3,
  LOCAL: 4,
  TTL: 5,
  TOS: 6,
  LEARNING: 7,
  AGEING: 8,
  PORT_RANGE: 10,
  PROXY: 11,
  L2MISS: 13,
  L3MISS: 14,
  PORT: 15,
  GROUP6: 16,
  LOCAL6: 17,
  UDP_CSUM: 18,
};

/**
 * Writes IFLA_NET_NS_FD (or _PID) for `ns`; fds it opens are pushed to
 * `opened` for the caller to close once the request is done.
 */
export function writeNetnsAttr(w: Writer, ns: LinkNetns, opened: number[]): void {
  if (typeof ns === "object" && "pid" in ns) {
    w.attrU32(IFLA.NET_NS_PID, ns.pid);
    return;
  }
  let fd: number;
  if (typeof ns === "string") {
    fd = openNetnsFd(ns);
    opened.push(fd);
  } else {
    fd = ns.fd;
  }
  w.attrU32(IFLA.NET_NS_FD, fd);
}

/** Writes an ifinfomsg (family, type, index, flags, change). */
export function writeIfinfo(w: Writer, family: number, index: number, flags = 0, change = 0): void {
  w.u8(family);
  w.u8(0);
  w.u16(0);
  w.i32(index);
  w.u32(flags);
  w.u32(change);
}

function isMulticast(b: Uint8Array): boolean {
  return b.length === 4 ? b[0] >= 224 && b[0] <= 239 : b[0] === 0xff;
}

/** Writes IFLA_INFO_DATA for `spec` (inside IFLA_LINKINFO); `parentIndex` is resolved by the caller. */
export function writeKindData(
  w: Writer,
  spec: LinkSpec,
  parentIndex: number | undefined,
  opened: number[],
): void {
  const INFO_DATA = 2;
  switch (spec.kind) {
    case "veth": {
      const data = w.nestStart(INFO_DATA);
      const peer = w.nestStart(1); // VETH_INFO_PEER: an ifinfomsg, then link attributes
      writeIfinfo(w, 0, 0);
      w.attrString(IFLA.IFNAME, spec.peer.name);
      if (spec.peer.mac) w.attrBytes(IFLA.ADDRESS, parseMac(spec.peer.mac));
      if (spec.peer.mtu) w.attrU32(IFLA.MTU, spec.peer.mtu);
      if (spec.peer.netns !== undefined) writeNetnsAttr(w, spec.peer.netns, opened);
      w.nestEnd(peer);
      w.nestEnd(data);
      return;
    }
    case "bridge": {
      const data = w.nestStart(INFO_DATA);
      // Off is the default; sending 0 would fail on kernels built without
      // VLAN filtering, which reject the attribute outright.
      if (spec.vlanFiltering) w.attrU8(IFLA_BR.VLAN_FILTERING, 1);
      if (spec.stp !== undefined) w.attrU32(IFLA_BR.STP_STATE, spec.stp ? 1 : 0);
      if (spec.vlanDefaultPvid !== undefined) {
        w.attrU16(IFLA_BR.VLAN_DEFAULT_PVID, spec.vlanDefaultPvid);
      }
      if (spec.multicastSnooping !== undefined) {
        w.attrU8(IFLA_BR.MCAST_SNOOPING, spec.multicastSnooping ? 1 : 0);
      }
      w.nestEnd(data);
      return;
    }
    case "macvlan":
    case "macvtap": {
      const data = w.nestStart(INFO_DATA);
      w.attrU32(1, MACVLAN_MODES[spec.mode ?? "bridge"]);
      w.nestEnd(data);
      return;
    }
    case "ipvlan": {
      const data = w.nestStart(INFO_DATA);
      w.attrU16(1, IPVLAN_MODES[spec.mode ?? "l2"]);
      if (spec.flags) w.attrU16(2, IPVLAN_FLAGS[spec.flags]);
      w.nestEnd(data);
      return;
    }
    case "vlan": {
      const data = w.nestStart(INFO_DATA);
      w.attrU16(1, spec.vlanId);
      if (spec.protocol) w.attrBe16(5, spec.protocol === "802.1ad" ? 0x88a8 : 0x8100);
      w.nestEnd(data);
      return;
    }
    case "vxlan": {
      const data = w.nestStart(INFO_DATA);
      w.attrU32(IFLA_VXLAN.ID, spec.vni);
      const far = spec.remote ?? spec.group;
      if (far) {
        const b = parseIp(far);
        w.attrBytes(b.length === 4 ? IFLA_VXLAN.GROUP : IFLA_VXLAN.GROUP6, b);
      }
      if (spec.local) {
        const b = parseIp(spec.local);
        w.attrBytes(b.length === 4 ? IFLA_VXLAN.LOCAL : IFLA_VXLAN.LOCAL6, b);
      }
      if (parentIndex) w.attrU32(IFLA_VXLAN.LINK, parentIndex);
      if (spec.port !== undefined) w.attrBe16(IFLA_VXLAN.PORT, spec.port);
      if (spec.learning !== undefined) w.attrU8(IFLA_VXLAN.LEARNING, spec.learning ? 1 : 0);
      if (spec.ttl !== undefined) w.attrU8(IFLA_VXLAN.TTL, spec.ttl);
      if (spec.tos !== undefined) w.attrU8(IFLA_VXLAN.TOS, spec.tos);
      if (spec.ageing !== undefined) w.attrU32(IFLA_VXLAN.AGEING, spec.ageing);
      if (spec.l2miss !== undefined) w.attrU8(IFLA_VXLAN.L2MISS, spec.l2miss ? 1 : 0);
      if (spec.l3miss !== undefined) w.attrU8(IFLA_VXLAN.L3MISS, spec.l3miss ? 1 : 0);
      if (spec.proxy !== undefined) w.attrU8(IFLA_VXLAN.PROXY, spec.proxy ? 1 : 0);
      if (spec.udpCsum !== undefined) w.attrU8(IFLA_VXLAN.UDP_CSUM, spec.udpCsum ? 1 : 0);
      if (spec.srcPortRange) {
        const r = new Uint8Array(4);
        new DataView(r.buffer).setUint16(0, spec.srcPortRange[0]);
        new DataView(r.buffer).setUint16(2, spec.srcPortRange[1]);
        w.attrBytes(IFLA_VXLAN.PORT_RANGE, r);
      }
      w.nestEnd(data);
      return;
    }
    case "dummy":
    case "tap":
      return;
  }
}

/** Link kind data parsed from IFLA_INFO_DATA. */
export interface KindInfo {
  vxlan?: VxlanInfo;
  bridge?: BridgeInfo;
  macvlan?: { mode: MacvlanMode | number };
  ipvlan?: { mode: IpvlanMode | number };
  vlan?: { id: number; protocol: "802.1Q" | "802.1ad" };
}

function byValue<K extends string>(table: Record<K, number>, v: number): K | number {
  for (const [k, n] of Object.entries(table) as Array<[K, number]>) if (n === v) return k;
  return v;
}

/** Parses IFLA_INFO_DATA of a link of `kind`. */
export function parseKindData(kind: string, data: Attrs): KindInfo {
  switch (kind) {
    case "vxlan": {
      const g = data.get(IFLA_VXLAN.GROUP) ?? data.get(IFLA_VXLAN.GROUP6);
      const l = data.get(IFLA_VXLAN.LOCAL) ?? data.get(IFLA_VXLAN.LOCAL6);
      const far = g && g.some((x) => x !== 0) ? g : undefined;
      const info: VxlanInfo = {
        vni: attr.u32(data, IFLA_VXLAN.ID) ?? 0,
        port: attr.be16(data, IFLA_VXLAN.PORT) ?? 0,
        learning: attr.u8(data, IFLA_VXLAN.LEARNING) === 1,
        l2miss: attr.u8(data, IFLA_VXLAN.L2MISS) === 1,
        l3miss: attr.u8(data, IFLA_VXLAN.L3MISS) === 1,
        proxy: attr.u8(data, IFLA_VXLAN.PROXY) === 1,
      };
      if (far) info[isMulticast(far) ? "group" : "remote"] = formatIp(far);
      if (l && l.some((x) => x !== 0)) info.local = formatIp(l);
      const link = attr.u32(data, IFLA_VXLAN.LINK);
      if (link) info.parent = link;
      const ttl = attr.u8(data, IFLA_VXLAN.TTL);
      if (ttl !== undefined) info.ttl = ttl;
      const ageing = attr.u32(data, IFLA_VXLAN.AGEING);
      if (ageing !== undefined) info.ageing = ageing;
      return { vxlan: info };
    }
    case "bridge": {
      const info: BridgeInfo = {
        vlanFiltering: attr.u8(data, IFLA_BR.VLAN_FILTERING) === 1,
        stp: (attr.u32(data, IFLA_BR.STP_STATE) ?? 0) !== 0,
      };
      const pvid = attr.u16(data, IFLA_BR.VLAN_DEFAULT_PVID);
      if (pvid !== undefined) info.vlanDefaultPvid = pvid;
      const snoop = attr.u8(data, IFLA_BR.MCAST_SNOOPING);
      if (snoop !== undefined) info.multicastSnooping = snoop === 1;
      return { bridge: info };
    }
    case "macvlan":
    case "macvtap":
      return { macvlan: { mode: byValue(MACVLAN_MODES, attr.u32(data, 1) ?? 0) } };
    case "ipvlan":
      return { ipvlan: { mode: byValue(IPVLAN_MODES, attr.u16(data, 1) ?? 0) } };
    case "vlan":
      return {
        vlan: {
          id: attr.u16(data, 1) ?? 0,
          protocol: attr.be16(data, 5) === 0x88a8 ? "802.1ad" : "802.1Q",
        },
      };
    default:
      return {};
  }
}
