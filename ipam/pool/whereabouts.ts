/**
 * Taking over a range from whereabouts: the addresses its IPPool objects
 * (`ippools.whereabouts.cni.cncf.io`, any namespace, node slices too) hold
 * are read whenever hydra claims a block, and every one inside the block
 * is recorded in it as a hold (`source: whereabouts`, with whereabouts'
 * podref, container ID and interface) in the same create that claims it,
 * so hydra never hands out an address whereabouts gave to a pod. The
 * reclaim controller drops a hold once its pod is gone.
 *
 * Pools of every whereabouts `network_name` are read: holding an address
 * of an unrelated network for a while is harmless, handing out one that
 * is in use is not. Each allocation of an IPPool is an offset from the
 * network address of its `spec.range` (whereabouts' own format).
 *
 * @module
 */

import type { KubeClient } from "../../kube/client.ts";
import { isNotFound } from "../../kube/errors.ts";
import {
  formatIpAddr,
  type IpAddr,
  type IpNet,
  ipNetContains,
  networkIpAddr,
  parseIpNet,
} from "../../ipaddr/ip.ts";
import type { Allocation } from "./objects.ts";
import { type Deadline, withRetry } from "./store.ts";

/** The collection of whereabouts' IPPools across namespaces. */
export const WHEREABOUTS_POOLS = "/apis/whereabouts.cni.cncf.io/v1alpha1/ippools";

/** An address whereabouts holds. */
export interface WhereaboutsHold {
  ip: IpAddr;
  podRef?: string;
  containerID?: string;
  ifName?: string;
}

interface WhereaboutsPool {
  metadata: { name: string; namespace?: string };
  spec?: {
    range?: string;
    allocations?: Record<string, { id?: string; podref?: string; ifname?: string }>;
  };
}

/** The holds of one IPPool object; malformed entries are skipped (they hold nothing we can read). */
export function holdsOfPool(pool: WhereaboutsPool): WhereaboutsHold[] {
  const range = pool.spec?.range ? parseIpNet(pool.spec.range) : undefined;
  if (!range) return [];
  const first = networkIpAddr(range.ip, range.prefix);
  const out: WhereaboutsHold[] = [];
  for (const [offset, a] of Object.entries(pool.spec?.allocations ?? {})) {
    if (!/^[0-9]+$/.test(offset)) continue;
    const ip: IpAddr = { family: first.family, value: first.value + BigInt(offset) };
    if (!ipNetContains({ ip: first, prefix: range.prefix }, ip)) continue;
    out.push({ ip, podRef: a?.podref, containerID: a?.id, ifName: a?.ifname });
  }
  return out;
}

/**
 * Every address whereabouts holds, or undefined when its CRD is not
 * installed (nothing to take over).
 */
export async function readWhereaboutsHolds(
  client: KubeClient,
  d: Deadline,
): Promise<WhereaboutsHold[] | undefined> {
  try {
    const list = await withRetry(
      "list whereabouts IPPools",
      d,
      (timeoutMs) => client.list<WhereaboutsPool>(WHEREABOUTS_POOLS, { timeoutMs }),
    );
    return (list.items ?? []).flatMap(holdsOfPool);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The holds inside `cidr`, as block allocations. */
export function holdsIn(
  holds: readonly WhereaboutsHold[],
  cidr: IpNet,
  time: string,
): Allocation[] {
  return holds.filter((h) => ipNetContains(cidr, h.ip)).map((h) => ({
    ip: formatIpAddr(h.ip),
    source: "whereabouts" as const,
    ...(h.podRef ? { pod: h.podRef } : {}),
    ...(h.containerID ? { containerID: h.containerID } : {}),
    ...(h.ifName ? { interface: h.ifName } : {}),
    time,
  }));
}
