/**
 * The desired kernel state of each network, computed from the node set:
 * routes to every other node's CIDRs and, for vxlan networks, the device,
 * its FDB and its neighbour entries. Pure: no kernel access, so it is unit
 * tested on its own and recomputed in full on every sync.
 *
 * Bad input never stops the rest: a node whose annotations are missing or
 * malformed, whose CIDR overlaps another node's, or whose CIDR contains a
 * node's own address is left out with a {@link Problem}, and the other nodes
 * are still synced. On an overlap the CIDR that was routed before keeps its
 * route, so a newcomer cannot take a working route away; the local node's
 * own CIDRs always win.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { formatMac, type IpFamily, tryParseIp } from "../netlink/ip.ts";
import type { NetworkConfig } from "./config.ts";
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
  | "no_address_family"
  | "overlapping_cidr"
  | "cidr_contains_node_address"
  | "duplicate_address"
  | "no_local_address"
  | "local_node_missing"
  | "protocol_clash"
  | "config"
  | "device_conflict"
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

/** The local vxlan device of a network and its entries for remote nodes. */
export interface DesiredVxlan {
  device: string;
  vni: number;
  port: number;
  underlayDevice?: string;
  /** Local underlay address (the device's source address). */
  local: string;
  /** The device's MAC, derived from the VNI and `local`. */
  mac: string;
  mtu?: number;
  /** Addresses on the device: the first address of each local CIDR, as /32 or /128. */
  addresses: string[];
  /** Remote MAC → remote underlay address. */
  fdb: Map<string, string>;
  /** Remote VTEP address (first address of a remote CIDR) → remote MAC. */
  neighs: Map<string, string>;
}

/** Everything one network wants. */
export interface DesiredNetwork {
  net: NetworkConfig;
  /**
   * True when the network cannot be computed right now (no local address
   * for its vxlan device): the kernel is then left exactly as it is.
   */
  hold: boolean;
  routes: Map<string, DesiredRoute>;
  vxlan?: DesiredVxlan;
  /** Remote nodes with at least one route. */
  nodesSynced: number;
  /** Remote nodes left out (missing or bad input). */
  nodesSkipped: number;
  /** Which node each routed CIDR belongs to (for the next computation's overlaps). */
  owners: Map<string, string>;
}

