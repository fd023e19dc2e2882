/**
 * MAC (link-layer) addresses: parsed as Go's `net.ParseMAC` accepts them, so
 * hydra takes the configs and annotations the reference plugins and Multus
 * take (printed by `formatMac` in `ipaddr/ip.ts`). Pure functions, no FFI.
 *
 * @module
 */

import { formatMac } from "../ipaddr/ip.ts";
import { sha256 } from "../pkg/sha256.ts";

/**
 * The bytes of a hardware address in a form Go's `net.ParseMAC` accepts:
 * 6, 8 or 20 bytes as `:`- or `-`-separated pairs (one separator
 * throughout) or `.`-separated groups of four hex digits. Undefined otherwise.
 * Bare hex digits are refused: Go takes them only since 1.26, after the
 * reference plugins and Multus were built.
 */
export function tryParseMac(s: string): Uint8Array | undefined {
  let hex: string;
  if (/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2})+$/.test(s)) {
    if (s.split(s[2]).some((p) => p.length !== 2)) return undefined;
    hex = s.replaceAll(s[2], "");
  } else if (/^[0-9a-fA-F]{4}(\.[0-9a-fA-F]{4})+$/.test(s)) {
    hex = s.replaceAll(".", "");
  } else {
    return undefined;
  }
  const n = hex.length / 2;
  if (n !== 6 && n !== 8 && n !== 20) return undefined;
  return Uint8Array.from({ length: n }, (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16));
}

/**
 * Parses a 6-byte Ethernet address ("aa:bb:cc:dd:ee:ff" or another form of
 * {@link tryParseMac}); TypeError when invalid.
 */
export function parseMac(s: string): Uint8Array {
  const b = tryParseMac(s);
  if (b?.length !== 6) throw new TypeError(`invalid MAC address ${JSON.stringify(s)}`);
  return b;
}

/** A random unicast, locally administered MAC address. */
export function randomMac(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  b[0] = (b[0] & 0xfe) | 0x02;
  return formatMac(b);
}

/**
 * A unicast, locally administered MAC address derived from `text` (the
 * first six bytes of its SHA-256): every node that knows the text derives
 * the same address, so nothing has to publish it.
 */
export function hashedMac(text: string): string {
  const b = sha256(text).subarray(0, 6);
  b[0] = (b[0] & 0xfe) | 0x02;
  return formatMac(b);
}
