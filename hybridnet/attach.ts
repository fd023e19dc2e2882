/**
 * Attaching a pod to a hybrid network: which subnet it gets (its own
 * annotation, else what its attachment asks, else the network's default
 * kind), and the bridge delegate that puts it there.
 *
 * - **overlay**: a per-network bridge on the node holding the first
 *   address of the node's overlay block as the pods' gateway (for a
 *   pool-backed subnet: the node's own pool address, see `gateway.ts`);
 *   the router carries the blocks between nodes.
 * - **underlay**: a port of the uplink bridge (or, with
 *   `underlayAttachment: macvlan`, a macvlan device in bridge mode on the
 *   uplink NIC), an address of the node's block of the fabric subnet, the
 *   fabric's gateway as next hop, and the overlay subnets through the pod's
 *   own node (which sends them into the overlay: the return path of
 *   overlay → underlay traffic; a macvlan pod reaches its node through the
 *   node's shim on the same NIC).
 *
 * Addresses: host-local style ranges covering the node's block (less the
 * subnet's excludes and gateway), or, for a subnet with `pool: true`,
 * hydra-pool's cluster-wide range (see `pool.ts`).
 *
 * @module
 */

import type { NetConf } from "../cni/types.ts";
import {
  broadcastAddress,
  cidrContains,
  compareIp,
  lastAddress,
  networkAddress,
  nextIp,
  prevIp,
} from "../ipaddr/ip.ts";
import {
  type HybridNetwork,
  type HybridSubnet,
  KIND_ANNOTATION,
  type SubnetKind,
} from "./model.ts";
import type { HybridNode } from "./node.ts";

/** What a pod is attached to. */
export interface PodPlacement {
  subnet: HybridSubnet;
  /** The node's block of it the address comes from; absent for a pool-backed subnet (hydra-pool picks). */
  block?: string;
}

/** A pod's choice could not be met. */
export class PlacementError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PlacementError";
  }
}

/**
 * The subnet and block a pod gets on `node`: the pod annotation
 * {@link KIND_ANNOTATION} ("overlay", "underlay" or a subnet's name), else
 * `requested` (from the attachment), else the network's default kind.
 */
export function placePod(
  net: HybridNetwork,
  node: Pick<HybridNode, "name" | "blocks">,
  annotations: Readonly<Record<string, string>> = {},
  requested?: string,
): PodPlacement {
  const want = annotations[KIND_ANNOTATION]?.trim() || requested || net.defaultKind;
  const bySubnet = net.subnets.find((s) => s.name === want);
  if (!bySubnet && want !== "overlay" && want !== "underlay") {
    throw new PlacementError(
      `network ${net.name}: "${want}" is neither a kind (overlay, underlay) nor one of its subnets`,
    );
  }
  const fits = (s: HybridSubnet) => bySubnet ? s === bySubnet : s.kind === (want as SubnetKind);
  for (const b of node.blocks) {
    const subnet = net.subnets.find((s) => s.name === b.subnet);
    if (subnet && fits(subnet) && !subnet.pool) return { subnet, block: b.cidr };
  }
  // hydra-pool claims the node's blocks itself, on the first address it hands out there.
  const pooled = net.subnets.find((s) => s.pool && fits(s));
  if (pooled) return { subnet: pooled };
  throw new PlacementError(
    `network ${net.name}: node ${node.name} has no block of ${
      bySubnet ? "subnet" : "kind"
    } ${want}`,
  );
}

/** The addresses of `block` the subnet hands out, as host-local ranges (excludes cut out). */
export function blockRanges(subnet: HybridSubnet, block: string): Record<string, string>[] {
  const lo0 = subnet.start ?? nextIp(networkAddress(subnet.cidr));
  const hi0 = subnet.end ?? prevIp(broadcastAddress(subnet.cidr));
  const bLo = networkAddress(block);
  const bHi = lastAddress(block);
  let lo = compareIp(bLo, lo0) > 0 ? bLo : lo0;
  const hi = compareIp(bHi, hi0) < 0 ? bHi : hi0;
  const holes = [...subnet.excludes, ...(subnet.gateway ? [`${subnet.gateway}/32`] : [])]
    .map((e) => [networkAddress(e), lastAddress(e)] as const)
    .sort((a, b) => compareIp(a[0], b[0]));
  const ranges: Record<string, string>[] = [];
  const push = (from: string, to: string) => {
    if (compareIp(from, to) <= 0) {
      ranges.push({ subnet: subnet.cidr, rangeStart: from, rangeEnd: to });
    }
  };
  for (const [hs, he] of holes) {
    if (compareIp(he, lo) < 0 || compareIp(hs, hi) > 0) continue;
    if (compareIp(hs, lo) > 0) push(lo, prevIp(hs));
    if (compareIp(he, hi) >= 0) return ranges;
    lo = nextIp(he);
  }
  push(lo, hi);
  return ranges;
}

