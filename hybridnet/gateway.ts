/**
 * The node's gateway on an overlay subnet with `pool: true`.
 *
 * Such a subnet's pods take any free address of the subnet from hydra-pool,
 * in whichever /28 blocks their node claims, so no block gives the node a
 * "first address" to be their gateway. Instead:
 *
 * - the node itself holds one address of the subnet, allocated from the
 *   pool like a pod's but owned by the node (sandbox
 *   `hydra-hybrid-gateway-<node>`, interface `gateway`, no pod): a retried
 *   ADD gets the same address back, the reclaim controller frees it only
 *   once the node object is gone (it recognises the allocation by
 *   ipam/pool/node_owned.ts, whose names these must equal: checked by
 *   hybrid/pool_test.ts), and it lies in a block the node claimed, which
 *   every other node routes to it through the overlay;
 * - the pods get their address with the subnet's prefix and that address
 *   as their gateway; the node's overlay bridge holds it with the same
 *   prefix, so the node reaches every pod on its bridge, whichever block
 *   its address came from;
 * - the bridge answers ARP for the subnet's addresses on other nodes
 *   (proxy ARP): a pod sees the whole subnet on its link, and the node
 *   answers for what its routes send elsewhere (into the overlay), never
 *   for a pod of its own bridge.
 *
 * @module
 */

import type { NetConf } from "../cni/types.ts";
import type { HybridNetwork, HybridSubnet } from "./model.ts";
import { poolIpam } from "./attach.ts";

/** The sandbox id of a node's gateway allocation. */
export const GATEWAY_SANDBOX_PREFIX = "hydra-hybrid-gateway-";
/** The interface name of a node's gateway allocation. */
export const GATEWAY_IFNAME = "gateway";

/** The sandbox id under which `node` holds its gateway address. */
export function gatewaySandbox(node: string): string {
  return `${GATEWAY_SANDBOX_PREFIX}${node}`;
}

/** Whether a pool allocation is a node's gateway (not a pod's address). */
export function isNodeGateway(a: { containerID?: string; interface?: string; pod?: string }) {
  return !a.pod && a.interface === GATEWAY_IFNAME &&
    (a.containerID ?? "").startsWith(GATEWAY_SANDBOX_PREFIX);
}

/**
 * The IPAM-only conf that asks hydra-pool for the node's gateway address
 * of `subnet` (run as ADD with {@link gatewaySandbox} and
 * {@link GATEWAY_IFNAME}; no route, no gateway of its own).
 */
export function gatewayConf(
  net: HybridNetwork,
  subnet: HybridSubnet,
  poolOptions: Record<string, unknown> = {},
): NetConf {
  return {
    cniVersion: "1.0.0",
    name: net.name,
    type: "hydra-pool",
    ipam: { ...poolIpam(subnet, []), ...poolOptions },
  };
}

/**
 * Turns proxy ARP on for the overlay bridge `bridge` of the current
 * network namespace, answering at once (no random delay): pods ask for
 * addresses of other nodes' pods as on-link neighbours. Synchronous: the
 * namespace is the calling thread's (see netlink's `withNetnsSync`).
 */
export function enableProxyArp(bridge: string): void {
  if (!/^[A-Za-z0-9_-]{1,15}$/.test(bridge)) throw new Error(`bad bridge name ${bridge}`);
  Deno.writeTextFileSync(`/proc/sys/net/ipv4/neigh/${bridge}/proxy_delay`, "0");
  Deno.writeTextFileSync(`/proc/sys/net/ipv4/conf/${bridge}/proxy_arp`, "1");
}
