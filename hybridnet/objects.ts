/**
 * The Network and Subnet objects (hydra.clusternet.io/v1alpha1) and the
 * status the controller computes for them — from the same validation the
 * router applies to its config (`model.ts`), so an object the controller
 * shows as Ready is one the router accepts, and a Refused one is one it
 * never routes.
 *
 * @module
 */

import {
  broadcastAddress,
  cidrContains,
  compareIp,
  ipToBigInt,
  lastAddress,
  networkAddress,
  nextIp,
  prevIp,
} from "../ipaddr/ip.ts";
import {
  checkSubnets,
  HybridConfigError,
  type HybridNetwork,
  type HybridSubnet,
  parseHybridNetwork,
  parseSubnet,
} from "./model.ts";

/** The API group and version of the objects. */
export const HYBRID_API = "hydra.clusternet.io/v1alpha1";

/** Object metadata the controller reads. */
export interface ObjectMeta {
  name: string;
  creationTimestamp?: string;
  generation?: number;
  resourceVersion?: string;
}

/** A Network object. */
export interface NetworkObject {
  metadata: ObjectMeta;
  spec: Record<string, unknown>;
  status?: NetworkStatus;
}

/** A Subnet object. */
export interface SubnetObject {
  metadata: ObjectMeta;
  spec: Record<string, unknown> & { network?: string };
  status?: SubnetStatus;
}

/** A Subnet's status. */
export interface SubnetStatus {
  phase: "Ready" | "Refused" | "Pending";
  reason?: string;
  message?: string;
  total: number;
  used: number;
  available: number;
  observedGeneration?: number;
}

/** A Network's status: its accepted subnets and their counts summed. */
export interface NetworkStatus {
  subnets: number;
  total: number;
  used: number;
  available: number;
}

/**
 * How many addresses the subnet hands out: start..end (default the
 * subnet without its network and broadcast addresses), less the gateway
 * and the excluded CIDRs.
 */
export function subnetSize(s: HybridSubnet): number {
  const start = s.start ?? nextIp(networkAddress(s.cidr));
  const end = s.end ?? prevIp(broadcastAddress(s.cidr));
  if (compareIp(start, end) > 0) return 0;
  const lo = ipToBigInt(start);
  const hi = ipToBigInt(end);
  let n = hi - lo + 1n;
  const holes: [bigint, bigint][] = [];
  for (const e of [...s.excludes, ...(s.gateway ? [`${s.gateway}/32`] : [])]) {
    const a = ipToBigInt(networkAddress(e));
    const b = ipToBigInt(lastAddress(e));
    const from = a > lo ? a : lo;
    const to = b < hi ? b : hi;
    if (from <= to) holes.push([from, to]);
  }
  holes.sort((x, y) => (x[0] < y[0] ? -1 : 1));
  let covered = -1n;
  for (const [from, to] of holes) {
    const f = from > covered ? from : covered + 1n;
    if (f <= to) n -= to - f + 1n;
    if (to > covered) covered = to;
  }
  return Number(n);
}

/** The router's view of a Network object with its accepted subnets; throws HybridConfigError. */
export function networkFromObject(obj: NetworkObject, subnets: HybridSubnet[]): HybridNetwork {
  const { mode: _mode, ...spec } = obj.spec;
  return parseHybridNetwork({ ...spec, name: obj.metadata.name, subnets: subnets.map(rawSubnet) });
}

function rawSubnet(s: HybridSubnet): Record<string, unknown> {
  const raw: Record<string, unknown> = {
    name: s.name,
    kind: s.kind,
    cidr: s.cidr,
    blockSize: s.blockSize,
  };
  if (s.gateway) raw.gateway = s.gateway;
  if (s.start) raw.start = s.start;
  if (s.end) raw.end = s.end;
  if (s.excludes.length) raw.excludes = s.excludes;
  if (s.pool) raw.pool = true;
  return raw;
}

