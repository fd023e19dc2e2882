/**
 * The layer-3 side of a bridge attachment: which gateway addresses the
 * bridge carries and which default routes the container gets
 * (`isGateway`/`isDefaultGateway`), IP forwarding on the host, and waiting
 * for the bridge port to come up.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Result } from "../cni/types.ts";
import { getLink, type Handle, type Link, sysctlRead, sysctlWrite } from "../netlink/mod.ts";
import { networkAddress, networkCidr, nextIp, parseCidr } from "../ipaddr/ip.ts";
import type { Undo } from "./links.ts";
import { delay } from "../pkg/async.ts";

/** Index of the container interface in a bridge result. */
export const CONTAINER_IFACE_INDEX = 2;

/**
 * Completes an IPAM result for a bridge attachment, in place: every address
 * goes to the container interface; with `isGateway` an address without a
 * gateway gets its subnet's first address; with `isDefaultGateway` each
 * family gets a default route via its first gateway unless the result
 * already routes the default somewhere. Returns the gateway addresses the
 * bridge must carry, as CIDRs ("10.22.0.1/16"), IPv4 first.
 */
export function addGateways(
  result: Result,
  conf: { isGateway: boolean; isDefaultGateway: boolean },
): string[] {
  const gws: Record<4 | 6, string[]> = { 4: [], 6: [] };
  const defaultFound: Record<4 | 6, boolean> = { 4: false, 6: false };
  for (const ip of result.ips ?? []) {
    const c = parseCidr(ip.address);
    const family = c.family;
    ip.interface = CONTAINER_IFACE_INDEX;
    if (!ip.gateway && conf.isGateway) ip.gateway = nextIp(networkAddress(ip.address));
    if (conf.isDefaultGateway && !defaultFound[family]) {
      const dflt = family === 4 ? "0.0.0.0/0" : "::/0";
      defaultFound[family] = (result.routes ?? []).some((r) =>
        r.gw !== undefined && networkCidr(r.dst) === dflt
      );
      if (!defaultFound[family]) {
        result.routes = [...(result.routes ?? []), { dst: dflt, gw: ip.gateway }];
        defaultFound[family] = true;
      }
    }
    if (conf.isGateway && ip.gateway) gws[family].push(`${ip.gateway}/${c.prefixLen}`);
  }
  return [...gws[4], ...gws[6]];
}

const FORWARDING_KEYS: Record<4 | 6, string> = {
  4: "net/ipv4/ip_forward",
  6: "net/ipv6/conf/all/forwarding",
};

/**
 * Turns on IP forwarding in the host namespace for each family given;
 * registers on `undo` how to turn back what it changed.
 */
export function enableForwarding(families: readonly (4 | 6)[], undo: Undo): void {
  for (const f of new Set(families)) {
    const key = FORWARDING_KEYS[f];
    let before: string | undefined;
    try {
      before = sysctlRead(undefined, key);
    } catch {
      before = undefined;
    }
    if (before === "1") continue;
    try {
      sysctlWrite(undefined, key, "1");
    } catch (e) {
      throw new CniError(
        ErrorCode.Internal,
        `failed to enable forwarding: ${(e as Error).message}`,
      );
    }
    if (before !== undefined) {
      const previous = before;
      undo.push(`restore ${key}`, () => sysctlWrite(undefined, key, previous));
    }
  }
}

/**
 * Pauses between looks at the port, ms. The kernel marks a veth port up
 * from a work queue shortly after both ends are up, usually well under a
 * millisecond later but later on a busy machine: short pauses first, so
 * that case costs a millisecond or two rather than a fixed 50 ms; about
 * 2.5 s in all, as the reference plugin allows.
 */
const PORT_UP_WAITS_MS = [0, 1, 2, 4, 8, 16, 32, 500, 1000, 1000];

/**
 * Waits (about 2.5 s at most) for the bridge port `index` to be
 * operationally up; returns the port as last seen.
 */
export async function waitPortUp(h: Handle, index: number): Promise<Link> {
  let state = "";
  for (const wait of PORT_UP_WAITS_MS) {
    if (wait) await delay(wait);
    const link = getLink(h, index);
    state = link.operstate;
    if (state === "UP") return link;
  }
  throw new CniError(ErrorCode.Internal, `bridge port in error state: ${state}`);
}
