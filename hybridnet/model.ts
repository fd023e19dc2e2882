/**
 * The hybrid network model: one network made of overlay subnets (carried
 * between nodes over vxlan) and underlay subnets (pods on the physical
 * fabric, with the fabric's gateway), and the rules every part of hydra
 * applies to it — the router, the controller that keeps the objects'
 * status, and the attachment of pods — so they can never disagree.
 *
 * ```yaml
 * networks:
 *   - name: hy
 *     vni: 7000                # the overlay's VXLAN network identifier
 *     uplink: br-fab           # the node's device on the fabric
 *     protocol: 210            # routes and rules the router owns
 *     table: 210               # the table overlay traffic is looked up in
 *     defaultKind: overlay     # pods that do not choose
 *     underlayAttachment: bridge  # or macvlan (uplink = the NIC, the master)
 *     subnets:
 *       - { name: ov, kind: overlay, cidr: 10.250.0.0/16, blockSize: 24 }
 *       - name: fab
 *         kind: underlay
 *         cidr: 192.168.50.0/24
 *         gateway: 192.168.50.1
 *         start: 192.168.50.64
 *         end: 192.168.50.191
 *         excludes: [192.168.50.100/30]
 * ```
 *
 * Subnets never overlap, within a network or across networks: every
 * address belongs to exactly one subnet and thus one kind, which is what
 * lets the router tell from an address alone how to carry it. IPv4 only.
 *
 * @module
 */

import {
  cidrContains,
  cidrsOverlap,
  compareIp,
  isIp,
  networkCidr,
  parseCidr,
} from "../ipaddr/ip.ts";

/** How a subnet's pods are connected. */
export type SubnetKind = "overlay" | "underlay";

/** One subnet of a hybrid network. */
export interface HybridSubnet {
  name: string;
  kind: SubnetKind;
  /** The subnet, canonical (host bits cleared). */
  cidr: string;
  /** Underlay: the fabric's gateway, the pods' default route. */
  gateway?: string;
  /** First and last address handed out (default: the subnet without network, gateway, broadcast). */
  start?: string;
  end?: string;
  /** Addresses or CIDRs never handed out. */
  excludes: string[];
  /** Prefix length of the per-node blocks the subnet is split into (default 26 underlay, 24 overlay). */
  blockSize: number;
  /**
   * Addresses from hydra's cluster-wide IPAM (hydra-pool, network name =
   * the subnet's name), in the /28 blocks nodes claim there; an overlay
   * subnet's pods then have the subnet's prefix and their node's gateway
   * address, itself from the pool (see `gateway.ts`).
   */
  pool: boolean;
}

/**
 * How underlay pods sit on the fabric: ports of the uplink bridge, or
 * macvlan devices (bridge mode) of the uplink NIC.
 */
export type UnderlayAttachment = "bridge" | "macvlan";

/** A hybrid network as the router and the attachment see it. */
export interface HybridNetwork {
  name: string;
  defaultKind: SubnetKind;
  /** vxlan device (at most 15 bytes; default hy-<name>). */
  device: string;
  vni: number;
  port: number;
  /**
   * The node's device on the fabric: the vxlan underlay, and the underlay
   * pods' bridge (`bridge`) or their macvlan master (`macvlan`).
   */
  uplink: string;
  /** How underlay pods are attached to the uplink. */
  underlayAttachment: UnderlayAttachment;
  /**
   * `macvlan`: the node's own macvlan device (bridge mode) on the uplink,
   * which the router keeps: a macvlan pod cannot reach its master's host,
   * so the node reaches its macvlan pods, and they reach it (their way into
   * the overlay), through this "shim" (at most 15 bytes; default hym-<name>).
   */
  shim: string;
  /** Route and rule protocol number the router owns (5–255). */
  protocol: number;
  /** Routing table of overlay traffic. */
  table: number;
  /** Priority of the policy rules sending overlay traffic to `table`. */
  rulePriority: number;
  /** MTU of the vxlan device (and of overlay pods). */
  mtu: number;
  subnets: HybridSubnet[];
}

/** Input that cannot be used. */
export class HybridConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HybridConfigError";
  }
}

/** Where a hybrid network's node annotations live. */
export const HYBRID_ANNOTATION_PREFIX = "hydra.clusternet.io/";
/** The pod annotation choosing a subnet kind (or a subnet by name) on a hybrid network. */
export const KIND_ANNOTATION = "hybrid.hydra.clusternet.io/kind";

/** The prefix length of hydra-pool's blocks (16 addresses). */
export const POOL_BLOCK = 28;

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IFNAME = /^[^/:\s]{1,15}$/;
const NETWORK_KEYS = new Set([
  "name",
  "defaultKind",
  "device",
  "vni",
  "port",
  "uplink",
  "underlayAttachment",
  "shim",
  "protocol",
  "table",
  "rulePriority",
  "mtu",
  "subnets",
]);
const SUBNET_KEYS = new Set([
  "name",
  "kind",
  "cidr",
  "gateway",
  "start",
  "end",
  "excludes",
  "blockSize",
  "pool",
]);

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function int(where: string, key: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new HybridConfigError(`${where}: ${key} must be a whole number from ${min} to ${max}`);
  }
  return v;
}

