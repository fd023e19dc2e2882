/**
 * Static IPAM, config-compatible with the reference `static` plugin: the
 * addresses (with optional gateways), routes and dns written in the config
 * are returned as they are. Nothing is reserved, so DEL has nothing to undo.
 *
 * Addresses may also come from CNI_ARGS (`IP=` and `GATEWAY=`, comma-separated
 * lists, added to the config's), `args.cni.ips` or `runtimeConfig.ips`
 * (each replacing what came before), as in the reference plugin.
 *
 * @module
 */

import { loadCniArgs } from "../cni/args.ts";
import { fromInternal } from "../cni/convert.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Plugin } from "../cni/types.ts";
import type { AnyResult, CmdArgs, Dns, IpConfig, Result, Route } from "../cni/types.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../cni/types.ts";
import { allowsManyPerFamily, enforceIpamShape, invalidConfig, ipamFields } from "./config.ts";
import { STATIC_SHAPE } from "./schemas.ts";
import {
  formatIpAddr,
  formatIpNet,
  type IpAddr,
  ipAddrEquals,
  type IpNet,
  ipNetContains,
  parseIpAddr,
  parseIpAddrOrCidr,
  parseIpNet,
} from "../ipaddr/ip.ts";
import { parseRoutes } from "./routes.ts";

/** One configured address. */
export interface StaticAddress {
  readonly address: IpNet;
  readonly gateway?: IpAddr;
}

/** A validated static IPAM config. */
export interface StaticConfig {
  readonly cniVersion: string;
  readonly addresses: StaticAddress[];
  readonly routes: Route[];
  readonly dns?: Dns;
}

function cidrOrThrow(text: unknown, msg: string): IpNet {
  const net = typeof text === "string" ? parseIpNet(text.trim()) : undefined;
  if (!net) throw invalidConfig(`${msg}, got: '${String(text)}'`);
  return { ip: net.ip, prefix: net.prefix };
}

function addressList(list: unknown[], where: string): StaticAddress[] {
  return list.map((entry) =>
    cidrOrThrow(entry, `an entry in the '${where}' field is NOT in CIDR notation`)
  ).map((address) => ({ address }));
}

function configAddresses(ipam: Record<string, unknown>): StaticAddress[] {
  return (ipamFields(ipam, "ipam").list("addresses") ?? []).map((entry, i) => {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw invalidConfig(`ipam.addresses[${i}] must be an object`);
    }
    const obj = entry as Record<string, unknown>;
    const address = cidrOrThrow(
      obj.address,
      "the 'address' field is expected to be in CIDR notation",
    );
    const gwText = ipamFields(obj, `ipam.addresses[${i}]`).string("gateway");
    if (!gwText) return { address };
    const gateway = parseIpAddr(gwText);
    if (!gateway) throw invalidConfig(`ipam.addresses[${i}]: invalid gateway address: ${gwText}`);
    return { address, gateway };
  });
}

/** The `dns` block of an IPAM config, validated; undefined when absent or empty. */
export function parseDnsBlock(raw: Record<string, unknown> | undefined): Dns | undefined {
  if (!raw) return undefined;
  const dns: Dns = {};
  for (const key of ["nameservers", "search", "options"] as const) {
    const list = ipamFields(raw, "ipam.dns").list(key);
    if (list === undefined) continue;
    if (!list.every((s) => typeof s === "string")) {
      throw invalidConfig(`ipam.dns.${key} must be a list of strings`);
    }
    if (list.length > 0) dns[key] = list as string[];
  }
  const domain = ipamFields(raw, "ipam.dns").string("domain");
  if (domain) dns.domain = domain;
  return Object.keys(dns).length > 0 ? dns : undefined;
}

