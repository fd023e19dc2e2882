/**
 * Applying a pod's `default-route` requests after an attachment's ADD, as
 * Multus does: once any selection asks, every attachment's interface loses
 * its default routes in the pod's namespace, and the named gateways become
 * default routes via theirs (the plan comes from kube/delegate.ts). The
 * attachment's result, and its libcni cache entry that DEL and CHECK read,
 * are changed to match, so network-status and CHECK see what the kernel has.
 *
 * @module
 */

import { readCacheEntry, writeCacheEntry } from "../cni/cache.ts";
import { convertResult, toInternal } from "../cni/convert.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import type { AnyResult, Result, Route } from "../cni/types.ts";
import type { DefaultRoutePlan } from "../kube/delegate.ts";

/** IPv4 unless it has a colon (an IPv6 text, mapped IPv4 included, routes as IPv6). */
function isV4(ip: string): boolean {
  return !ip.includes(":");
}

/** A route to the all-zero address of its family ("0.0.0.0/0", "::/0", "0:0::/0", …). */
function isDefaultDst(dst: string): boolean {
  const ip = dst.split("/")[0];
  return isV4(ip) ? /^0+(\.0+){3}$/.test(ip) : /^[0:]+$/.test(ip);
}

/** The result with its default routes replaced according to `plan`. */
export function planResult(result: Result, plan: DefaultRoutePlan): Result {
  const routes: Route[] = (result.routes ?? []).filter((r) =>
    !(plan.removeDefaultRoutes && isDefaultDst(r.dst))
  );
  for (const gw of plan.gateways) {
    routes.push({ dst: isV4(gw) ? "0.0.0.0/0" : "::/0", gw });
  }
  const out: Result = { ...result };
  if (routes.length) out.routes = routes;
  else delete out.routes;
  return out;
}

/**
 * Removes the interface's default routes in the pod namespace and adds the
 * plan's gateways via it. Throws CNI code 999 naming the interface when the
 * kernel refuses.
 */
export async function applyRoutePlan(
  netns: string,
  ifName: string,
  plan: DefaultRoutePlan,
): Promise<void> {
  if (!plan.removeDefaultRoutes && plan.gateways.length === 0) return;
  const nl = await import("../netlink/mod.ts");
  const h = nl.openHandle({ netnsPath: netns });
  try {
    const link = nl.findLink(h, ifName);
    if (!link) {
      throw new CniError(ErrorCode.Internal, `default-route: no interface ${ifName} in ${netns}`);
    }
    if (plan.removeDefaultRoutes) {
      for (const family of [4, 6] as const) {
        for (const r of nl.listRoutes(h, { family, oif: link.index, table: 254 })) {
          if (r.dst !== "0.0.0.0/0" && r.dst !== "::/0") continue;
          try {
            nl.delRoute(h, {
              dst: r.dst,
              family,
              gateway: r.gateway,
              oif: link.index,
              table: r.table,
              priority: r.priority,
            });
          } catch (err) {
            if (!nl.isNotFound(err)) throw err;
          }
        }
      }
    }
    for (const gw of plan.gateways) {
      nl.replaceRoute(h, { dst: "default", gateway: gw, oif: link.index });
    }
  } catch (err) {
    if (err instanceof CniError) throw err;
    throw new CniError(
      ErrorCode.Internal,
      `default-route on ${ifName}: ${err instanceof Error ? err.message : err}`,
    );
  } finally {
    nl.closeHandle(h);
  }
}

/**
 * Applies the plan to the kernel, the result and the cache entry; returns
 * the result (in its own version) as it now stands.
 */
export async function applyDefaultRoutes(
  netns: string,
  ifName: string,
  plan: DefaultRoutePlan,
  result: AnyResult,
  cache: { cacheDir: string; networkName: string; containerId: string },
): Promise<AnyResult> {
  await applyRoutePlan(netns, ifName, plan);
  const version = result.cniVersion;
  const changed = convertResult(planResult(toInternal(result), plan), version);
  const entry = await readCacheEntry(cache.cacheDir, cache.networkName, cache.containerId, ifName);
  if (entry) {
    entry.result = changed as unknown as Record<string, unknown>;
    await writeCacheEntry(cache.cacheDir, entry);
  }
  return changed;
}
