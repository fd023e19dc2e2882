/**
 * Putting an IPAM result onto a container interface, and checking it is
 * still there: what every interface plugin does after creating its link.
 *
 * {@link configureIface} follows the reference plugins' ConfigureIface:
 * - every address whose `interface` index names `ifName` is added (IPv4
 *   with its broadcast address), after IPv6 has been enabled on `lo` and
 *   the interface (and `keep_addr_on_down` set) when an IPv6 address comes;
 * - the link is brought up; with an IPv6 gateway, it waits (up to 5 s) for
 *   duplicate address detection to finish;
 * - every route is added through the interface, a route without `gw` going
 *   via the first gateway of its family; `priority`, `table` and `scope`
 *   apply, and so do the 1.1.0 `mtu` and `advmss`.
 *
 * All calls act through a handle opened in the container's namespace.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { IpConfig, Result, Route as ResultRoute } from "../cni/types.ts";
import {
  addAddr,
  addRoute,
  type Handle,
  IFA_F,
  ipFamily,
  listAddrs,
  listRoutes,
  type NetnsRef,
  networkCidr,
  normalizeIp,
  parseCidr,
  type RouteSpec,
  RT_SCOPE,
  RT_TABLE,
  setLinkUp,
  sysctlRead,
  sysctlWrite,
} from "../netlink/mod.ts";
import { getLink } from "../netlink/link.ts";
import { delay } from "../pkg/async.ts";

/** How long {@link settleAddresses} waits for IPv6 DAD, as the reference plugins. */
export const DAD_SETTLE_TIMEOUT_MS = 5_000;
const SETTLE_INTERVAL_MS = 50;

function internal(msg: string): CniError {
  return new CniError(ErrorCode.Internal, msg);
}

function describeIp(ip: IpConfig): string {
  return ip.gateway ? `${ip.address} (gateway ${ip.gateway})` : ip.address;
}

/** Sets a sysctl, ignoring failure (keys that only exist with IPv6 enabled, …). */
export function trySysctl(netns: NetnsRef | undefined, key: string, value: string): void {
  try {
    sysctlWrite(netns, key, value);
  } catch {
    // Best effort, as the reference plugins do for these settings.
  }
}

/** Makes sure IPv6 is enabled on `lo` and `ifName` and addresses survive a link down. */
function enableIpv6(netns: NetnsRef, ifName: string): void {
  for (const dev of ["lo", ifName]) {
    const key = `net/ipv6/conf/${dev}/disable_ipv6`;
    let value: string;
    try {
      value = sysctlRead(netns, key);
    } catch {
      continue;
    }
    if (value === "0") continue;
    try {
      sysctlWrite(netns, key, "0");
    } catch (e) {
      throw internal(
        `failed to enable IPv6 for interface "${dev}" (${key}=${value}): ${(e as Error).message}`,
      );
    }
  }
  try {
    sysctlWrite(netns, `net/ipv6/conf/${ifName}/keep_addr_on_down`, "1");
  } catch (e) {
    throw internal(
      `failed to enable keep_addr_on_down for interface "${ifName}": ${(e as Error).message}`,
    );
  }
}

/** The route spec ConfigureIface adds for result route `r`. */
export function routeSpecFor(
  r: ResultRoute,
  ifName: string,
  gateways: { 4?: string; 6?: string },
): RouteSpec {
  const family = ipFamily(r.dst.split("/")[0]);
  const gateway = r.gw ?? gateways[family];
  const spec: RouteSpec = {
    dst: r.dst,
    oif: ifName,
    // The reference plugins add every route in universe scope unless told.
    scope: r.scope ?? RT_SCOPE.UNIVERSE,
  };
  if (gateway) spec.gateway = gateway;
  if (r.priority) spec.priority = r.priority;
  if (r.table !== undefined) spec.table = r.table;
  if (r.mtu) spec.mtu = r.mtu;
  if (r.advmss) spec.advmss = r.advmss;
  return spec;
}

/**
 * Applies `result`'s addresses and routes to `ifName` in the namespace of
 * handle `h` (namespace path `netns`, for sysctls) and brings it up.
 */
