/**
 * IP addresses, parsed and printed in one place for all of hydra.
 *
 * Parsing follows Go's `net.ParseIP` and `net.ParseCIDR`, so hydra accepts
 * exactly the configs, annotations and reservation file names the reference
 * plugins and Multus accept; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
 * is IPv4, as Go's `To4` has it. Printing is RFC 5952 (Go's
 * `net.IP.String()`). Pure functions, no imports, no FFI; MAC addresses are
 * parsed in `mac.ts`.
 *
 * An address comes in three forms, and a function's name says which it takes:
 * - text ("10.1.0.5", "fd00::1/64"), the form addresses cross module
 *   boundaries in: {@link parseCidr}, {@link networkCidr}, {@link isIp}, …;
 * - 4 or 16 bytes for the wire: {@link tryParseIp}, {@link formatIp}, …;
 * - {@link IpAddr} values (family plus bigint) for arithmetic and range walks:
 *   {@link parseIpAddr}, {@link nextIpAddr}, {@link ipNetContains}, ….
 *
 * @module
 */

/** 4 for IPv4, 6 for IPv6. */
export type IpFamily = 4 | 6;

/** An IP address: its family and its value as an unsigned integer. */
export interface IpAddr {
  readonly family: IpFamily;
  readonly value: bigint;
}

/** An address with a prefix length; `ip` keeps any host bits it was written with. */
export interface IpNet {
  readonly ip: IpAddr;
  readonly prefix: number;
}

/** A parsed CIDR value plus whether its text was an IPv4-mapped IPv6 address. */
export interface ParsedIpNet extends IpNet {
  /**
   * True when the address was written as IPv6 but is IPv4-mapped
   * (`::ffff:10.0.0.0/104`): the address becomes IPv4 while the prefix
   * counts 128 bits, which host-local rejects as a version mismatch.
   */
  readonly mappedV6: boolean;
}

/** A parsed CIDR in text form: the address as written (host bits kept) and its prefix. */
export interface Cidr {
  family: IpFamily;
  /** The address part, normalized ("fd00::1"). */
  ip: string;
  prefixLen: number;
  /** The address part as 4 or 16 bytes. */
  bytes: Uint8Array;
}

// ---- Parsing and printing (Go's grammar, RFC 5952 text) ----

/** Dotted IPv4 as a uint32, or undefined. */
function parseV4(text: string): number | undefined {
  // One pass over the character codes: thousands of addresses are parsed
  // at a router's start, before the JIT has warmed up.
  let value = 0;
  let fields = 0;
  let n = 0;
  let digits = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46; // a final "."
    if (c === 46) {
      // Go rejects empty fields, more than 3 digits, and leading zeros (they
      // are octal to some parsers, so the text would be ambiguous).
      if (digits === 0 || n > 255 || ++fields > 4) return undefined;
      value = value * 256 + n;
      n = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 3 || (digits === 1 && n === 0)) return undefined;
      n = n * 10 + (c - 48);
      digits++;
    } else return undefined;
  }
  return fields === 4 ? value : undefined;
}

