/**
 * What one remote node contributes to one network, judged on its own: the
 * checks that need no other node (annotations present and well formed, no
 * CIDR holding a node's own address, an address of the underlay's family)
 * and the routes, FDB and neighbour entries it gets. Plans are cached per
 * node object, so an unchanged node costs nothing on the next pass.
 *
 * Checks that involve other nodes (overlapping CIDRs, a shared underlay
 * address) live with the full computation in `desired.ts`.
 *
 * @module
 */

import { type IpFamily, nextIp, tryParseIp } from "../ipaddr/ip.ts";
import { vtepMac } from "../plugins/vtep_mac.ts";
import { hashedMac } from "../netlink/mac.ts";
import type { NetworkConfig, VxlanConfig } from "./config.ts";
import {
  addressOfFamily,
  cidrHasKey,
  ipKey,
  type NodeCidr,
  type NodeInfo,
  type NodeNetwork,
  nodeNetwork,
} from "./nodes.ts";

/** Kinds of problems, as the errors metric labels them. */
export type ProblemKind =
  | "missing_annotation"
  | "malformed_annotation"
  | "cidr_not_allowed"
  | "no_address_family"
  | "overlapping_cidr"
  | "cidr_contains_node_address"
  | "duplicate_address"
  | "no_local_address"
  | "local_node_missing"
  | "protocol_clash"
  | "config"
  | "device_conflict"
  | "device_missing"
  | "route_conflict"
  | "kernel"
  | "source";

/** Something wrong with the input or the kernel, reported once while it lasts. */
export interface Problem {
  kind: ProblemKind;
  level: "warn" | "error";
  network?: string;
  node?: string;
  message: string;
}

/** A route the router wants in the kernel. */
export interface DesiredRoute {
  /** Identity in the kernel: table, destination and metric. */
  key: string;
  /** What must match for the kernel's route to count as this one ({@link routeSignature}). */
  sig: string;
  dst: string;
  family: IpFamily;
  gateway: string;
  table: number;
  protocol: number;
  metric?: number;
  mtu?: number;
  /** vxlan: the overlay device (the gateway is on-link there). */
  device?: string;
  /** The node the route leads to. */
  node: string;
}

/** This node as one network sees it: what every remote is checked against. */
export interface LocalContext {
  net: NetworkConfig;
  localName: string;
  localAddrs: ReadonlySet<string>;
  localKeys: readonly { address: string; key: string }[];
  /** vxlan: the local underlay address (the device's source). */
  local?: string;
  /** vxlan: the family every remote's underlay address must have. */
  underlayFamily?: IpFamily;
}

/** A remote (or the local) node that passed the checks of its own. */
export interface Candidate {
  node: NodeInfo;
  nn: { cidrs: NodeCidr[]; addresses: string[]; addressKeys: string[] };
  /** vxlan: the node's underlay address. */
  underlay?: string;
  local: boolean;
}

/** A remote node's routes (and vxlan entries) on one network. */
export interface RoutePlan {
  routes: DesiredRoute[];
  problems: Problem[];
  mac?: string;
  vteps: string[];
}

/**
 * The MAC of a node's vxlan device: a hash of the VNI and the node's
 * underlay address, locally administered and unicast. Every node computes
 * every other node's MAC the same way, so no annotation carries it.
 */
export function vxlanMac(vni: number, underlay: string): string {
  return hashedMac(`hydra-vxlan/${vni}/${underlay}`);
}

/**
 * The MAC of the vxlan device of the node at `underlay`: the router's own
 * scheme for its devices, the hydra-vxlan plugin's for the plugin's.
 */
export function tunnelMac(vx: VxlanConfig, underlay: string): string {
  return vx.owner === "plugin" ? vtepMac(underlay) : vxlanMac(vx.vni, underlay);
}

/**
 * The next hop inside a node's CIDR that the overlay routes point at: its
 * first address (the router's device holds it), or the first host address
 * (the node's bridge gateway) with the hydra-vxlan plugin.
 */
export function vtepAddresses(vx: VxlanConfig, cidrs: NodeCidr[]): Map<IpFamily, string> {
  const m = firstPerFamily(cidrs);
  if (vx.owner === "plugin") { for (const [f, ip] of m) m.set(f, nextIp(ip)); }
  return m;
}

/** The kernel identity of a route: table, destination, metric (IPv6 defaults to 1024). */
export function routeKey(table: number, dst: string, family: IpFamily, metric?: number): string {
  return `${table}|${dst}|${metric ?? (family === 6 ? 1024 : 0)}`;
}

/**
 * What decides whether a route in the kernel is the one wanted: gateway,
 * whether it goes on-link through the network's own device, MTU.
 */
export function routeSignature(gateway: string, viaDevice: boolean, mtu?: number): string {
  return `${gateway}|${viaDevice ? "dev|onlink" : "-"}|${mtu ?? ""}`;
}

/** The first address of the first CIDR of each family (the VTEP addresses). */
export function firstPerFamily(cidrs: NodeCidr[]): Map<IpFamily, string> {
  const m = new Map<IpFamily, string>();
  for (const c of cidrs) if (!m.has(c.family)) m.set(c.family, c.first);
  return m;
}