export async function configureIface(
  h: Handle,
  netns: NetnsRef,
  ifName: string,
  result: Result,
): Promise<void> {
  const interfaces = result.interfaces ?? [];
  if (interfaces.length === 0) throw internal("no interfaces to configure");
  // Looked up once: the address, link and route requests below name it by
  // index rather than each looking the name up again.
  let index: number;
  try {
    index = getLink(h, ifName).index;
  } catch (e) {
    throw internal(`failed to lookup "${ifName}": ${(e as Error).message}`);
  }
  const gateways: { 4?: string; 6?: string } = {};
  let ipv6Enabled = false;
  for (const ip of result.ips ?? []) {
    if (ip.interface === undefined) continue;
    if (interfaces[ip.interface]?.name !== ifName) {
      throw internal(
        `failed to add IP addr ${describeIp(ip)} to "${ifName}": invalid interface index`,
      );
    }
    const family = ipFamily(ip.address.split("/")[0]);
    if (family === 6 && !ipv6Enabled) {
      enableIpv6(netns, ifName);
      ipv6Enabled = true;
    }
    const c = parseCidr(ip.address);
    try {
      addAddr(h, index, ip.address, {
        // As the reference plugins (via their netlink library) do.
        broadcast: family === 4 && c.prefixLen < 31 ? true : undefined,
      });
    } catch (e) {
      throw internal(
        `failed to add IP addr ${describeIp(ip)} to "${ifName}": ${(e as Error).message}`,
      );
    }
    if (ip.gateway) {
      const gwFamily = ipFamily(ip.gateway);
      gateways[gwFamily] ??= ip.gateway;
    }
  }
  try {
    setLinkUp(h, index);
  } catch (e) {
    throw internal(`failed to set "${ifName}" UP: ${(e as Error).message}`);
  }
  if (gateways[6]) await settleAddresses(h, ifName, DAD_SETTLE_TIMEOUT_MS);
  for (const r of result.routes ?? []) {
    const spec = routeSpecFor(r, ifName, gateways);
    try {
      addRoute(h, { ...spec, oif: index });
    } catch (e) {
      throw internal(
        `failed to add route '${r.dst} via ${spec.gateway ?? "-"} dev ${ifName}' ` +
          `(scope ${spec.scope}, table ${spec.table ?? RT_TABLE.MAIN}): ${(e as Error).message}`,
      );
    }
  }
}

/**
 * Waits until no IPv6 address of `ifName` is tentative (DAD done). Fails on
 * an address whose DAD failed, or when addresses are still tentative after
 * `timeoutMs` on a link that is up.
 */
export async function settleAddresses(
  h: Handle,
  ifName: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const addrs = listAddrs(h, { link: ifName, family: 6 });
    const failed = addrs.find((a) => a.flags & IFA_F.DADFAILED);
    if (failed) {
      throw internal(`link ${ifName} has address ${failed.address} in DADFAILED state`);
    }
    if (!addrs.some((a) => a.flags & IFA_F.TENTATIVE)) return;
    if (Date.now() > deadline) {
      if (getLink(h, ifName).operstate === "UP") {
        throw internal(
          `link ${ifName} still has tentative addresses after ${timeoutMs / 1000} seconds`,
        );
      }
      return;
    }
    await delay(SETTLE_INTERVAL_MS);
  }
}

/**
 * CHECK: every address of `ips` meant for `ifName` (by interface index into
 * `interfaces`, or without an index) is on the link, with a route to its
 * prefix.
 */
export function validateExpectedIps(
  h: Handle,
  ifName: string,
  ips: readonly IpConfig[],
  interfaces: Result["interfaces"] = [],
): void {
  const mine = ips.filter((ip) =>
    ip.interface === undefined || interfaces[ip.interface]?.name === ifName
  );
  if (mine.length === 0) return;
  let present: string[];
  try {
    present = listAddrs(h, { link: ifName }).map((a) => a.cidr);
  } catch {
    throw internal(`Cannot find container link ${ifName}`);
  }
  const routes = listRoutes(h);
  for (const ip of mine) {
    const c = parseCidr(ip.address);
    const want = `${c.ip}/${c.prefixLen}`;
    if (!present.includes(want)) {
      throw internal(`Failed to match addr ${ip.address} on interface ${ifName}`);
    }
    const prefix = networkCidr(ip.address);
    if (!routes.some((r) => r.dst === prefix)) {
      throw internal(`Failed to find a route to ${prefix} for interface ${ifName}`);
    }
  }
}

/** CHECK: every route of `routes` is in its table (main by default), with its gateway. */
export function validateExpectedRoutes(h: Handle, routes: readonly ResultRoute[]): void {
  if (routes.length === 0) return;
  const present = listRoutes(h);
  for (const r of routes) {
    const dst = networkCidr(r.dst);
    const table = r.table ?? RT_TABLE.MAIN;
    const gw = r.gw ? normalizeIp(r.gw) : undefined;
    const found = present.some((k) =>
      k.dst === dst && k.table === table &&
      (gw === undefined || k.gateway === gw || k.multipath?.some((hop) => hop.gateway === gw))
    );
    if (!found) {
      throw internal(
        `Expected Route {dst: ${r.dst}${r.gw ? `, gw: ${r.gw}` : ""}} not found in routing table`,
      );
    }
  }
}

/**
 * CHECK's last step in every interface plugin: the addresses prevResult
 * gives `ifName` and all its routes are in place.
 */
export function validatePrevResult(h: Handle, ifName: string, prev: Result): void {
  validateExpectedIps(h, ifName, prev.ips ?? [], prev.interfaces);
  validateExpectedRoutes(h, prev.routes ?? []);
}