/** Oldest first, then by name: the order in which subnets claim their addresses. */
function byAge(a: SubnetObject, b: SubnetObject): number {
  const ta = a.metadata.creationTimestamp ?? "";
  const tb = b.metadata.creationTimestamp ?? "";
  return ta < tb ? -1 : ta > tb ? 1 : a.metadata.name < b.metadata.name ? -1 : 1;
}

/** The outcome of {@link evaluate}. */
export interface Evaluation {
  subnets: Map<string, SubnetStatus>;
  networks: Map<string, NetworkStatus>;
  /** The networks as the router would program them (accepted subnets only). */
  accepted: HybridNetwork[];
}

/**
 * Computes every object's status from the objects and the addresses in
 * use (each counted in the subnet holding it).
 */
export function evaluate(
  networks: readonly NetworkObject[],
  subnetObjs: readonly SubnetObject[],
  usedIps: readonly string[],
): Evaluation {
  const out: Evaluation = { subnets: new Map(), networks: new Map(), accepted: [] };
  const netNames = new Set(networks.map((n) => n.metadata.name));
  const parsed: { obj: SubnetObject; subnet: HybridSubnet }[] = [];
  for (const obj of [...subnetObjs].sort(byAge)) {
    const name = obj.metadata.name;
    const refuse = (phase: SubnetStatus["phase"], reason: string, message: string) =>
      out.subnets.set(name, {
        phase,
        reason,
        message,
        total: 0,
        used: 0,
        available: 0,
        observedGeneration: obj.metadata.generation,
      });
    if (!obj.spec.network || !netNames.has(obj.spec.network)) {
      refuse("Pending", "NetworkMissing", `network ${obj.spec.network ?? "(none)"} does not exist`);
      continue;
    }
    try {
      const { network: _n, ...spec } = obj.spec;
      parsed.push({ obj, subnet: parseSubnet({ ...spec, name }, `subnet ${name}`) });
    } catch (err) {
      if (!(err instanceof HybridConfigError)) throw err;
      refuse("Refused", "Invalid", err.message);
    }
  }
  const overlaps = checkSubnets(
    parsed.map((p) => ({ network: p.obj.spec.network!, subnet: p.subnet })),
  );
  const refused = new Map(overlaps.map((p) => [p.subnet, p]));
  const counts = countUsed(parsed.map((p) => p.subnet), usedIps);
  for (const { obj, subnet } of parsed) {
    const overlap = refused.get(subnet.name);
    const total = overlap ? 0 : subnetSize(subnet);
    const used = counts.get(subnet.name) ?? 0;
    out.subnets.set(subnet.name, {
      phase: overlap ? "Refused" : "Ready",
      ...(overlap ? { reason: overlap.reason, message: overlap.message } : {}),
      total,
      used,
      available: Math.max(0, total - used),
      observedGeneration: obj.metadata.generation,
    });
  }
  for (const n of networks) {
    const mine = parsed.filter((p) =>
      p.obj.spec.network === n.metadata.name && !refused.has(p.subnet.name)
    );
    const st = mine.map((p) => out.subnets.get(p.subnet.name)!);
    out.networks.set(n.metadata.name, {
      subnets: mine.length,
      total: st.reduce((a, s) => a + s.total, 0),
      used: st.reduce((a, s) => a + s.used, 0),
      available: st.reduce((a, s) => a + s.available, 0),
    });
    try {
      if (mine.length) out.accepted.push(networkFromObject(n, mine.map((p) => p.subnet)));
    } catch (err) {
      if (!(err instanceof HybridConfigError)) throw err;
    }
  }
  return out;
}

function countUsed(subnets: HybridSubnet[], ips: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const ip of new Set(ips)) {
    if (ip.includes(":")) continue;
    const s = subnets.find((s) => cidrContains(s.cidr, ip));
    if (s) counts.set(s.name, (counts.get(s.name) ?? 0) + 1);
  }
  return counts;
}