/** The eight 16-bit groups of an IPv6 address (no zone), or undefined. */
function parseV6(text: string): number[] | undefined {
  if (text.includes("%")) return undefined; // zones are not addresses here
  const groups: number[] = [];
  let ellipsis = -1;
  let rest = text;
  if (rest.startsWith("::")) {
    ellipsis = 0;
    rest = rest.slice(2);
    if (rest === "") return [0, 0, 0, 0, 0, 0, 0, 0];
  }
  while (rest !== "") {
    const m = /^[0-9a-fA-F]{1,4}/.exec(rest);
    if (!m) return undefined;
    // An embedded IPv4 address may only end the text and needs two groups of room.
    if (rest[m[0].length] === ".") {
      if (groups.length > 6) return undefined;
      const v4 = parseV4(rest);
      if (v4 === undefined) return undefined;
      groups.push(v4 >>> 16, v4 & 0xffff);
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
  if (ellipsis < 0) return groups.length === 8 ? groups : undefined;
  // "::" must stand for at least one group of zeros.
  if (groups.length === 8) return undefined;
  groups.splice(ellipsis, 0, ...new Array<number>(8 - groups.length).fill(0));
  return groups;
}

function isMappedV4(groups: number[]): boolean {
  return groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 &&
    groups[4] === 0 && groups[5] === 0xffff;
}

/** An address as parsed: IPv4 as a uint32, IPv6 as eight groups; `mapped` for `::ffff:a.b.c.d`. */
type RawIp = { family: 4; v4: number; mapped: boolean } | { family: 6; groups: number[] };

function parseRaw(text: string): RawIp | undefined {
  if (!text.includes(":")) {
    const v4 = parseV4(text);
    return v4 === undefined ? undefined : { family: 4, v4, mapped: false };
  }
  const groups = parseV6(text);
  if (!groups) return undefined;
  if (isMappedV4(groups)) return { family: 4, v4: groups[6] * 0x10000 + groups[7], mapped: true };
  return { family: 6, groups };
}

function rawToAddr(raw: RawIp): IpAddr {
  if (raw.family === 4) return { family: 4, value: BigInt(raw.v4) };
  let value = 0n;
  for (const g of raw.groups) value = (value << 16n) | BigInt(g);
  return { family: 6, value };
}

function rawToBytes(raw: RawIp): Uint8Array {
  if (raw.family === 4) {
    const n = raw.v4;
    // Element by element: Uint8Array.of is several times slower before the JIT warms up.
    const out = new Uint8Array(4);
    out[0] = n >>> 24;
    out[1] = (n >>> 16) & 255;
    out[2] = (n >>> 8) & 255;
    out[3] = n & 255;
    return out;
  }
  const out = new Uint8Array(16);
  raw.groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

function formatV4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function formatV6(groups: number[]): string {
  // RFC 5952 section 5: an IPv4-mapped address keeps its dotted tail, so an
  // IPv6 object read from the kernel still reads as IPv6.
  if (isMappedV4(groups)) return `::ffff:${formatV4(groups[6] * 0x10000 + groups[7])}`;
  // Compress the longest run of two or more zero groups, the first such run
  // on a tie; hex in lower case without leading zeros.
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

// ---- Values: IpAddr and IpNet ----

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;

function familyBits(family: IpFamily): 32 | 128 {
  return family === 4 ? 32 : 128;
}

/**
 * Parses an IP address as Go's `net.ParseIP` does (dotted IPv4 without
 * leading zeros, IPv6 with `::` and an optional trailing IPv4 part, no
 * zone). IPv4-mapped IPv6 addresses become IPv4. Undefined if invalid.
 */
export function parseIpAddr(text: string): IpAddr | undefined {
  const raw = parseRaw(text);
  return raw && rawToAddr(raw);
}

/**
 * Parses `addr/prefix` as Go's `net.ParseCIDR` does, keeping host bits in
 * `ip`. The prefix is checked against the family the text was written in.
 * Undefined if invalid.
 */
export function parseIpNet(text: string): ParsedIpNet | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return undefined;
  const raw = parseRaw(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!raw || !/^[0-9]+$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const mappedV6 = raw.family === 4 && raw.mapped;
  if (prefix > (mappedV6 ? 128 : familyBits(raw.family))) return undefined;
  return { ip: rawToAddr(raw), prefix, mappedV6 };
}

/**
 * Parses either `addr` or `addr/prefix` (the form CNI accepts for requested
 * IPs) and returns the address alone. Undefined if invalid.
 */
export function parseIpAddrOrCidr(text: string): IpAddr | undefined {
  return text.includes("/") ? parseIpNet(text)?.ip : parseIpAddr(text);
}

/** Canonical text of an address: dotted IPv4 or compressed lower-case IPv6. */
export function formatIpAddr(ip: IpAddr): string {
  if (ip.family === 4) return formatV4(Number(ip.value));
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) {
    groups.push(Number((ip.value >> shift) & 0xffffn));
  }
  return formatV6(groups);
}

/** Canonical `addr/prefix` text (host bits kept as given). */
export function formatIpNet(net: IpNet): string {
  return `${formatIpAddr(net.ip)}/${net.prefix}`;
}

function hostMask(family: IpFamily, prefix: number): bigint {
  return (1n << BigInt(familyBits(family) - prefix)) - 1n;
}

/** The network address of `ip` under `prefix` (host bits cleared). */
export function networkIpAddr(ip: IpAddr, prefix: number): IpAddr {
  return { family: ip.family, value: ip.value & ~hostMask(ip.family, prefix) };
}

/** The last address of the network of `ip` under `prefix` (host bits set). */
export function lastIpAddr(ip: IpAddr, prefix: number): IpAddr {
  return { family: ip.family, value: ip.value | hostMask(ip.family, prefix) };
}

/** True when `ip` has bits set beyond `prefix`. */
export function hasHostBits(ip: IpAddr, prefix: number): boolean {
  return (ip.value & hostMask(ip.family, prefix)) !== 0n;
}

/** The address after `ip`, or undefined past the family's last address. */
export function nextIpAddr(ip: IpAddr): IpAddr | undefined {
  const max = ip.family === 4 ? V4_MAX : V6_MAX;
  return ip.value >= max ? undefined : { family: ip.family, value: ip.value + 1n };
}

/** The address before `ip`, or undefined before the family's first address. */
export function prevIpAddr(ip: IpAddr): IpAddr | undefined {
  return ip.value <= 0n ? undefined : { family: ip.family, value: ip.value - 1n };
}

/** Orders addresses: IPv4 before IPv6, then by value. */
export function compareIpAddr(a: IpAddr, b: IpAddr): -1 | 0 | 1 {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

/** True when both are the same address of the same family. */
export function ipAddrEquals(a: IpAddr | undefined, b: IpAddr | undefined): boolean {
  return a !== undefined && b !== undefined && a.family === b.family && a.value === b.value;
}

/** True when `ip` lies inside the network `net` (same family, same prefix bits). */
export function ipNetContains(net: IpNet, ip: IpAddr): boolean {
  if (net.ip.family !== ip.family) return false;
  const mask = ~hostMask(ip.family, net.prefix);
  return (net.ip.value & mask) === (ip.value & mask);
}

/** The key under which an address is unique across families (for maps and sets). */
export function ipAddrKey(ip: IpAddr): string {
  return `${ip.family}:${ip.value.toString(16)}`;
}

// ---- Text and bytes ----

/** Parses an IPv4 or IPv6 address into 4 or 16 bytes (IPv4-mapped: 4), or returns undefined. */
export function tryParseIp(s: string): Uint8Array | undefined {
  const raw = parseRaw(s);
  return raw && rawToBytes(raw);
}

/** Parses an IPv4 or IPv6 address into 4 or 16 bytes; throws TypeError when invalid. */
export function parseIp(s: string): Uint8Array {
  const b = tryParseIp(s);
  if (!b) throw new TypeError(`invalid IP address ${JSON.stringify(s)}`);
  return b;
}

/** True when `s` is an IPv4 or IPv6 address Go's `net.ParseIP` accepts. */
export function isIp(s: string): boolean {
  return parseRaw(s) !== undefined;
}

/** True when `s` is `address/prefix` as Go's `net.ParseCIDR` accepts it. */
export function isCidr(s: string): boolean {
  return parseIpNet(s) !== undefined;
}

/** The family of address `s` (4 or 6; IPv4-mapped is 4); throws TypeError when invalid. */
export function ipFamily(s: string): IpFamily {
  return parseIp(s).length === 4 ? 4 : 6;
}

/** Formats 4 or 16 bytes as an address (IPv6 compressed per RFC 5952). */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return formatV4(((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0);
  if (b.length !== 16) throw new TypeError(`an IP address has 4 or 16 bytes, not ${b.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  return formatV6(groups);
}

/** The canonical text of address `s` ("fd00:0::01" → "fd00::1"); throws TypeError when invalid. */
export function normalizeIp(s: string): string {
  return formatIp(parseIp(s));
}

/**
 * The address part of an IP or CIDR text as Go's `net.IP.String()` prints
 * it ("2001:DB8:0::1/64" → "2001:db8::1", "::ffff:10.0.0.1" → "10.0.0.1"),
 * or `text` unchanged when it is not an address: for reporting values that
 * were never validated.
 */
export function canonicalIp(text: string): string {
  const slash = text.indexOf("/");
  const ip = parseIpAddr(slash < 0 ? text : text.slice(0, slash));
  return ip ? formatIpAddr(ip) : text;
}

/** The address and prefix of "addr/prefix" or of a bare address (full-length prefix). */
function parseCidrParts(s: string): { raw: RawIp; prefixLen: number } {
  const slash = s.indexOf("/");
  const text = slash < 0 ? s : s.slice(0, slash);
  const raw = parseRaw(text);
  if (!raw) throw new TypeError(`invalid IP address ${JSON.stringify(text)}`);
  const bits = familyBits(raw.family);
  if (slash < 0) return { raw, prefixLen: bits };
  const p = s.slice(slash + 1);
  // A prefix on an IPv4-mapped address counts 128 bits for an IPv4 address:
  // refused rather than guessed at.
  if (!/^[0-9]+$/.test(p) || Number(p) > bits || (raw.family === 4 && raw.mapped)) {
    throw new TypeError(`invalid prefix length in ${JSON.stringify(s)}`);
  }
  return { raw, prefixLen: Number(p) };
}

/**
 * Parses "addr/prefix"; a bare address gets the full-length prefix. Throws
 * TypeError when invalid, also for an IPv4-mapped address with a prefix.
 */
export function parseCidr(s: string): Cidr {
  const { raw, prefixLen } = parseCidrParts(s);
  const bytes = rawToBytes(raw);
  return { family: raw.family, ip: formatIp(bytes), prefixLen, bytes };
}

/** Formats an address and prefix as CIDR text. */
export function formatCidr(ip: string | Uint8Array, prefixLen: number): string {
  return `${typeof ip === "string" ? normalizeIp(ip) : formatIp(ip)}/${prefixLen}`;
}

/** The netmask of a prefix as 4 or 16 bytes. */
export function maskBytes(prefixLen: number, family: IpFamily): Uint8Array {
  const out = new Uint8Array(family === 4 ? 4 : 16);
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefixLen - i * 8));
    out[i] = (0xff00 >> bits) & 0xff;
  }
  return out;
}

/** The netmask of a prefix in address form (24 → "255.255.255.0"). */
export function netmaskOf(prefixLen: number, family: IpFamily = 4): string {
  return formatIp(maskBytes(prefixLen, family));
}

function textAddr(ip: string): IpAddr {
  const addr = parseIpAddr(ip);
  if (!addr) throw new TypeError(`invalid IP address ${JSON.stringify(ip)}`);
  return addr;
}

function cidrNet(cidr: string): IpNet {
  const { raw, prefixLen } = parseCidrParts(cidr);
  return { ip: rawToAddr(raw), prefix: prefixLen };
}

/** The network address of a CIDR ("10.1.2.3/16" → "10.1.0.0"). */
export function networkAddress(cidr: string): string {
  const net = cidrNet(cidr);
  return formatIpAddr(networkIpAddr(net.ip, net.prefix));
}

/** The CIDR with host bits cleared ("10.1.2.3/16" → "10.1.0.0/16"). */
export function networkCidr(cidr: string): string {
  const net = cidrNet(cidr);
  return formatIpNet({ ip: networkIpAddr(net.ip, net.prefix), prefix: net.prefix });
}

/** The last address of a CIDR: the IPv4 broadcast address ("10.1.0.0/16" → "10.1.255.255"). */
export function lastAddress(cidr: string): string {
  const net = cidrNet(cidr);
  return formatIpAddr(lastIpAddr(net.ip, net.prefix));
}

/** The IPv4 broadcast address of a CIDR (same as {@link lastAddress}). */
export function broadcastAddress(cidr: string): string {
  return lastAddress(cidr);
}

/** True when address `ip` lies inside `cidr` (families must match). */
export function cidrContains(cidr: string, ip: string): boolean {
  return ipNetContains(cidrNet(cidr), textAddr(ip));
}

/** True when two CIDRs share any address. */
export function cidrsOverlap(a: string, b: string): boolean {
  const na = cidrNet(a);
  const nb = cidrNet(b);
  return na.prefix <= nb.prefix ? ipNetContains(na, nb.ip) : ipNetContains(nb, na.ip);
}

/** An address as an unsigned integer. */
export function ipToBigInt(ip: string | Uint8Array): bigint {
  const b = typeof ip === "string" ? parseIp(ip) : ip;
  let n = 0n;
  for (const x of b) n = (n << 8n) | BigInt(x);
  return n;
}

/** The address of family `family` with integer value `n`; throws RangeError when out of range. */
export function bigIntToIp(n: bigint, family: IpFamily): string {
  if (n < 0n || n > (family === 4 ? V4_MAX : V6_MAX)) {
    throw new RangeError(`${n} is outside the IPv${family} address space`);
  }
  return formatIpAddr({ family, value: n });
}

/** Orders two addresses (IPv4 before IPv6, then numerically): negative, 0 or positive. */
export function compareIp(a: string, b: string): number {
  return compareIpAddr(textAddr(a), textAddr(b));
}

/** The address after `ip` ("10.0.0.255" → "10.0.1.0"); RangeError past the last address. */
export function nextIp(ip: string): string {
  const next = nextIpAddr(textAddr(ip));
  if (!next) throw new RangeError(`no address after ${ip}`);
  return formatIpAddr(next);
}

/** The address before `ip`; RangeError before the first address. */
export function prevIp(ip: string): string {
  const prev = prevIpAddr(textAddr(ip));
  if (!prev) throw new RangeError(`no address before ${ip}`);
  return formatIpAddr(prev);
}

/**
 * Formats link-layer address bytes as lower-case colon-separated hex. It
 * lives beside {@link formatIp} because the kernel layer prints both from
 * messages; parsing MAC addresses is in `mac.ts`.
 */
export function formatMac(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) {
    if (i) s += ":";
    s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  }
  return s;
}
