/**
 * Address syntax checks used when validating what a pod asks for in its
 * network selection. They accept what Go's `net.ParseIP`, `net.ParseCIDR` and
 * `net.ParseMAC` accept, because users' annotations were written against
 * those parsers.
 *
 * @module
 */

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** True when `text` is a dotted-quad IPv4 address (no leading zeros). */
export function isIPv4(text: string): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  return parts.every((p) => V4_OCTET.test(p) && Number(p) <= 255);
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** True when `text` is an IPv6 address in any RFC 4291 text form (no zone). */
export function isIPv6(text: string): boolean {
  if (text.length < 2 || text.length > 45) return false;
  let head = text;
  let groupsForV4 = 0;
  // An embedded dotted quad takes the place of the last two groups.
  const lastColon = text.lastIndexOf(":");
  if (lastColon >= 0 && text.includes(".", lastColon)) {
    if (!isIPv4(text.slice(lastColon + 1))) return false;
    head = text.slice(0, lastColon + 1) + "0";
    groupsForV4 = 1;
  }
  const halves = head.split("::");
  if (halves.length > 2) return false;
  const groups = (part: string): string[] | null => {
    if (part === "") return [];
    const g = part.split(":");
    return g.every((x) => HEX_GROUP.test(x)) ? g : null;
  };
  if (halves.length === 1) {
    const g = groups(head);
    return g !== null && g.length + groupsForV4 === 8;
  }
  const left = groups(halves[0]);
  const right = groups(halves[1]);
  if (left === null || right === null) return false;
  // "::" stands for at least one zero group.
  return left.length + right.length + groupsForV4 <= 7;
}

/** True when `text` is an IPv4 or IPv6 address. */
export function isIP(text: string): boolean {
  return text.includes(":") ? isIPv6(text) : isIPv4(text);
}

/** True when `text` is `address/prefix` with a prefix valid for the family. */
export function isCIDR(text: string): boolean {
  const slash = text.indexOf("/");
  if (slash < 0) return false;
  const addr = text.slice(0, slash);
  const prefix = text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(prefix)) return false;
  const bits = Number(prefix);
  if (isIPv4(addr)) return bits <= 32;
  if (isIPv6(addr)) return bits <= 128;
  return false;
}

/** True when `text` is an IPv4 address, or an IPv6 address carrying one (::ffff:a.b.c.d). */
export function isIPv4Family(text: string): boolean {
  if (isIPv4(text)) return true;
  if (!isIPv6(text)) return false;
  // Go treats IPv4-mapped IPv6 addresses as IPv4 (To4() != nil).
  const g = expandIPv6(text);
  return g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff;
}

/** The eight 16-bit groups of a valid IPv6 address. */
function expandIPv6(text: string): number[] {
  let t = text;
  const lastColon = t.lastIndexOf(":");
  if (t.includes(".", lastColon)) {
    const o = t.slice(lastColon + 1).split(".").map(Number);
    t = t.slice(0, lastColon + 1) + ((o[0] << 8) | o[1]).toString(16) + ":" +
      ((o[2] << 8) | o[3]).toString(16);
  }
  const [l, r] = t.includes("::") ? t.split("::") : [t, undefined];
  const left = l === "" ? [] : l.split(":").map((g) => parseInt(g, 16));
  if (r === undefined) return left;
  const right = r === "" ? [] : r.split(":").map((g) => parseInt(g, 16));
  return [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The number of bytes of a hardware address in one of the forms Go's
 * `net.ParseMAC` accepts (6, 8 or 20 bytes; `:`/`-` separated pairs or
 * `.`-separated groups of four hex digits), or 0 when `text` is not one.
 */
export function macLength(text: string): number {
  const sepPair = /^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2})*$/;
  const dotted = /^[0-9a-fA-F]{4}(\.[0-9a-fA-F]{4})*$/;
  let bytes = 0;
  if (sepPair.test(text)) {
    // One separator kind throughout, as Go requires.
    const sep = text[2];
    if (text.length > 2 && text.split(sep).some((p) => p.length !== 2)) return 0;
    bytes = text.length > 2 ? text.split(sep).length : 1;
  } else if (dotted.test(text)) {
    bytes = text.split(".").length * 2;
  }
  return bytes === 6 || bytes === 8 || bytes === 20 ? bytes : 0;
}

/**
 * The address part of an IP or CIDR string in Go's `net.IP.String()` form:
 * IPv4 (also IPv4-mapped IPv6) dotted, IPv6 lower-case with the longest run
 * of two or more zero groups compressed (RFC 5952). Returns `text` unchanged
 * when it is not an address.
 */
export function canonicalIP(text: string): string {
  const addr = text.includes("/") ? text.slice(0, text.indexOf("/")) : text;
  if (isIPv4(addr)) return addr;
  if (!isIPv6(addr)) return text;
  const g = expandIPv6(addr);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return [g[6] >> 8, g[6] & 255, g[7] >> 8, g[7] & 255].join(".");
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(":");
  return hex.slice(0, best).join(":") + "::" + hex.slice(best + bestLen).join(":");
}
