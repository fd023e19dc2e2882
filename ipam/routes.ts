/**
 * The `routes` list of an IPAM config, validated and written back in
 * canonical text so results carry the same strings the reference plugins
 * print.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Route } from "../cni/types.ts";
import { formatIpAddr, formatIpNet, parseIpAddr, parseIpNet } from "../ipaddr/ip.ts";

const NUMERIC_FIELDS = ["mtu", "advmss", "priority", "table", "scope"] as const;

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg);
}

/**
 * Validates `value` (the `routes` key; absent or null means none) and
 * returns the routes with `dst` and `gw` in canonical form. A `dst` keeps
 * host bits as written, like the reference plugins. Throws CniError 7.
 */
export function parseRoutes(value: unknown, where = "ipam.routes"): Route[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalid(`${where} must be a list`);
  return value.map((entry, i): Route => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw invalid(`${where}[${i}] must be an object`);
    }
    const raw = entry as Record<string, unknown>;
    if (typeof raw.dst !== "string") throw invalid(`${where}[${i}].dst must be a CIDR string`);
    const dst = parseIpNet(raw.dst);
    if (!dst) throw invalid(`${where}[${i}]: invalid CIDR address: ${raw.dst}`);
    const route: Route = { dst: formatIpNet(dst) };
    if (raw.gw !== undefined && raw.gw !== null && raw.gw !== "") {
      const gw = typeof raw.gw === "string" ? parseIpAddr(raw.gw) : undefined;
      if (!gw) throw invalid(`${where}[${i}]: invalid IP address in gw: ${JSON.stringify(raw.gw)}`);
      route.gw = formatIpAddr(gw);
    }
    for (const key of NUMERIC_FIELDS) {
      const v = raw[key];
      if (v === undefined || v === null) continue;
      if (typeof v !== "number" || !Number.isInteger(v)) {
        throw invalid(`${where}[${i}].${key} must be an integer`);
      }
      route[key] = v;
    }
    return route;
  });
}
