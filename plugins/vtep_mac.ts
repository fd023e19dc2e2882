/**
 * The tunnel MAC scheme of the hydra-vxlan plugin, on its own so that the
 * router (which programs neighbour and FDB entries for the plugin's
 * tunnels) loads it without the plugin.
 *
 * @module
 */

import { formatMac, parseIp } from "../ipaddr/ip.ts";

/**
 * The MAC of the tunnel device of the node whose underlay address is
 * `underlay`: 0e:68 then the IPv4 address (an IPv6 address folded to 4
 * bytes by XOR). Every node derives every other node's tunnel MAC from its
 * address, so nothing but the address has to be published.
 */
export function vtepMac(underlay: string): string {
  const b = parseIp(underlay);
  const tail = new Uint8Array(4);
  for (let i = 0; i < b.length; i++) tail[i % 4] ^= b[i];
  return formatMac(Uint8Array.of(0x0e, 0x68, ...tail));
}
