/**
 * What one node's kernel needs for a hybrid network, computed from the
 * node set alone (pure: no kernel access).
 *
 * The data plane, on node L with fabric address U(L):
 *
 * - one vxlan device on the uplink (no learning); per remote node R a
 *   permanent neighbour `U(R) lladdr mac(R)` and FDB entry `mac(R) dst U(R)`;
 * - in the network's own table T: every block of every remote node R —
 *   overlay and underlay alike — and R's fabric address itself, each
 *   `via U(R) dev <vxlan> onlink`;
 * - rules `from <overlay subnet> lookup T` and `to <overlay subnet> lookup T`.
 *
 * So whatever has an overlay address on either end travels the overlay, in
 * both directions (an underlay pod's replies to an overlay pod reach its own
 * node, which finds the overlay block in T), while traffic between underlay
 * addresses, nodes and the outside never meets a rule and stays on the
 * fabric. The node's own underlay blocks are not in T: an overlay pod
 * reaches them on the local uplink.
 *
 * Bad input never stops the rest: a node without a fabric address, a block
 * outside every subnet, or a block overlapping another node's is left out
 * with a {@link HybridProblem}; this node's blocks always win an overlap.
 *
 * @module
 */

import type { NodeInfo } from "../route/nodes.ts";
import { vxlanMac } from "../route/desired.ts";
import type { HybridNetwork, SubnetKind } from "../hybridnet/model.ts";
import { type HybridNode, hybridNode, type HybridProblem } from "../hybridnet/node.ts";

/** A policy rule sending overlay traffic to the network's table. */
export interface HybridRule {
  src?: string;
  dst?: string;
}

/** The desired kernel state of a hybrid network on one node. */
export interface HybridDesired {
  net: HybridNetwork;
  /** This node's fabric address (the vxlan source); undefined: nothing can be done. */
  local?: string;
  mac?: string;
  /** Remote MAC → remote fabric address. */
  fdb: Map<string, string>;
  /** Remote fabric address → remote MAC. */
  neighs: Map<string, string>;
  /** Destination → remote fabric address (the next hop through the vxlan device). */
  routes: Map<string, string>;
  rules: HybridRule[];
  /** This node's blocks, by kind. */
  localBlocks: Record<SubnetKind, string[]>;
  nodesSynced: number;
  problems: HybridProblem[];
}

/** An IPv4 CIDR as its network number and prefix length. */
function v4(cidr: string): { net: number; len: number } {
  const [ip, len] = cidr.split("/");
  const net = ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
  return { net, len: Number(len) };
}

/** The key of `net` cut to its first `len` bits. */
function keyOf(net: number, len: number): string {
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return `${(net & mask) >>> 0}/${len}`;
}

/**
 * The blocks each node keeps once overlaps are resolved: this node first,
 * then by name. Two CIDRs overlap exactly when one holds the other, so a
 * block is checked against the accepted ones by its own prefixes and by
 * the prefixes the accepted ones cover: a few lookups per block instead of
 * a comparison with every other block.
 */
function acceptBlocks(nodes: HybridNode[], localName: string, problems: HybridProblem[]): void {
  const ordered = [...nodes].sort((a, b) =>
    (a.name === localName ? -1 : b.name === localName ? 1 : 0) || (a.name < b.name ? -1 : 1)
  );
  const taken = new Map<string, { cidr: string; node: string }>();
  const under = new Map<string, { cidr: string; node: string }>();
  for (const n of ordered) {
    n.blocks = n.blocks.filter((b) => {
      const { net, len } = v4(b.cidr);
      let other = under.get(keyOf(net, len));
      for (let p = len; !other && p >= 0; p--) other = taken.get(keyOf(net, p));
      if (!other) {
        const mine = { cidr: b.cidr, node: n.name };
        taken.set(keyOf(net, len), mine);
        for (let p = len; p >= 0; p--) {
          if (!under.has(keyOf(net, p))) under.set(keyOf(net, p), mine);
        }
        return true;
      }
      problems.push({
        kind: "overlapping_block",
        node: n.name,
        message:
          `block ${b.cidr} of node ${n.name} overlaps node ${other.node}'s ${other.cidr}; not routed`,
      });
      return false;
    });
  }
}

/** Computes the desired state of `net` on node `localName`. */
export function planHybrid(
  net: HybridNetwork,
  nodeInfos: Iterable<NodeInfo>,
  localName: string,
): HybridDesired {
  const problems: HybridProblem[] = [];
  const nodes = [...nodeInfos].map((n) => hybridNode(n, net, problems));
  acceptBlocks(nodes, localName, problems);
  const self = nodes.find((n) => n.name === localName);
  const out: HybridDesired = {
    net,
    local: self?.address,
    mac: self?.address ? vxlanMac(net.vni, self.address) : undefined,
    fdb: new Map(),
    neighs: new Map(),
    routes: new Map(),
    rules: net.subnets.filter((s) => s.kind === "overlay").flatMap((
      s,
    ) => [{ src: s.cidr }, { dst: s.cidr }]),
    localBlocks: {
      overlay: self?.blocks.filter((b) => b.kind === "overlay").map((b) => b.cidr) ?? [],
      underlay: self?.blocks.filter((b) => b.kind === "underlay").map((b) => b.cidr) ?? [],
    },
    nodesSynced: 0,
    problems,
  };
  if (!out.local) return out;
  const seen = new Map<string, string>([[out.local, localName]]);
  for (const n of nodes) {
    if (n === self || !n.address) continue;
    const twin = seen.get(n.address);
    if (twin !== undefined) {
      problems.push({
        kind: "duplicate_address",
        node: n.name,
        message: `node ${n.name} has fabric address ${n.address}, already node ${twin}'s; left out`,
      });
      continue;
    }
    seen.set(n.address, n.name);
    const mac = vxlanMac(net.vni, n.address);
    out.fdb.set(mac, n.address);
    out.neighs.set(n.address, mac);
    out.routes.set(`${n.address}/32`, n.address);
    for (const b of n.blocks) out.routes.set(b.cidr, n.address);
    out.nodesSynced++;
  }
  return out;
}