/** Parsed local addresses, for containment checks. */
export function localKeysOf(addresses: readonly string[]): { address: string; key: string }[] {
  return addresses.map((a) => {
    const b = tryParseIp(a);
    return { address: a, key: b ? ipKey(b) : "" };
  });
}

const parsed = new WeakMap<NodeInfo, WeakMap<NetworkConfig, NodeNetwork>>();

/** {@link nodeNetwork}, memoized per node object and network. */
export function nodeNet(node: NodeInfo, net: NetworkConfig): NodeNetwork {
  let perNet = parsed.get(node);
  if (!perNet) parsed.set(node, perNet = new WeakMap());
  let v = perNet.get(net);
  if (!v) perNet.set(net, v = nodeNetwork(node, net));
  return v;
}

/** Runs a remote node through the checks that need no other node. */
export function checkRemote(
  node: NodeInfo,
  ctx: LocalContext,
): { cand: Candidate; problem?: undefined } | { cand?: undefined; problem: Problem } {
  const net = ctx.net;
  const fail = (kind: ProblemKind, message: string, level: Problem["level"] = "error") => ({
    problem: { kind, level, network: net.name, node: node.name, message },
  });
  const r = nodeNet(node, net);
  if (!r.ok) return fail(r.kind, r.message, r.kind === "missing_annotation" ? "warn" : "error");
  const self = r.addresses.find((a) => ctx.localAddrs.has(a));
  if (self) {
    return fail(
      "duplicate_address",
      `network ${net.name}: node ${node.name} gives address ${self}, which is this ` +
        `node's own (is --node-name ${ctx.localName} right?); skipped`,
    );
  }
  for (const c of r.cidrs) {
    const own = r.addressKeys.findIndex((k) => cidrHasKey(c, k));
    const mine = own < 0 ? ctx.localKeys.find((l) => cidrHasKey(c, l.key)) : undefined;
    if (own >= 0 || mine) {
      const what = own >= 0
        ? `its own address ${r.addresses[own]}`
        : `this node's address ${mine!.address}`;
      return fail(
        "cidr_contains_node_address",
        `network ${net.name}: CIDR ${c.cidr} of node ${node.name} contains ${what}; ` +
          `routing it would cut the underlay; skipped`,
      );
    }
  }
  let underlay: string | undefined;
  if (ctx.underlayFamily) {
    underlay = addressOfFamily(r.addresses, ctx.underlayFamily);
    if (!underlay) {
      return fail(
        "no_address_family",
        `network ${net.name}: node ${node.name} has no IPv${ctx.underlayFamily} address ` +
          `for the vxlan underlay (${r.addresses.join(", ")}); skipped`,
      );
    }
  }
  return { cand: { node, nn: r, underlay, local: false } };
}

/** The routes (and vxlan entries) of a candidate for the given accepted CIDRs. */
export function planRoutes(cand: Candidate, net: NetworkConfig, cidrs: NodeCidr[]): RoutePlan {
  const name = cand.node.name;
  const plan: RoutePlan = { routes: [], problems: [], vteps: [] };
  const vteps = net.vxlan ? vtepAddresses(net.vxlan, cidrs) : new Map<IpFamily, string>();
  if (net.vxlan) {
    plan.mac = tunnelMac(net.vxlan, cand.underlay!);
    plan.vteps = [...vteps.values()];
  }
  for (const c of cidrs) {
    const gateway = net.vxlan ? vteps.get(c.family)! : addressOfFamily(cand.nn.addresses, c.family);
    if (!gateway) {
      plan.problems.push({
        kind: "no_address_family",
        level: "warn",
        network: net.name,
        node: name,
        message: `network ${net.name}: node ${name} has no IPv${c.family} address to route ` +
          `${c.cidr} by; that CIDR is not routed`,
      });
      continue;
    }
    const route: DesiredRoute = {
      key: routeKey(net.table, c.cidr, c.family, net.metric),
      sig: "",
      dst: c.cidr,
      family: c.family,
      gateway,
      table: net.table,
      protocol: net.protocol,
      node: name,
    };
    if (net.metric !== undefined) route.metric = net.metric;
    if (net.vxlan) route.device = net.vxlan.device;
    else if (net.mtu !== undefined) route.mtu = net.mtu;
    route.sig = routeSignature(route.gateway, route.device !== undefined, route.mtu);
    plan.routes.push(route);
  }
  if (!plan.routes.length) plan.vteps = [];
  return plan;
}

const plans = new WeakMap<NodeInfo, WeakMap<NetworkConfig, Map<string, RoutePlan>>>();

/** {@link planRoutes} for all of a candidate's CIDRs, cached per node object, network and underlay. */
export function fullPlan(cand: Candidate, net: NetworkConfig): RoutePlan {
  let perNet = plans.get(cand.node);
  if (!perNet) plans.set(cand.node, perNet = new WeakMap());
  let byUnderlay = perNet.get(net);
  if (!byUnderlay) perNet.set(net, byUnderlay = new Map());
  const key = cand.underlay ?? "";
  let p = byUnderlay.get(key);
  if (!p) byUnderlay.set(key, p = planRoutes(cand, net, cand.nn.cidrs));
  return p;
}
