/**
 * The node's pool of host NICs: every interface of the node's network
 * namespace except loopback, the uplink (any link holding a default route,
 * and its master and the master's other ports), links enslaved to a master
 * (bridge or bond ports), kinds that are no NIC (bridges, tunnels, …) and
 * names the filter excludes. Each NIC comes with what netlink and sysfs say
 * about it.
 *
 * @module
 */

import type { Handle } from "../netlink/socket.ts";
import { type Link, listLinks } from "../netlink/link.ts";
import { listRoutes } from "../netlink/route.ts";
import { readSysfs, type SysfsInfo } from "./sysfs.ts";

/** A host interface offered as a device. */
export interface NicInfo {
  name: string;
  index: number;
  mac: string;
  permanentMac?: string;
  mtu: number;
  /** Link kind ("veth", "macvlan", …), "physical" for a device without one. */
  linkKind: string;
  up: boolean;
  sysfs: SysfsInfo;
}

/** Which interfaces make the pool. */
export interface NicFilter {
  /** Globs (`*`, `?`); only matching names are offered. Empty: all. */
  include: string[];
  /** Globs of names never offered. */
  exclude: string[];
  /** Link kinds never offered. */
  excludeKinds: string[];
}

/** Names CNI plugins, container engines and overlays give their host-side links. */
export const DEFAULT_EXCLUDE = [
  "lo",
  "docker*",
  "br-*",
  "virbr*",
  "cni*",
  "flannel*",
  "cali*",
  "cilium*",
  "lxc*",
  "veth*",
  "vxlan*",
  "genev*",
  "tunl*",
  "kube-*",
  "hydra*",
  "ifb*",
  "wg*",
];

/** Kinds of links that are no NIC to hand out. */
export const DEFAULT_EXCLUDE_KINDS = [
  "bridge",
  "bond",
  "team",
  "vrf",
  "vxlan",
  "geneve",
  "gre",
  "gretap",
  "ip6gre",
  "ip6gretap",
  "ipip",
  "sit",
  "ip6tnl",
  "wireguard",
  "tun",
  "ifb",
  "openvswitch",
  "nlmon",
];

/** A glob as a RegExp (only `*` and `?` are special). */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

/** Indexes of the uplink: links of default routes, their masters, and those masters' ports. */
export function uplinkIndexes(
  links: readonly Link[],
  defaultRouteLinks: readonly number[],
): Set<number> {
  const out = new Set<number>(defaultRouteLinks);
  for (const l of links) {
    if (out.has(l.index) && l.master !== undefined) out.add(l.master);
  }
  for (const l of links) {
    if (l.master !== undefined && out.has(l.master)) out.add(l.index);
  }
  return out;
}

/** Why a link is not offered, or undefined when it is. */
export function exclusionReason(
  link: Link,
  uplink: Set<number>,
  filter: NicFilter,
): string | undefined {
  if (link.name === "lo") return "loopback";
  if (uplink.has(link.index)) return "uplink";
  if (link.master !== undefined) return "enslaved to a master";
  if (link.kind && filter.excludeKinds.includes(link.kind)) return `kind ${link.kind}`;
  if (filter.exclude.some((g) => globToRegExp(g).test(link.name))) return "excluded by name";
  if (filter.include.length && !filter.include.some((g) => globToRegExp(g).test(link.name))) {
    return "not included by name";
  }
  if (!link.mac) return "no hardware address";
  return undefined;
}

/** Indexes of links that carry a default route (IPv4 or IPv6, any table). */
function defaultRouteLinks(h: Handle): number[] {
  const out: number[] = [];
  for (const r of listRoutes(h)) {
    if (r.dst !== "0.0.0.0/0" && r.dst !== "::/0") continue;
    if (r.oif !== undefined) out.push(r.oif);
    for (const hop of r.multipath ?? []) out.push(hop.oif);
  }
  return out;
}

/** The NICs of the handle's namespace that pass `filter`, by name. */
export function listHostNics(h: Handle, filter: NicFilter, sysfsRoot = "/sys"): NicInfo[] {
  const links = listLinks(h);
  const uplink = uplinkIndexes(links, defaultRouteLinks(h));
  const out: NicInfo[] = [];
  for (const l of links) {
    if (exclusionReason(l, uplink, filter)) continue;
    const nic: NicInfo = {
      name: l.name,
      index: l.index,
      mac: l.mac!,
      mtu: l.mtu,
      linkKind: l.kind ?? "physical",
      up: l.up,
      sysfs: readSysfs(sysfsRoot, l.name, l.index),
    };
    if (l.permanentMac) nic.permanentMac = l.permanentMac;
    out.push(nic);
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
