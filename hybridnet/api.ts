/**
 * The hybrid networks as the API server holds them (Network and Subnet
 * objects of hydra.clusternet.io), as the router and the attachment use
 * them: only accepted subnets, by the same rules the controller's status
 * shows.
 *
 * @module
 */

import type { KubeClient } from "../kube/client.ts";
import type { HybridNetwork } from "./model.ts";
import { evaluate, HYBRID_API, type NetworkObject, type SubnetObject } from "./objects.ts";

/**
 * The hybrid networks as the router programs them from the API: each
 * Network with its accepted Subnets (an overlapping, invalid or orphaned
 * subnet is left out, exactly as its status says).
 */
export async function networksFromApi(client: KubeClient): Promise<HybridNetwork[]> {
  const base = `/apis/${HYBRID_API}`;
  const [nets, subnets] = await Promise.all([
    client.list<NetworkObject>(`${base}/networks`),
    client.list<SubnetObject>(`${base}/subnets`),
  ]);
  return evaluate(nets.items, subnets.items, []).accepted;
}
