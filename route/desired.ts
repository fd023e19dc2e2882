/**
 * The desired kernel state of each network, computed in full from the node
 * set: routes to every other node's CIDRs and, for vxlan networks, the
 * device, its FDB and its neighbour entries. Pure: no kernel access.
 *
 * Bad input never stops the rest: a node whose annotations are missing or
 * malformed, whose CIDR overlaps another node's, or whose CIDR contains a
 * node's own address is left out with a {@link Problem}, and the other nodes
 * are still synced. On an overlap the CIDR that was routed before keeps its
 * route, so a newcomer cannot take a working route away; the local node's
 * own CIDRs always win.
 *
 * Next to the result it keeps an index per network (what each node
 * contributed, the accepted CIDRs in order) from which `incremental.ts`
 * applies a few changed nodes without recomputing the rest.
 *
 * @module
 */

import type { IpFamily } from "../ipaddr/ip.ts";
import type { NetworkConfig } from "./config.ts";
import type { NodeCidr, NodeInfo } from "./nodes.ts";
import {
  type Candidate,
  checkRemote,
  type DesiredRoute,
  firstPerFamily,
  fullPlan,
  type LocalContext,
  localKeysOf,
  nodeNet,
  planRoutes,
  type Problem,
  type RoutePlan,
  tunnelMac,
} from "./plan.ts";

export type { DesiredRoute, Problem, ProblemKind } from "./plan.ts";
export { routeKey, routeSignature, vxlanMac } from "./plan.ts";

