/**
 * Address ranges and range sets as host-local defines them: a range is a
 * subnet with an inclusive [rangeStart, rangeEnd] pool and a gateway; a
 * range set is a list of ranges of one family from which one address is
 * allocated per ADD.
 *
 * Validation failures throw {@link RangeConfigError}; the config loader
 * turns them into CNI error 7 with the position of the offending range.
 *
 * @module
 */

import {
  compareIpAddr,
  formatIpAddr,
  formatIpNet,
  hasHostBits,
  type IpAddr,
  type IpNet,
  ipNetContains,
  lastIpAddr,
  networkIpAddr,
  nextIpAddr,
  parseIpAddr,
  parseIpNet,
  prevIpAddr,
} from "../ipaddr/ip.ts";

/** A validated range: every field filled in. */
export interface IpRange {
  /** The subnet, host bits clear. */
  readonly subnet: IpNet;
  /** First allocatable address, inclusive. */
  readonly rangeStart: IpAddr;
  /** Last allocatable address, inclusive. */
  readonly rangeEnd: IpAddr;
  /** Gateway returned with addresses of this range; never allocated. */
  readonly gateway: IpAddr;
}

/** Ranges of one family; one address is allocated per set. */
export type RangeSet = readonly IpRange[];

/** A range's problem, worded for the user. */
export class RangeConfigError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = "RangeConfigError";
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads an optional IP field; null and "" mean absent, as in Go's JSON decoding of net.IP. */
function optionalIp(obj: Record<string, unknown>, key: string): IpAddr | undefined {
  const raw = obj[key];
  if (raw === undefined || raw === null || raw === "") return undefined;
  if (typeof raw !== "string") throw new RangeConfigError(`${key} must be a string`);
  const ip = parseIpAddr(raw);
  if (!ip) throw new RangeConfigError(`invalid IP address in ${key}: ${JSON.stringify(raw)}`);
  return ip;
}

/**
 * Validates one range and fills in its defaults, following host-local:
 * the subnet must leave room for at least two addresses and have no host
 * bits; gateway and rangeStart default to the network address + 1; rangeEnd
 * defaults to the last address (the broadcast address - 1 for IPv4); start
 * and end must lie inside the subnet. hydra also rejects a start after the
 * end and a gateway of the other family, which host-local lets through.
 */
export function canonicalizeRange(input: unknown): IpRange {
  if (!isRecord(input)) throw new RangeConfigError("a range must be an object");
  const subnetText = input.subnet;
  if (subnetText === undefined || subnetText === null) {
    throw new RangeConfigError("subnet is required");
  }
  if (typeof subnetText !== "string") throw new RangeConfigError("subnet must be a string");
  const parsed = parseIpNet(subnetText);
  if (!parsed) throw new RangeConfigError(`invalid CIDR address: ${subnetText}`);
  const bits = parsed.mappedV6 ? 128 : parsed.ip.family === 4 ? 32 : 128;
  if (parsed.prefix > bits - 2) {
    throw new RangeConfigError(`Network ${formatIpNet(parsed)} too small to allocate from`);
  }
  if (parsed.mappedV6) throw new RangeConfigError("IPNet IP and Mask version mismatch");
  const network = networkIpAddr(parsed.ip, parsed.prefix);
  if (hasHostBits(parsed.ip, parsed.prefix)) {
    throw new RangeConfigError(
      `Network has host bits set. For a subnet mask of length ${parsed.prefix} ` +
        `the network address is ${formatIpAddr(network)}`,
    );
  }
  const subnet: IpNet = { ip: network, prefix: parsed.prefix };
  const first = nextIpAddr(network)!;
  const subnetName = formatIpNet(subnet);

  const gateway = optionalIp(input, "gateway") ?? first;
  if (gateway.family !== network.family) {
    throw new RangeConfigError(
      `gateway ${formatIpAddr(gateway)} is not of the family of network ${subnetName}`,
    );
  }
  const givenStart = optionalIp(input, "rangeStart");
  if (givenStart && !ipNetContains(subnet, givenStart)) {
    throw new RangeConfigError(
      `RangeStart ${formatIpAddr(givenStart)} not in network ${subnetName}`,
    );
  }
  const givenEnd = optionalIp(input, "rangeEnd");
  if (givenEnd && !ipNetContains(subnet, givenEnd)) {
    throw new RangeConfigError(`RangeEnd ${formatIpAddr(givenEnd)} not in network ${subnetName}`);
  }
  const rangeStart = givenStart ?? first;
  const last = lastIpAddr(network, subnet.prefix);
  const rangeEnd = givenEnd ?? (network.family === 4 ? prevIpAddr(last)! : last);
  if (compareIpAddr(rangeStart, rangeEnd) > 0) {
    throw new RangeConfigError(
      `RangeStart ${formatIpAddr(rangeStart)} is after RangeEnd ${formatIpAddr(rangeEnd)}`,
    );
  }
  return { subnet, rangeStart, rangeEnd, gateway };
}

/** True when `ip` is inside the range's subnet and within [rangeStart, rangeEnd]. */
export function rangeContains(range: IpRange, ip: IpAddr): boolean {
  return ipNetContains(range.subnet, ip) && compareIpAddr(ip, range.rangeStart) >= 0 &&
    compareIpAddr(ip, range.rangeEnd) <= 0;
}

/** True when two ranges share an address. */
export function rangesOverlap(a: IpRange, b: IpRange): boolean {
  if (a.subnet.ip.family !== b.subnet.ip.family) return false;
  return rangeContains(a, b.rangeStart) || rangeContains(a, b.rangeEnd) ||
    rangeContains(b, a.rangeStart) || rangeContains(b, a.rangeEnd);
}

/** `start-end`, as host-local prints a range. */
export function rangeToString(range: IpRange): string {
  return `${formatIpAddr(range.rangeStart)}-${formatIpAddr(range.rangeEnd)}`;
}

/** Ranges joined by commas, as host-local prints a set. */
export function rangeSetToString(set: RangeSet): string {
  return set.map(rangeToString).join(",");
}

/** The range of `set` containing `ip`, if any. */
export function rangeFor(set: RangeSet, ip: IpAddr): IpRange | undefined {
  return set.find((r) => rangeContains(r, ip));
}

/** True when some range of `set` contains `ip`. */
export function rangeSetContains(set: RangeSet, ip: IpAddr): boolean {
  return rangeFor(set, ip) !== undefined;
}

/** True when any range of `a` overlaps any range of `b`. */
export function rangeSetsOverlap(a: RangeSet, b: RangeSet): boolean {
  return a.some((ra) => b.some((rb) => rangesOverlap(ra, rb)));
}

/** The family of a validated set (all its ranges share it). */
export function rangeSetFamily(set: RangeSet): 4 | 6 {
  return set[0].subnet.ip.family;
}

/**
 * Validates a range set: non-empty, every range valid, one family, no two
 * ranges overlapping.
 */
export function canonicalizeRangeSet(input: unknown): RangeSet {
  if (!Array.isArray(input)) throw new RangeConfigError("a range set must be a list of ranges");
  if (input.length === 0) throw new RangeConfigError("empty range set");
  const set = input.map(canonicalizeRange);
  if (set.some((r) => r.subnet.ip.family !== set[0].subnet.ip.family)) {
    throw new RangeConfigError("mixed address families");
  }
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      if (rangesOverlap(set[i], set[j])) {
        throw new RangeConfigError(
          `subnets ${rangeToString(set[i])} and ${rangeToString(set[j])} overlap`,
        );
      }
    }
  }
  return set;
}
