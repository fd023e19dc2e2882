/**
 * Hybrid subnets on hydra's cluster-wide IPAM (hydra-pool): a subnet with
 * `pool: true` is one hydra-pool range whose network name is the subnet's
 * name; nodes claim its addresses in /28 AddressBlocks, and those blocks —
 * not node annotations — are what the router routes through the overlay
 * to each node.
 *
 * @module
 */

import type { KubeClient } from "../kube/client.ts";
import { cidrContains, networkAddress } from "../ipaddr/ip.ts";
import { type AddressBlock, API_VERSION, NETWORK_LABEL, networkKey } from "../ipam/pool/objects.ts";
import type { NodeInfo } from "../route/nodes.ts";
import type { HybridNetwork, HybridSubnet } from "../hybridnet/model.ts";
import { blocksAnnotation } from "../hybridnet/node.ts";

/** A block of a pool-backed subnet, claimed by a node. */
export interface PoolBlock {
  /** The network key (the subnet's name). */
  network: string;
  cidr: string;
  node: string;
}

/** The network's pool-backed subnets. */
function poolSubnets(net: HybridNetwork): HybridSubnet[] {
  return net.subnets.filter((s) => s.pool);
}

/** Lists the AddressBlocks of the network's pool-backed subnets. */
export async function listPoolBlocks(client: KubeClient, net: HybridNetwork): Promise<PoolBlock[]> {
  const keys = poolSubnets(net).map((s) => networkKey(s.name));
  if (!keys.length) return [];
  const list = await client.list<AddressBlock>(`/apis/${API_VERSION}/addressblocks`, {
    query: { labelSelector: `${NETWORK_LABEL} in (${keys.join(",")})` },
  });
  return list.items.map((b) => ({ network: b.spec.network, cidr: b.spec.cidr, node: b.spec.node }));
}

/**
 * The nodes with the pool's blocks added to their blocks annotation: a
 * block counts when its network is a pool-backed subnet's, it lies inside
 * that subnet and a node holds it (a block whose node is gone is routed by
 * no one).
 */
export function withPoolBlocks(
  nodes: readonly NodeInfo[],
  net: HybridNetwork,
  blocks: readonly PoolBlock[],
): NodeInfo[] {
  const subnets = new Map(poolSubnets(net).map((s) => [networkKey(s.name), s]));
  const byNode = new Map<string, string[]>();
  for (const b of blocks) {
    const s = subnets.get(b.network);
    if (!s || !b.node || !cidrContains(s.cidr, networkAddress(b.cidr))) continue;
    const list = byNode.get(b.node) ?? [];
    list.push(b.cidr);
    byNode.set(b.node, list);
  }
  const key = blocksAnnotation(net.name);
  return nodes.map((n) => {
    const extra = byNode.get(n.name);
    if (!extra) return n;
    const own = n.annotations[key]?.trim();
    return {
      ...n,
      annotations: { ...n.annotations, [key]: [own, ...extra].filter(Boolean).join(",") },
    };
  });
}
