/**
 * IP address and CIDR helpers for IPAM: parsing with the same grammar as
 * Go's `net.ParseIP`/`net.ParseCIDR` (so hydra accepts exactly the configs
 * and reservation file names the reference plugins do), canonical text in
 * RFC 5952 form (the names host-local gives its reservation files), and
 * integer arithmetic for walking ranges.
 *
 * An address is a family plus its value as a bigint; IPv4-mapped IPv6
 * addresses (`::ffff:a.b.c.d`) become IPv4, as the reference plugins
 * canonicalize them.
 *
 * @module
 */

/** An IP address: its family and its value as an unsigned integer. */
export interface IpAddr {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** An address with a prefix length; `ip` keeps any host bits it was written with. */
export interface IpNet {
  readonly ip: IpAddr;
  readonly prefix: number;
}

/** A parsed CIDR plus whether its text was an IPv4-mapped IPv6 address. */
export interface ParsedCidr extends IpNet {
  /**
   * True when the address was written as IPv6 but is IPv4-mapped
   * (`::ffff:10.0.0.0/104`): the address becomes IPv4 while the prefix
   * counts 128 bits, which host-local rejects as a version mismatch.
   */
  readonly mappedV6: boolean;
}

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;

/** Number of bits in an address of `family`. */
export function familyBits(family: 4 | 6): 32 | 128 {
  return family === 4 ? 32 : 128;
}

function parseV4Value(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // Go rejects empty fields, more than 3 digits, and leading zeros (they
    // are octal to some parsers, so the text would be ambiguous).
    if (!/^[0-9]{1,3}$/.test(part) || (part.length > 1 && part[0] === "0")) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseV6Value(text: string): bigint | undefined {
  if (text.includes("%")) return undefined; // zones are not addresses here
  const groups: number[] = [];
  let ellipsis = -1;
  let rest = text;
  if (rest.startsWith("::")) {
    ellipsis = 0;
    rest = rest.slice(2);
    if (rest === "") return 0n;
  }
  while (rest !== "") {
    const m = /^[0-9a-fA-F]{1,4}/.exec(rest);
    if (!m) return undefined;
    // An embedded IPv4 address may only end the text and needs two groups of room.
    if (rest[m[0].length] === ".") {
      if (groups.length > 6) return undefined;
      const v4 = parseV4Value(rest);
      if (v4 === undefined) return undefined;
      groups.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      rest = "";
      break;
    }
    groups.push(parseInt(m[0], 16));
    rest = rest.slice(m[0].length);
    if (groups.length > 8) return undefined;
    if (rest === "") break;
    if (rest[0] !== ":") return undefined;
    if (rest.startsWith("::")) {
      if (ellipsis >= 0) return undefined;
      ellipsis = groups.length;
      rest = rest.slice(2);
    } else {
      rest = rest.slice(1);
      if (rest === "") return undefined; // trailing single colon
    }
  }
  if (groups.length > 8) return undefined;
  if (ellipsis < 0) {
    if (groups.length !== 8) return undefined;
  } else {
    // "::" must stand for at least one group of zeros.
    if (groups.length === 8) return undefined;
    groups.splice(ellipsis, 0, ...new Array<number>(8 - groups.length).fill(0));
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/**
 * Parses an IP address as Go's `net.ParseIP` does (dotted IPv4 without
 * leading zeros, IPv6 with `::` and an optional trailing IPv4 part, no
 * zone). IPv4-mapped IPv6 addresses become IPv4. Undefined if invalid.
 */
export function parseIp(text: string): IpAddr | undefined {
  return parseIpWithMapping(text)?.ip;
}

function parseIpWithMapping(text: string): { ip: IpAddr; mappedV6: boolean } | undefined {
  if (!text.includes(":")) {
    const v4 = parseV4Value(text);
    return v4 === undefined ? undefined : { ip: { family: 4, value: v4 }, mappedV6: false };
  }
  const v6 = parseV6Value(text);
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) {
    return { ip: { family: 4, value: v6 & V4_MAX }, mappedV6: true };
  }
  return { ip: { family: 6, value: v6 }, mappedV6: false };
}

/**
 * Parses `addr/prefix` as Go's `net.ParseCIDR` does, keeping host bits in
 * `ip`. The prefix is checked against the family the text was written in.
 * Undefined if invalid.
 */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const parsed = parseIpWithMapping(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!parsed || !/^[0-9]+$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const maxBits = parsed.mappedV6 ? 128 : familyBits(parsed.ip.family);
  if (prefix > maxBits) return undefined;
  return { ip: parsed.ip, prefix, mappedV6: parsed.mappedV6 };
}

/**
 * Parses either `addr` or `addr/prefix` (the form CNI accepts for requested
 * IPs) and returns the address alone. Undefined if invalid.
 */
export function parseIpOrCidr(text: string): IpAddr | undefined {
  return text.includes("/") ? parseCidr(text)?.ip : parseIp(text);
}

function formatV4(value: bigint): string {
  const n = Number(value);
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function formatV6(value: bigint): string {
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  // RFC 5952: compress the longest run of two or more zero groups, the
  // first such run on a tie; hex in lower case without leading zeros.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** Canonical text of an address: dotted IPv4 or compressed lower-case IPv6. */
export function formatIp(ip: IpAddr): string {
  return ip.family === 4 ? formatV4(ip.value) : formatV6(ip.value);
}

/** Canonical `addr/prefix` text (host bits kept as given). */
export function formatCidr(net: IpNet): string {
  return `${formatIp(net.ip)}/${net.prefix}`;
}

function hostMask(family: 4 | 6, prefix: number): bigint {
  return (1n << BigInt(familyBits(family) - prefix)) - 1n;
}

/** The network address of `ip` under `prefix` (host bits cleared). */
export function networkAddress(ip: IpAddr, prefix: number): IpAddr {
  return { family: ip.family, value: ip.value & ~hostMask(ip.family, prefix) };
}

/** The last address of the network of `ip` under `prefix` (host bits set). */
export function lastAddress(ip: IpAddr, prefix: number): IpAddr {
  return { family: ip.family, value: ip.value | hostMask(ip.family, prefix) };
}

/** True when `ip` has bits set beyond `prefix`. */
export function hasHostBits(ip: IpAddr, prefix: number): boolean {
  return (ip.value & hostMask(ip.family, prefix)) !== 0n;
}

/** The address after `ip`, or undefined past the family's last address. */
export function nextIp(ip: IpAddr): IpAddr | undefined {
  const max = ip.family === 4 ? V4_MAX : V6_MAX;
  return ip.value >= max ? undefined : { family: ip.family, value: ip.value + 1n };
}

/** The address before `ip`, or undefined before the family's first address. */
export function prevIp(ip: IpAddr): IpAddr | undefined {
  return ip.value <= 0n ? undefined : { family: ip.family, value: ip.value - 1n };
}

/** Orders addresses: IPv4 before IPv6, then by value. */
export function compareIp(a: IpAddr, b: IpAddr): -1 | 0 | 1 {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** True when both are the same address of the same family. */
export function ipEquals(a: IpAddr | undefined, b: IpAddr | undefined): boolean {
  return a !== undefined && b !== undefined && a.family === b.family && a.value === b.value;
}

/** True when `ip` lies inside the network `net` (same family, same prefix bits). */
export function cidrContains(net: IpNet, ip: IpAddr): boolean {
  if (net.ip.family !== ip.family) return false;
  const mask = ~hostMask(ip.family, net.prefix);
  return (net.ip.value & mask) === (ip.value & mask);
}

/** The key under which an address is unique across families (for maps and sets). */
export function ipKey(ip: IpAddr): string {
  return `${ip.family}:${ip.value.toString(16)}`;
}
