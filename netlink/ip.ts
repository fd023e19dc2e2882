/**
 * IP and MAC address helpers shared by the kernel layer, the plugins, IPAM
 * and the router: parsing and formatting (IPv6 in RFC 5952 form), CIDR
 * arithmetic, and neighbouring addresses. Pure functions, no FFI.
 *
 * Addresses cross module boundaries as strings ("10.1.0.5", "fd00::1",
 * "10.1.0.0/16"); bytes are for the wire.
 *
 * @module
 */

/** 4 for IPv4, 6 for IPv6. */
export type IpFamily = 4 | 6;

/** A parsed CIDR: the address as written (host bits kept) and its prefix. */
export interface Cidr {
  family: IpFamily;
  /** The address part, normalized ("fd00::1"). */
  ip: string;
  prefixLen: number;
  /** The address part as 4 or 16 bytes. */
  bytes: Uint8Array;
}

function parseV4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === "0")) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

function parseV6(s: string): Uint8Array | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  let tail4: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.indexOf(".", lastColon) >= 0) {
    tail4 = parseV4(s.slice(lastColon + 1));
    if (!tail4) return undefined;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const words = [...head, ...new Array(8 - total).fill("0"), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(words[i])) return undefined;
    const n = parseInt(words[i], 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  }
  if (tail4) out.set(tail4, 12);
  return out;
}

/** Parses an IPv4 or IPv6 address into 4 or 16 bytes, or returns undefined. */
export function tryParseIp(s: string): Uint8Array | undefined {
  return s.includes(":") ? parseV6(s) : parseV4(s);
}

/** Parses an IPv4 or IPv6 address into 4 or 16 bytes; throws TypeError when invalid. */
export function parseIp(s: string): Uint8Array {
  const b = tryParseIp(s);
  if (!b) throw new TypeError(`invalid IP address ${JSON.stringify(s)}`);
  return b;
}

/** True when `s` is a valid IPv4 or IPv6 address. */
export function isIp(s: string): boolean {
  return tryParseIp(s) !== undefined;
}

/** The family of address `s` (4 or 6); throws TypeError when invalid. */
export function ipFamily(s: string): IpFamily {
  return parseIp(s).length === 4 ? 4 : 6;
}

/** Formats 4 or 16 bytes as an address (IPv6 compressed per RFC 5952). */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new TypeError(`an IP address has 4 or 16 bytes, not ${b.length}`);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push((b[i] << 8) | b[i + 1]);
  // IPv4-mapped addresses keep the dotted tail.
  if (w.slice(0, 5).every((x) => x === 0) && w[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(w);
  return `${hex(w.slice(0, bestStart))}::${hex(w.slice(bestStart + bestLen))}`;
}

/** The canonical text of address `s` ("fd00:0::01" → "fd00::1"). */
export function normalizeIp(s: string): string {
  return formatIp(parseIp(s));
}

/** Parses "addr/prefix"; a bare address gets the full-length prefix. Throws TypeError when invalid. */
export function parseCidr(s: string): Cidr {
  const slash = s.indexOf("/");
  const bytes = parseIp(slash < 0 ? s : s.slice(0, slash));
  const bits = bytes.length * 8;
  let prefixLen = bits;
  if (slash >= 0) {
    const p = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) {
      throw new TypeError(`invalid prefix length in ${JSON.stringify(s)}`);
    }
    prefixLen = Number(p);
  }
  return { family: bytes.length === 4 ? 4 : 6, ip: formatIp(bytes), prefixLen, bytes };
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

/** The netmask of a v4 prefix in dotted form (24 → "255.255.255.0"). */
export function netmaskOf(prefixLen: number, family: IpFamily = 4): string {
  return formatIp(maskBytes(prefixLen, family));
}

function masked(c: Cidr, fill: boolean): Uint8Array {
  const mask = maskBytes(c.prefixLen, c.family);
  return c.bytes.map((b, i) => fill ? (b | ~mask[i]) & 0xff : b & mask[i]);
}

/** The network address of a CIDR ("10.1.2.3/16" → "10.1.0.0"). */
export function networkAddress(cidr: string): string {
  return formatIp(masked(parseCidr(cidr), false));
}

/** The CIDR with host bits cleared ("10.1.2.3/16" → "10.1.0.0/16"). */
export function networkCidr(cidr: string): string {
  const c = parseCidr(cidr);
  return `${formatIp(masked(c, false))}/${c.prefixLen}`;
}

/** The last address of a CIDR: the IPv4 broadcast address ("10.1.0.0/16" → "10.1.255.255"). */
export function lastAddress(cidr: string): string {
  return formatIp(masked(parseCidr(cidr), true));
}

/** The IPv4 broadcast address of a CIDR (same as {@link lastAddress}). */
export function broadcastAddress(cidr: string): string {
  return lastAddress(cidr);
}

/** True when `ip` lies inside `cidr` (families must match). */
export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr);
  const b = parseIp(ip);
  if (b.length !== c.bytes.length) return false;
  const mask = maskBytes(c.prefixLen, c.family);
  return b.every((x, i) => (x & mask[i]) === (c.bytes[i] & mask[i]));
}

/** True when two CIDRs share any address. */
export function cidrsOverlap(a: string, b: string): boolean {
  const ca = parseCidr(a);
  const cb = parseCidr(b);
  if (ca.family !== cb.family) return false;
  const shorter = ca.prefixLen <= cb.prefixLen ? ca : cb;
  const other = shorter === ca ? cb : ca;
  return cidrContains(`${shorter.ip}/${shorter.prefixLen}`, other.ip);
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
  const len = family === 4 ? 4 : 16;
  if (n < 0n || n >= 1n << BigInt(len * 8)) {
    throw new RangeError(`${n} is outside the IPv${family} address space`);
  }
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return formatIp(out);
}

/** Orders two addresses (IPv4 before IPv6, then numerically): negative, 0 or positive. */
export function compareIp(a: string, b: string): number {
  const ba = parseIp(a);
  const bb = parseIp(b);
  if (ba.length !== bb.length) return ba.length - bb.length;
  for (let i = 0; i < ba.length; i++) if (ba[i] !== bb[i]) return ba[i] - bb[i];
  return 0;
}

/** The address after `ip` ("10.0.0.255" → "10.0.1.0"); RangeError past the last address. */
export function nextIp(ip: string): string {
  return bigIntToIp(ipToBigInt(ip) + 1n, ipFamily(ip));
}

/** The address before `ip`; RangeError before the first address. */
export function prevIp(ip: string): string {
  return bigIntToIp(ipToBigInt(ip) - 1n, ipFamily(ip));
}

/** Parses "aa:bb:cc:dd:ee:ff" (or with dashes) into 6 bytes; TypeError when invalid. */
export function parseMac(s: string): Uint8Array {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    throw new TypeError(`invalid MAC address ${JSON.stringify(s)}`);
  }
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

/** Formats link-layer address bytes as lower-case colon-separated hex. */
export function formatMac(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) {
    if (i) s += ":";
    s += (b[i] < 16 ? "0" : "") + b[i].toString(16);
  }
  return s;
}

/** A random unicast, locally administered MAC address. */
export function randomMac(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  b[0] = (b[0] & 0xfe) | 0x02;
  return formatMac(b);
}
