/**
 * Old names of `netlink/ip.ts` functions, still imported by
 * plugins/meta_routes.ts; everything else imports `netlink/ip.ts`.
 *
 * @module
 */

import { parseIpAddr } from "../netlink/ip.ts";

export { canonicalIp as canonicalIP } from "../netlink/ip.ts";

/** True when `text` is an IPv4 address or an IPv4-mapped IPv6 one. */
export function isIPv4Family(text: string): boolean {
  return parseIpAddr(text)?.family === 4;
}