/** Options of {@link hybridDelegate}. */
export interface DelegateOptions {
  /** "hydra": hydra-bridge and hydra-ipam; "reference": bridge and host-local. */
  plugins: "hydra" | "reference";
  /** IPAM state folder. */
  dataDir?: string;
  /** The pod's default route goes through this attachment. */
  defaultRoute: boolean;
  /** More destinations (the outside) through this attachment when it is not the default. */
  extraRoutes?: string[];
  /** hydra-pool's own keys (kubeconfig, nodeName, daemonSocket, …) for a pool-backed subnet. */
  poolOptions?: Record<string, unknown>;
  /** A pool-backed overlay subnet: the node's gateway address there (see `gateway.ts`). */
  nodeGateway?: string;
}

/** The overlay bridge of a network on every node. */
export function overlayBridge(net: HybridNetwork): string {
  return `hyo-${net.name}`.slice(0, 15);
}

/** The bridge delegate attaching a pod at `place` on node `node` (its fabric address). */
export function hybridDelegate(
  net: HybridNetwork,
  place: PodPlacement,
  nodeAddress: string,
  opts: DelegateOptions,
): NetConf {
  const hydra = opts.plugins === "hydra";
  const overlays = net.subnets.filter((s) => s.kind === "overlay").map((s) => s.cidr);
  const { subnet, block } = place;
  const ipamBase = {
    type: hydra ? "hydra-ipam" : "host-local",
    ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
  };
  if (subnet.kind === "overlay") return overlayDelegate(net, place, opts);
  const routes = [
    ...(opts.defaultRoute ? [{ dst: "0.0.0.0/0", gw: subnet.gateway }] : []),
    ...(opts.defaultRoute
      ? []
      : (opts.extraRoutes ?? []).map((dst) => ({ dst, gw: subnet.gateway }))),
    // Overlay addresses through the pod's own node, never the fabric's gateway.
    ...overlays.map((dst) => ({ dst, gw: nodeAddress })),
  ];
  const ipam = subnet.pool || !block ? { ...poolIpam(subnet, routes), ...opts.poolOptions } : {
    ...ipamBase,
    ranges: [blockRanges(subnet, block).map((r) => ({ ...r, gateway: subnet.gateway }))],
    routes,
  };
  if (net.underlayAttachment === "macvlan") {
    // Bridge mode: the node's shim on the same master reaches the pod, and the pod its node.
    return {
      cniVersion: "1.0.0",
      name: net.name,
      type: hydra ? "hydra-macvlan" : "macvlan",
      master: net.uplink,
      mode: "bridge",
      ipam,
    };
  }
  return {
    cniVersion: "1.0.0",
    name: net.name,
    type: hydra ? "hydra-bridge" : "bridge",
    bridge: net.uplink,
    isGateway: false,
    ipam,
  };
}

/**
 * An overlay pod's delegate: on the network's overlay bridge, its node as
 * gateway — the first address of the node's block, or, for a pool-backed
 * subnet, the node's own pool address (`opts.nodeGateway`) with the pod's
 * address of the whole subnet, on its link.
 */
function overlayDelegate(net: HybridNetwork, place: PodPlacement, opts: DelegateOptions): NetConf {
  const hydra = opts.plugins === "hydra";
  const { subnet, block } = place;
  const pooled = subnet.pool || !block;
  if (pooled && !opts.nodeGateway) {
    throw new PlacementError(`network ${net.name}: an overlay pod needs its node's gateway`);
  }
  // A pool pod's own subnet is on its link: a route to it would clash with the connected one.
  const dsts = net.subnets.map((s) => s.cidr).filter((c) => !pooled || c !== subnet.cidr);
  const routes = opts.defaultRoute
    ? [{ dst: "0.0.0.0/0" }]
    : [...dsts, ...(opts.extraRoutes ?? [])].map((dst) => ({ dst }));
  const ipam = pooled
    ? { ...poolIpam({ ...subnet, gateway: opts.nodeGateway }, routes), ...opts.poolOptions }
    : {
      type: hydra ? "hydra-ipam" : "host-local",
      ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
      ranges: [[{ subnet: block, gateway: nextIp(networkAddress(block!)) }]],
      routes,
    };
  return {
    cniVersion: "1.0.0",
    name: net.name,
    type: hydra ? "hydra-bridge" : "bridge",
    bridge: overlayBridge(net),
    isGateway: true,
    mtu: net.mtu,
    ipam,
  };
}

/** Whether `ip` lies in one of the network's overlay subnets. */
export function isOverlayAddress(net: HybridNetwork, ip: string): boolean {
  return net.subnets.some((s) => s.kind === "overlay" && cidrContains(s.cidr, ip));
}

/**
 * The IPAM section giving a pod an address of `subnet` from hydra-pool
 * (whereabouts' keys): the subnet's range and window, its excludes and
 * gateway never handed out; `routes` copied into the result.
 */
export function poolIpam(
  subnet: HybridSubnet,
  routes: { dst: string; gw?: string }[],
): { type: string; [key: string]: unknown } {
  return {
    type: "hydra-pool",
    network_name: subnet.name,
    range: subnet.cidr,
    ...(subnet.start ? { range_start: subnet.start } : {}),
    ...(subnet.end ? { range_end: subnet.end } : {}),
    ...(subnet.excludes.length ? { exclude: subnet.excludes } : {}),
    ...(subnet.gateway ? { gateway: subnet.gateway } : {}),
    routes,
  };
}