/** Loads and validates a static IPAM config; CniError 7 (or 4 for CNI_ARGS) on bad input. */
export function loadStaticConfig(conf: CmdArgs["config"], cniArgs: string): StaticConfig {
  if (!conf.ipam || typeof conf.ipam !== "object") {
    throw invalidConfig("IPAM config missing 'ipam' key");
  }
  const ipam = conf.ipam as Record<string, unknown>;
  let addresses = configAddresses(ipam);

  const env = loadCniArgs(cniArgs, ["IP", "GATEWAY"]);
  if (env.IP) {
    addresses.push(...addressList(
      env.IP.split(","),
      "ip",
    ));
  }
  if (env.GATEWAY) {
    for (const item of env.GATEWAY.split(",")) {
      const gw = parseIpAddr(item.trim());
      if (!gw) {
        throw new CniError(
          ErrorCode.InvalidEnvironmentVariables,
          `invalid gateway address: ${item}`,
        );
      }
      addresses = addresses.map((a) => ipNetContains(a.address, gw) ? { ...a, gateway: gw } : a);
    }
  }
  const cni = conf.args ? ipamFields(conf.args, "args").object("cni") : undefined;
  const argIps = cni ? ipamFields(cni, "args.cni").list("ips") : undefined;
  if (argIps?.length) addresses = addressList(argIps, "ips");
  const rtIps = conf.runtimeConfig
    ? ipamFields(conf.runtimeConfig, "runtimeConfig").list("ips")
    : undefined;
  if (rtIps?.length) addresses = addressList(rtIps, "ips");

  const cniVersion = typeof conf.cniVersion === "string" ? conf.cniVersion : "";
  const v4 = addresses.filter((a) => a.address.ip.family === 4).length;
  if ((v4 > 1 || addresses.length - v4 > 1) && !allowsManyPerFamily(cniVersion)) {
    throw invalidConfig(
      `CNI version ${cniVersion} does not support more than 1 address per family`,
    );
  }
  const dns = parseDnsBlock(ipamFields(ipam, "ipam").object("dns"));
  return { cniVersion, addresses, routes: parseRoutes(ipam.routes), dns };
}

function toResult(config: StaticConfig): Result {
  const result: Result = {
    cniVersion: CURRENT_VERSION,
    ips: config.addresses.map((a): IpConfig => {
      const ip: IpConfig = { address: formatIpNet(a.address) };
      if (a.gateway) ip.gateway = formatIpAddr(a.gateway);
      return ip;
    }),
  };
  if (config.routes.length > 0) result.routes = config.routes;
  if (config.dns) result.dns = config.dns;
  return result;
}

// deno-lint-ignore require-await -- async so that a bad config rejects rather than throws
async function add(args: CmdArgs): Promise<AnyResult> {
  enforceIpamShape(args, STATIC_SHAPE);
  const config = loadStaticConfig(args.config, args.args);
  return fromInternal(toResult(config), config.cniVersion);
}

/** Addresses (with gateways) of a prevResult in the 0.3+ shape or the 0.1/0.2 shape. */
function previousIps(prev: unknown): { ip: IpAddr; gateway?: IpAddr }[] {
  if (typeof prev !== "object" || prev === null) return [];
  const p = prev as Record<string, unknown>;
  const entries: { ip?: unknown; gateway?: unknown }[] = [];
  if (Array.isArray(p.ips)) {
    for (const c of p.ips) entries.push({ ip: c?.address, gateway: c?.gateway });
  }
  for (const key of ["ip4", "ip6"]) {
    const b = p[key] as { ip?: unknown; gateway?: unknown } | undefined;
    if (b && typeof b === "object") entries.push(b);
  }
  return entries.flatMap((e) => {
    const ip = typeof e.ip === "string" ? parseIpAddrOrCidr(e.ip) : undefined;
    if (!ip) return [];
    const gateway = typeof e.gateway === "string" ? parseIpAddr(e.gateway) : undefined;
    return [{ ip, gateway }];
  });
}

// deno-lint-ignore require-await -- async so that every failure rejects rather than throws
async function check(args: CmdArgs): Promise<void> {
  enforceIpamShape(args, STATIC_SHAPE);
  const config = loadStaticConfig(args.config, args.args);
  if (!args.config.prevResult) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, "Required prevResult missing");
  }
  const prev = previousIps(args.config.prevResult);
  for (const want of config.addresses) {
    const found = prev.find((p) => ipAddrEquals(p.ip, want.address.ip));
    if (!found) {
      throw new CniError(
        ErrorCode.Internal,
        `static: address ${formatIpAddr(want.address.ip)} missing from interface ${args.ifName}`,
      );
    }
    if (want.gateway && !ipAddrEquals(found.gateway, want.gateway)) {
      throw new CniError(
        ErrorCode.Internal,
        `static: Failed to match addr ${formatIpAddr(found.ip)} on interface ${args.ifName}`,
      );
    }
  }
}

/** The static IPAM plugin (invoked as `hydra-static`). */
export const plugin: Plugin = {
  kind: "static",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del: () => Promise.resolve(),
  check,
};