/** Input of {@link computeDesired}. */
export interface DesiredInput {
  networks: NetworkConfig[];
  nodes: Iterable<NodeInfo>;
  /** This node's name; its own CIDRs are not routed. */
  localName: string;
  /** Addresses configured on this node's links (from the kernel). */
  localAddresses: readonly string[];
  /** First global address of each underlay device named by a vxlan network. */
  underlayAddresses?: ReadonlyMap<string, string>;
  /** `owners` of the previous computation, by network name. */
  previousOwners?: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

/** Result of {@link computeDesired}. */
export interface DesiredState {
  networks: DesiredNetwork[];
  problems: Problem[];
}

const cache = new WeakMap<NodeInfo, WeakMap<NetworkConfig, NodeNetwork>>();

/** {@link nodeNetwork}, memoized per node object and network. */
function nodeNet(node: NodeInfo, net: NetworkConfig): NodeNetwork {
  let perNet = cache.get(node);
  if (!perNet) cache.set(node, perNet = new WeakMap());
  let v = perNet.get(net);
  if (!v) perNet.set(net, v = nodeNetwork(node, net));
  return v;
}

/**
 * The MAC of a node's vxlan device: a hash of the VNI and the node's
 * underlay address, locally administered and unicast. Every node computes
 * every other node's MAC the same way, so no annotation carries it.
 */
export function vxlanMac(vni: number, underlay: string): string {
  const b = createHash("sha256").update(`hydra-vxlan/${vni}/${underlay}`).digest().subarray(0, 6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return formatMac(b);
}

/** The kernel identity of a route: table, destination, metric (IPv6 defaults to 1024). */
export function routeKey(table: number, dst: string, family: IpFamily, metric?: number): string {
  return `${table}|${dst}|${metric ?? (family === 6 ? 1024 : 0)}`;
}

interface Candidate {
  node: NodeInfo;
  nn: { cidrs: NodeCidr[]; addresses: string[]; addressKeys: string[] };
  /** vxlan: the remote's underlay address. */
  underlay?: string;
  local: boolean;
}

interface Claim {
  cand: Candidate;
  cidr: NodeCidr;
  /** 0 local, 1 routed before, 2 new. */
  rank: number;
}

/**
 * Resolves overlapping claims: sorted by start, claims that overlap form a
 * cluster; inside a cluster the best-ranked claim is kept and any claim
 * overlapping a kept one is dropped.
 */
function resolveOverlaps(claims: Claim[], net: NetworkConfig, problems: Problem[]): Claim[] {
  const byStart = [...claims].sort((a, b) =>
    a.cidr.family - b.cidr.family ||
    (a.cidr.start < b.cidr.start ? -1 : a.cidr.start > b.cidr.start ? 1 : 0)
  );
  const kept: Claim[] = [];
  let from = 0;
  let clusterEnd = "";
  const flush = (to: number) => {
    if (to - from === 1) kept.push(byStart[from]);
    else if (to - from > 1) {
      const ordered = byStart.slice(from, to).sort((a, b) =>
        a.rank - b.rank || (a.cand.node.name < b.cand.node.name ? -1 : 1)
      );
      const winners: Claim[] = [];
      for (const c of ordered) {
        const other = winners.find((w) => w.cidr.start <= c.cidr.end && c.cidr.start <= w.cidr.end);
        if (!other) {
          winners.push(c);
          continue;
        }
        if (c.cand.local) continue; // the local node's own CIDRs are never dropped
        const whose = other.cand.local
          ? `this node's (${other.cand.node.name})`
          : `node ${other.cand.node.name}'s`;
        problems.push({
          kind: "overlapping_cidr",
          level: "error",
          network: net.name,
          node: c.cand.node.name,
          message:
            `network ${net.name}: CIDR ${c.cidr.cidr} of node ${c.cand.node.name} overlaps ` +
            `${whose} ${other.cidr.cidr}; not routed`,
        });
      }
      kept.push(...winners);
    }
    from = to;
  };
  for (let i = 0; i < byStart.length; i++) {
    const c = byStart[i].cidr;
    if (i > from && (c.family !== byStart[from].cidr.family || c.start > clusterEnd)) flush(i);
    if (i === from || c.end > clusterEnd) clusterEnd = c.end;
  }
  flush(byStart.length);
  return kept;
}

/** A remote node's routes (and vxlan entries) on one network. */
interface RoutePlan {
  routes: DesiredRoute[];
  problems: Problem[];
  mac?: string;
  vteps: string[];
}

const plans = new WeakMap<NodeInfo, WeakMap<NetworkConfig, RoutePlan>>();

function planRoutes(cand: Candidate, net: NetworkConfig, cidrs: NodeCidr[]): RoutePlan {
  const name = cand.node.name;
  const plan: RoutePlan = { routes: [], problems: [], vteps: [] };
  const vteps = firstPerFamily(cidrs);
  if (net.vxlan) {
    plan.mac = vxlanMac(net.vxlan.vni, cand.underlay!);
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
  return plan;
}

function cachedPlan(cand: Candidate, net: NetworkConfig): RoutePlan {
  let perNet = plans.get(cand.node);
  if (!perNet) plans.set(cand.node, perNet = new WeakMap());
  let p = perNet.get(net);
  if (!p) perNet.set(net, p = planRoutes(cand, net, cand.nn.cidrs));
  return p;
}

/**
 * What decides whether a route in the kernel is the one wanted: gateway,
 * whether it goes on-link through the network's own device, MTU.
 */
export function routeSignature(gateway: string, viaDevice: boolean, mtu?: number): string {
  return `${gateway}|${viaDevice ? "dev|onlink" : "-"}|${mtu ?? ""}`;
}

function firstPerFamily(cidrs: NodeCidr[]): Map<IpFamily, string> {
  const m = new Map<IpFamily, string>();
  for (const c of cidrs) if (!m.has(c.family)) m.set(c.family, c.first);
  return m;
}

function computeNetwork(
  net: NetworkConfig,
  nodes: NodeInfo[],
  input: DesiredInput,
  problems: Problem[],
): DesiredNetwork {
  const out: DesiredNetwork = {
    net,
    hold: false,
    routes: new Map(),
    nodesSynced: 0,
    nodesSkipped: 0,
    owners: new Map(),
  };
  const localAddrs = new Set(input.localAddresses);
  const localKeys = input.localAddresses.map((a) => {
    const b = tryParseIp(a);
    return { address: a, key: b ? ipKey(b) : "" };
  });
  const localNode = nodes.find((n) => n.name === input.localName);
  let localNet: Candidate["nn"] | undefined;
  if (localNode) {
    const r = nodeNet(localNode, net);
    if (r.ok) localNet = r;
    else {
      problems.push({
        kind: r.kind,
        level: "warn",
        network: net.name,
        node: localNode.name,
        message: `this node: ${r.message}`,
      });
    }
  }

  // vxlan: the underlay address every remote is reached at must be of the local one's family.
  let local: string | undefined;
  let underlayFamily: IpFamily | undefined;
  if (net.vxlan) {
    local = net.vxlan.local ?? localNet?.addresses[0] ??
      (net.vxlan.underlayDevice
        ? input.underlayAddresses?.get(net.vxlan.underlayDevice)
        : undefined);
    if (!local) {
      problems.push({
        kind: "no_local_address",
        level: "error",
        network: net.name,
        message: `network ${net.name}: no local underlay address for vxlan device ` +
          `${net.vxlan.device} (this node ${input.localName} has none for the network, and no ` +
          `vxlan.local or usable vxlan.underlayDevice is configured); the network is left as it is`,
      });
      out.hold = true;
      return out;
    }
    underlayFamily = local.includes(":") ? 6 : 4;
  }

  const candidates: Candidate[] = [];
  if (localNode && localNet) {
    candidates.push({ node: localNode, nn: localNet, underlay: local, local: true });
  }
  const usedUnderlay = new Map<string, string>();
  if (local) usedUnderlay.set(local, input.localName);
  const remotes = nodes.filter((n) => n !== localNode).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const node of remotes) {
    const r = nodeNet(node, net);
    if (!r.ok) {
      problems.push({
        kind: r.kind,
        level: r.kind === "missing_annotation" ? "warn" : "error",
        network: net.name,
        node: node.name,
        message: r.message,
      });
      out.nodesSkipped++;
      continue;
    }
    const self = r.addresses.find((a) => localAddrs.has(a));
    if (self) {
      problems.push({
        kind: "duplicate_address",
        level: "error",
        network: net.name,
        node: node.name,
        message: `network ${net.name}: node ${node.name} gives address ${self}, which is this ` +
          `node's own (is --node-name ${input.localName} right?); skipped`,
      });
      out.nodesSkipped++;
      continue;
    }
    let inside: { cidr: NodeCidr; what: string } | undefined;
    for (const c of r.cidrs) {
      const own = r.addressKeys.findIndex((k) => cidrHasKey(c, k));
      if (own >= 0) inside = { cidr: c, what: `its own address ${r.addresses[own]}` };
      const mine = localKeys.find((l) => cidrHasKey(c, l.key));
      if (!inside && mine) inside = { cidr: c, what: `this node's address ${mine.address}` };
      if (inside) break;
    }
    if (inside) {
      problems.push({
        kind: "cidr_contains_node_address",
        level: "error",
        network: net.name,
        node: node.name,
        message: `network ${net.name}: CIDR ${inside.cidr.cidr} of node ${node.name} contains ` +
          `${inside.what}; routing it would cut the underlay; skipped`,
      });
      out.nodesSkipped++;
      continue;
    }
    let underlay: string | undefined;
    if (underlayFamily) {
      underlay = addressOfFamily(r.addresses, underlayFamily);
      if (!underlay) {
        problems.push({
          kind: "no_address_family",
          level: "error",
          network: net.name,
          node: node.name,
          message: `network ${net.name}: node ${node.name} has no IPv${underlayFamily} address ` +
            `for the vxlan underlay (${r.addresses.join(", ")}); skipped`,
        });
        out.nodesSkipped++;
        continue;
      }
      const twin = usedUnderlay.get(underlay);
      if (twin !== undefined) {
        problems.push({
          kind: "duplicate_address",
          level: "error",
          network: net.name,
          node: node.name,
          message: `network ${net.name}: node ${node.name} has underlay address ${underlay}, ` +
            `already node ${twin}'s; skipped`,
        });
        out.nodesSkipped++;
        continue;
      }
      usedUnderlay.set(underlay, node.name);
    }
    candidates.push({ node, nn: r, underlay, local: false });
  }

  const before = input.previousOwners?.get(net.name);
  const claims: Claim[] = candidates.flatMap((cand) =>
    cand.nn.cidrs.map((cidr) => ({
      cand,
      cidr,
      rank: cand.local ? 0 : before?.get(cidr.cidr) === cand.node.name ? 1 : 2,
    }))
  );
  const kept = resolveOverlaps(claims, net, problems);
  const accepted = new Map<Candidate, NodeCidr[]>();
  for (const k of kept) {
    const list = accepted.get(k.cand);
    if (list) list.push(k.cidr);
    else accepted.set(k.cand, [k.cidr]);
  }

  if (net.vxlan) {
    const localCidrs = [...accepted].find(([c]) => c.local)?.[1] ?? [];
    out.vxlan = {
      device: net.vxlan.device,
      vni: net.vxlan.vni,
      port: net.vxlan.port,
      underlayDevice: net.vxlan.underlayDevice,
      local: local!,
      mac: vxlanMac(net.vxlan.vni, local!),
      mtu: net.mtu,
      addresses: [...firstPerFamily(localCidrs)].map(([f, ip]) => `${ip}/${f === 4 ? 32 : 128}`),
      fdb: new Map(),
      neighs: new Map(),
    };
  }

  const routedNodes = new Set<string>();
  for (const cand of candidates) {
    if (cand.local) continue;
    const cidrs = accepted.get(cand) ?? [];
    if (!cidrs.length) {
      out.nodesSkipped++;
      continue;
    }
    // The common case (every CIDR accepted) reuses the plan made for this node object.
    const p = cidrs.length === cand.nn.cidrs.length
      ? cachedPlan(cand, net)
      : planRoutes(cand, net, cidrs);
    problems.push(...p.problems);
    if (!p.routes.length) continue;
    const name = cand.node.name;
    for (const r of p.routes) {
      out.routes.set(r.key, r);
      out.owners.set(r.dst, name);
    }
    routedNodes.add(name);
    if (out.vxlan && p.mac) {
      out.vxlan.fdb.set(p.mac, cand.underlay!);
      for (const vtep of p.vteps) out.vxlan.neighs.set(vtep, p.mac);
    }
  }
  out.nodesSynced = routedNodes.size;
  return out;
}

/** Computes every network's desired state from the node set. */
export function computeDesired(input: DesiredInput): DesiredState {
  const problems: Problem[] = [];
  const nodes = [...input.nodes];
  if (!nodes.some((n) => n.name === input.localName) && nodes.length > 0) {
    problems.push({
      kind: "local_node_missing",
      level: "warn",
      node: input.localName,
      message: `this node (${input.localName}) is not among the ${nodes.length} nodes; every ` +
        `node is treated as remote (set --node-name or NODE_NAME)`,
    });
  }
  const networks = input.networks.map((net) => computeNetwork(net, nodes, input, problems));
  return { networks, problems };
}