function kindOf(where: string, key: string, v: unknown): SubnetKind {
  if (v !== "overlay" && v !== "underlay") {
    throw new HybridConfigError(`${where}: ${key} must be "overlay" or "underlay"`);
  }
  return v;
}

function ipv4(where: string, key: string, v: unknown, cidr: string): string {
  if (typeof v !== "string" || !isIp(v) || v.includes(":")) {
    throw new HybridConfigError(`${where}: ${key} must be an IPv4 address`);
  }
  if (!cidrContains(cidr, v)) {
    throw new HybridConfigError(`${where}: ${key} ${v} is not in ${cidr}`);
  }
  return v;
}

/** Validates one subnet entry (alone; {@link checkSubnets} compares them). */
export function parseSubnet(raw: unknown, where: string): HybridSubnet {
  if (!isObject(raw)) throw new HybridConfigError(`${where}: must be an object`);
  if (typeof raw.name !== "string" || !NAME.test(raw.name)) {
    throw new HybridConfigError(`${where}: name must be a DNS label`);
  }
  where = `${where} (${raw.name})`;
  for (const k of Object.keys(raw)) {
    if (!SUBNET_KEYS.has(k)) throw new HybridConfigError(`${where}: unknown key ${k}`);
  }
  const kind = kindOf(where, "kind", raw.kind);
  if (typeof raw.cidr !== "string" || raw.cidr.includes(":")) {
    throw new HybridConfigError(`${where}: cidr must be an IPv4 CIDR`);
  }
  let cidr: string;
  try {
    cidr = networkCidr(raw.cidr);
    if (!raw.cidr.includes("/")) throw new Error();
  } catch {
    throw new HybridConfigError(`${where}: cidr ${raw.cidr} is not a CIDR`);
  }
  const prefix = parseCidr(cidr).prefixLen;
  if (raw.pool !== undefined && typeof raw.pool !== "boolean") {
    throw new HybridConfigError(`${where}: pool must be true or false`);
  }
  const pool = raw.pool === true;
  if (pool && raw.blockSize !== undefined && raw.blockSize !== POOL_BLOCK) {
    throw new HybridConfigError(`${where}: the pool's blocks are /${POOL_BLOCK}`);
  }
  const subnet: HybridSubnet = {
    name: raw.name,
    kind,
    cidr,
    excludes: [],
    blockSize: pool
      ? POOL_BLOCK
      : raw.blockSize === undefined
      ? Math.max(prefix, kind === "underlay" ? 26 : 24)
      : int(where, "blockSize", raw.blockSize, prefix, 30),
    pool,
  };
  if (kind === "underlay") subnet.gateway = ipv4(where, "gateway", raw.gateway, cidr);
  else if (raw.gateway !== undefined) {
    throw new HybridConfigError(`${where}: an overlay subnet has no gateway (its node is)`);
  }
  if (raw.start !== undefined) subnet.start = ipv4(where, "start", raw.start, cidr);
  if (raw.end !== undefined) subnet.end = ipv4(where, "end", raw.end, cidr);
  if (subnet.start && subnet.end && compareIp(subnet.start, subnet.end) > 0) {
    throw new HybridConfigError(`${where}: start ${subnet.start} is after end ${subnet.end}`);
  }
  if (raw.excludes !== undefined) {
    if (!Array.isArray(raw.excludes)) {
      throw new HybridConfigError(`${where}: excludes must be a list`);
    }
    subnet.excludes = raw.excludes.map((e) => {
      const text = typeof e === "string" ? (e.includes("/") ? e : `${e}/32`) : "";
      if (!text || text.includes(":") || !isCidrText(text) || !cidrsOverlap(text, cidr)) {
        throw new HybridConfigError(
          `${where}: exclude ${JSON.stringify(e)} is not a CIDR in ${cidr}`,
        );
      }
      return text;
    });
  }
  return subnet;
}

function isCidrText(s: string): boolean {
  try {
    parseCidr(s);
    return true;
  } catch {
    return false;
  }
}