/** The local vxlan device of a network and its entries for remote nodes. */
export interface DesiredVxlan {
  /** "plugin": the device is the hydra-vxlan plugin's; it is used, never made or changed. */
  owner: "router" | "plugin";
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

/** What one remote node contributes to a network now. */
export interface NodeEntry {
  problems: Problem[];
  /** Its routes and entries; absent when the node was left out. */
  plan?: RoutePlan;
  underlay?: string;
  /** Its accepted CIDRs. */
  cidrs: NodeCidr[];
}

/** An accepted CIDR in the index. */
export interface Interval {
  family: IpFamily;
  start: string;
  end: string;
  node: string;
}

/** Per network: enough to apply a change of a few nodes on its own. */
export interface NetworkIndex {
  ctx: LocalContext;
  /** No claim was refused for an overlap or a shared underlay address. */
  clean: boolean;
  entries: Map<string, NodeEntry>;
  /** Accepted CIDRs, this node's included, by family then start; never overlapping. */
  intervals: Interval[];
  /** vxlan: underlay address → node, this node's included. */
  underlays: Map<string, string>;
  /** Problems of this node on the network. */
  localProblems: Problem[];
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
  /** Absent while held. */
  index?: NetworkIndex;
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
  /** Problems not tied to a network (this node missing from the node set). */
  globalProblems: Problem[];
  problems: Problem[];
}

interface Claim {
  cand: Candidate;
  cidr: NodeCidr;
  /** 0 local, 1 routed before, 2 new. */
  rank: number;
}

/** Compares two intervals by family, then start. */
export function byStart(
  a: { family: number; start: string },
  b: { family: number; start: string },
): number {
  return a.family - b.family || (a.start < b.start ? -1 : a.start > b.start ? 1 : 0);
}

/**
 * Resolves overlapping claims: sorted by start, claims that overlap form a
 * cluster; inside a cluster the best-ranked claim is kept and any claim
 * overlapping a kept one is dropped.
 */
function resolveOverlaps(claims: Claim[], net: NetworkConfig, problems: Problem[]): Claim[] {
  const sorted = [...claims].sort((a, b) => byStart(a.cidr, b.cidr));
  const kept: Claim[] = [];
  let from = 0;
  let clusterEnd = "";
  const flush = (to: number) => {
    if (to - from === 1) kept.push(sorted[from]);
    else if (to - from > 1) {
      const ordered = sorted.slice(from, to).sort((a, b) =>
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
  for (let i = 0; i < sorted.length; i++) {
    const c = sorted[i].cidr;
    if (i > from && (c.family !== sorted[from].cidr.family || c.start > clusterEnd)) flush(i);
    if (i === from || c.end > clusterEnd) clusterEnd = c.end;
  }
  flush(sorted.length);
  return kept;
}

/** This node as a candidate of `net`, or the problem that keeps it out. */
function localCandidate(
  net: NetworkConfig,
  localNode: NodeInfo | undefined,
  localProblems: Problem[],
): Candidate | undefined {
  if (!localNode) return undefined;
  const r = nodeNet(localNode, net);
  if (r.ok) return { node: localNode, nn: r, local: true };
  localProblems.push({
    kind: r.kind,
    level: "warn",
    network: net.name,
    node: localNode.name,
    message: `this node: ${r.message}`,
  });
  return undefined;
}

/** The local underlay address of a vxlan network: configured, this node's, or its device's. */
function localUnderlay(
  net: NetworkConfig,
  localCand: Candidate | undefined,
  input: DesiredInput,
): string | undefined {
  const vxlan = net.vxlan!;
  return vxlan.local ?? localCand?.nn.addresses[0] ??
    (vxlan.underlayDevice ? input.underlayAddresses?.get(vxlan.underlayDevice) : undefined);
}

/** The problem of a vxlan network without a local underlay address: it is held. */
function noLocalAddress(net: NetworkConfig, localName: string): Problem {
  return {
    kind: "no_local_address",
    level: "error",
    network: net.name,
    message: `network ${net.name}: no local underlay address for vxlan device ` +
      `${net.vxlan!.device} (this node ${localName} has none for the network, and no ` +
      `vxlan.local or usable vxlan.underlayDevice is configured); the network is left as it is`,
  };
}

/**
 * The remote nodes that can be routed, each entered in the index with its
 * problems; a node whose underlay address another node already has is
 * skipped.
 */
function remoteCandidates(index: NetworkIndex, remotes: NodeInfo[]): Candidate[] {
  const { net } = index.ctx;
  const candidates: Candidate[] = [];
  for (const node of remotes) {
    const entry: NodeEntry = { problems: [], cidrs: [] };
    index.entries.set(node.name, entry);
    const r = checkRemote(node, index.ctx);
    if (!r.cand) {
      entry.problems.push(r.problem);
      continue;
    }
    if (r.cand.underlay) {
      const twin = index.underlays.get(r.cand.underlay);
      if (twin !== undefined) {
        index.clean = false;
        entry.problems.push({
          kind: "duplicate_address",
          level: "error",
          network: net.name,
          node: node.name,
          message: `network ${net.name}: node ${node.name} has underlay address ` +
            `${r.cand.underlay}, already node ${twin}'s; skipped`,
        });
        continue;
      }
      index.underlays.set(r.cand.underlay, node.name);
    }
    entry.underlay = r.cand.underlay;
    candidates.push(r.cand);
  }
  return candidates;
}

/**
 * The CIDRs each candidate keeps once overlaps are resolved (earlier owners
 * win), entered in the index's intervals.
 */
function acceptedCidrs(
  index: NetworkIndex,
  candidates: Candidate[],
  before: ReadonlyMap<string, string> | undefined,
): Map<Candidate, NodeCidr[]> {
  const claims: Claim[] = candidates.flatMap((cand) =>
    cand.nn.cidrs.map((cidr) => ({
      cand,
      cidr,
      rank: cand.local ? 0 : before?.get(cidr.cidr) === cand.node.name ? 1 : 2,
    }))
  );
  const overlapProblems: Problem[] = [];
  const kept = resolveOverlaps(claims, index.ctx.net, overlapProblems);
  if (overlapProblems.length) index.clean = false;
  for (const p of overlapProblems) index.entries.get(p.node!)?.problems.push(p);
  const accepted = new Map<Candidate, NodeCidr[]>();
  for (const k of kept) {
    const list = accepted.get(k.cand);
    if (list) list.push(k.cidr);
    else accepted.set(k.cand, [k.cidr]);
    index.intervals.push({
      family: k.cidr.family,
      start: k.cidr.start,
      end: k.cidr.end,
      node: k.cand.node.name,
    });
  }
  index.intervals.sort(byStart);
  return accepted;
}

/** The vxlan device a network wants on this node (its entries are added per node). */
function desiredVxlan(
  net: NetworkConfig,
  local: string,
  localCidrs: NodeCidr[],
): DesiredNetwork["vxlan"] {
  const vxlan = net.vxlan!;
  return {
    owner: vxlan.owner,
    device: vxlan.device,
    vni: vxlan.vni,
    port: vxlan.port,
    underlayDevice: vxlan.underlayDevice,
    local,
    mac: tunnelMac(vxlan, local),
    mtu: net.mtu,
    // The plugin's tunnel is a bridge port: the bridge holds the node's gateway address.
    addresses: vxlan.owner === "plugin"
      ? []
      : [...firstPerFamily(localCidrs)].map(([f, ip]) => `${ip}/${f === 4 ? 32 : 128}`),
    fdb: new Map(),
    neighs: new Map(),
  };
}

/** Plans every remote candidate's routes into `out` and its index entry. */
function planRemotes(
  out: DesiredNetwork,
  index: NetworkIndex,
  candidates: Candidate[],
  accepted: Map<Candidate, NodeCidr[]>,
): void {
  for (const cand of candidates) {
    if (cand.local) continue;
    const cidrs = accepted.get(cand) ?? [];
    const entry = index.entries.get(cand.node.name)!;
    entry.cidrs = cidrs;
    if (!cidrs.length) continue;
    // The common case (every CIDR accepted) reuses the plan made for this node object.
    const plan = cidrs.length === cand.nn.cidrs.length
      ? fullPlan(cand, out.net)
      : planRoutes(cand, out.net, cidrs);
    entry.problems.push(...plan.problems);
    if (plan.routes.length) {
      entry.plan = plan;
      addPlan(out, plan, cand.underlay);
    }
  }
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
  const ctx: LocalContext = {
    net,
    localName: input.localName,
    localAddrs: new Set(input.localAddresses),
    localKeys: localKeysOf(input.localAddresses),
  };
  const localProblems: Problem[] = [];
  const localNode = nodes.find((n) => n.name === input.localName);
  const localCand = localCandidate(net, localNode, localProblems);
  if (net.vxlan) {
    ctx.local = localUnderlay(net, localCand, input);
    if (!ctx.local) {
      problems.push(...localProblems, noLocalAddress(net, input.localName));
      out.hold = true;
      return out;
    }
    ctx.underlayFamily = ctx.local.includes(":") ? 6 : 4;
    if (localCand) localCand.underlay = ctx.local;
  }

  const index: NetworkIndex = {
    ctx,
    clean: true,
    entries: new Map(),
    intervals: [],
    underlays: new Map(),
    localProblems,
  };
  if (ctx.local) index.underlays.set(ctx.local, input.localName);
  const remotes = nodes.filter((n) => n !== localNode).sort((a, b) => (a.name < b.name ? -1 : 1));
  const candidates = [...(localCand ? [localCand] : []), ...remoteCandidates(index, remotes)];
  const accepted = acceptedCidrs(index, candidates, input.previousOwners?.get(net.name));
  if (net.vxlan) {
    out.vxlan = desiredVxlan(net, ctx.local!, localCand ? accepted.get(localCand) ?? [] : []);
  }
  planRemotes(out, index, candidates, accepted);
  out.nodesSynced = [...index.entries.values()].filter((e) => e.plan).length;
  out.nodesSkipped = index.entries.size - out.nodesSynced;
  out.index = index;
  problems.push(...localProblems);
  for (const e of index.entries.values()) problems.push(...e.problems);
  return out;
}

/** Adds a node's plan to the network's desired state. */
export function addPlan(out: DesiredNetwork, plan: RoutePlan, underlay: string | undefined): void {
  for (const r of plan.routes) {
    out.routes.set(r.key, r);
    out.owners.set(r.dst, r.node);
  }
  if (out.vxlan && plan.mac && underlay) {
    out.vxlan.fdb.set(plan.mac, underlay);
    for (const vtep of plan.vteps) out.vxlan.neighs.set(vtep, plan.mac);
  }
}

/** This node is not in the node set: every node is then remote. */
export function localMissing(localName: string, nodeCount: number): Problem[] {
  if (nodeCount === 0) return [];
  return [{
    kind: "local_node_missing",
    level: "warn",
    node: localName,
    message: `this node (${localName}) is not among the nodes; every node is treated as ` +
      `remote (set --node-name or NODE_NAME)`,
  }];
}

/** Computes every network's desired state from the node set. */
export function computeDesired(input: DesiredInput): DesiredState {
  const nodes = [...input.nodes];
  const globalProblems = nodes.some((n) => n.name === input.localName)
    ? []
    : localMissing(input.localName, nodes.length);
  const problems: Problem[] = [...globalProblems];
  const networks = input.networks.map((net) => computeNetwork(net, nodes, input, problems));
  return { networks, globalProblems, problems };
}
