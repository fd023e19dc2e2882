/**
 * Minimal textual IP helpers for the CNI core: validating the addresses and
 * CIDRs found in configs and results, and telling their family. Kept free of
 * imports so the CNI path stays cheap to load.
 *
 * @module
 */

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** True for a dotted-quad IPv4 address. */
export function isIPv4(text: string): boolean {
  return IPV4.test(text);
}

/** True for an IPv6 address in any textual form (no zone index). */
export function isIPv6(text: string): boolean {
  if (!text.includes(":") || /[^0-9a-fA-F:.]/.test(text)) return false;
  try {
    // The URL parser implements the full IPv6 text grammar.
    new URL(`http://[${text}]/`);
    return true;
  } catch {
    return false;
  }
}

/** True for an IPv4 or IPv6 address. */
export function isIP(text: string): boolean {
  return isIPv4(text) || isIPv6(text);
}

/**
 * The family of an address or CIDR: 4 or 6. IPv4-mapped IPv6 addresses
 * count as 4, as in Go's net.IP.To4.
 */
export function ipFamily(addressOrCidr: string): 4 | 6 {
  const ip = addressOrCidr.split("/")[0];
  if (isIPv4(ip) || V4_MAPPED.test(ip)) return 4;
  return 6;
}

/** True for "address/prefix" with a prefix valid for the address family. */
export function isCidr(text: string): boolean {
  const slash = text.indexOf("/");
  if (slash < 0) return false;
  const ip = text.slice(0, slash);
  const prefix = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix)) return false;
  if (isIPv4(ip)) return Number(prefix) <= 32;
  if (isIPv6(ip)) return Number(prefix) <= 128;
  return false;
}