/** Validates one network entry; throws HybridConfigError naming the entry. */
export function parseHybridNetwork(raw: unknown, index = 0): HybridNetwork {
  let where = `networks[${index}]`;
  if (!isObject(raw)) throw new HybridConfigError(`${where}: must be an object`);
  if (typeof raw.name !== "string" || !NAME.test(raw.name)) {
    throw new HybridConfigError(`${where}: name must be a DNS label`);
  }
  where = `network ${raw.name}`;
  for (const k of Object.keys(raw)) {
    if (!NETWORK_KEYS.has(k)) throw new HybridConfigError(`${where}: unknown key ${k}`);
  }
  const device = raw.device ?? `hy-${raw.name}`.slice(0, 15);
  if (typeof device !== "string" || !IFNAME.test(device)) {
    throw new HybridConfigError(`${where}: device must be a device name`);
  }
  if (typeof raw.uplink !== "string" || !IFNAME.test(raw.uplink)) {
    throw new HybridConfigError(`${where}: uplink must name the node's device on the fabric`);
  }
  if (!Array.isArray(raw.subnets) || !raw.subnets.length) {
    throw new HybridConfigError(`${where}: subnets must be a non-empty list`);
  }
  const attachment = raw.underlayAttachment ?? "bridge";
  if (attachment !== "bridge" && attachment !== "macvlan") {
    throw new HybridConfigError(`${where}: underlayAttachment must be "bridge" or "macvlan"`);
  }
  const shim = raw.shim ?? `hym-${raw.name}`.slice(0, 15);
  if (typeof shim !== "string" || !IFNAME.test(shim)) {
    throw new HybridConfigError(`${where}: shim must be a device name`);
  }
  if (shim === device || shim === raw.uplink || device === raw.uplink) {
    throw new HybridConfigError(`${where}: device, shim and uplink must be three devices`);
  }
  const subnets = raw.subnets.map((s, i) => parseSubnet(s, `${where}: subnets[${i}]`));
  const protocol = raw.protocol === undefined ? 210 : int(where, "protocol", raw.protocol, 5, 255);
  const table = raw.table === undefined ? protocol : int(where, "table", raw.table, 1, 252);
  const net: HybridNetwork = {
    name: raw.name,
    defaultKind: raw.defaultKind === undefined
      ? "overlay"
      : kindOf(where, "defaultKind", raw.defaultKind),
    device,
    vni: int(where, "vni", raw.vni, 1, 0xffffff),
    port: raw.port === undefined ? 8472 : int(where, "port", raw.port, 1, 65535),
    uplink: raw.uplink,
    underlayAttachment: attachment,
    shim,
    protocol,
    table,
    rulePriority: raw.rulePriority === undefined
      ? 1000
      : int(where, "rulePriority", raw.rulePriority, 1, 32765),
    mtu: raw.mtu === undefined ? 1450 : int(where, "mtu", raw.mtu, 576, 65535),
    subnets,
  };
  const problems = checkSubnets(subnets.map((s) => ({ network: net.name, subnet: s })));
  if (problems.length) throw new HybridConfigError(`${where}: ${problems[0].message}`);
  if (!subnets.some((s) => s.kind === net.defaultKind)) {
    throw new HybridConfigError(`${where}: defaultKind ${net.defaultKind} has no subnet`);
  }
  return net;
}

/** A subnet with the network it belongs to. */
export interface PlacedSubnet {
  network: string;
  subnet: HybridSubnet;
}

/** Why a subnet is refused. */
export interface SubnetProblem {
  network: string;
  subnet: string;
  reason: "Overlap";
  message: string;
}

/**
 * Subnets that overlap one before them in the list (the earlier one keeps
 * its addresses: an established subnet is never displaced by a newcomer).
 */
export function checkSubnets(subnets: readonly PlacedSubnet[]): SubnetProblem[] {
  const problems: SubnetProblem[] = [];
  const kept: PlacedSubnet[] = [];
  for (const p of subnets) {
    const other = kept.find((k) => cidrsOverlap(k.subnet.cidr, p.subnet.cidr));
    if (!other) {
      kept.push(p);
      continue;
    }
    problems.push({
      network: p.network,
      subnet: p.subnet.name,
      reason: "Overlap",
      message: `subnet ${p.subnet.name} (${p.subnet.cidr}) overlaps subnet ${other.subnet.name} ` +
        `(${other.subnet.cidr}) of network ${other.network}; refused`,
    });
  }
  return problems;
}

/**
 * Whether a subnet may change from `before` to `after` (undefined: removed)
 * while `used` of its addresses are given out: a subnet in use keeps its
 * kind and its range, and cannot be removed. Returns the refusal, or
 * undefined when allowed.
 */
export function checkSubnetChange(
  before: HybridSubnet,
  after: HybridSubnet | undefined,
  used: number,
): string | undefined {
  if (used <= 0) return undefined;
  if (!after) return `subnet ${before.name} has ${used} addresses in use; it cannot be removed`;
  if (after.kind !== before.kind) {
    return `subnet ${before.name} has ${used} addresses in use; its kind cannot change from ` +
      `${before.kind} to ${after.kind}`;
  }
  if (after.cidr !== before.cidr) {
    return `subnet ${before.name} has ${used} addresses in use; its cidr cannot change`;
  }
  return undefined;
}

/** The subnet holding `ip` (or the whole of CIDR `ip`), if any. */
export function subnetOf(net: HybridNetwork, ip: string): HybridSubnet | undefined {
  const addr = ip.split("/")[0];
  return net.subnets.find((s) =>
    cidrContains(s.cidr, addr) &&
    (!ip.includes("/") || parseCidr(ip).prefixLen >= parseCidr(s.cidr).prefixLen)
  );
}
