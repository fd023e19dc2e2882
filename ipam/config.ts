/**
 * host-local compatible IPAM configuration: the `ipam` block of a plugin
 * config plus the requested addresses a runtime may pass, validated the way
 * host-local validates them so that any config host-local accepts works
 * unchanged (only `type` differs).
 *
 * Hand-written rather than schema-driven: this runs on every exec'd ADD
 * and DEL, and a schema library roughly doubles the process start time.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { NetConf, Route } from "../cni/types.ts";
import { loadCniArgs } from "../cni/args.ts";
import { type IpAddr, ipAddrKey, parseIpAddrOrCidr } from "../ipaddr/ip.ts";
import {
  canonicalizeRangeSet,
  RangeConfigError,
  type RangeSet,
  rangeSetFamily,
  rangeSetsOverlap,
} from "./range.ts";
import { parseRoutes } from "./routes.ts";
import { type Fields, fields, isJsonObject } from "../pkg/fields.ts";
import { enforceShape, type Shape } from "../pkg/schema.ts";
import type { CmdArgs } from "../cni/types.ts";

/** Where host-local keeps its reservations when `dataDir` is not set. */
export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

/** Network names the CNI spec allows; the name is also a directory name. */
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/** A validated host-local configuration. */
export interface HostLocalConfig {
  /** Network name; reservations live in `<dataDir>/<name>/`. */
  readonly name: string;
  /** The config's cniVersion ("" when absent). */
  readonly cniVersion: string;
  /** Base directory of the store (ipam.dataDir or {@link DEFAULT_DATA_DIR}). */
  readonly dataDir: string;
  /** resolv.conf-style file whose contents become the result's dns. */
  readonly resolvConf?: string;
  /** Routes copied into the result. */
  readonly routes: Route[];
  /** Range sets in allocation order: runtime ipRanges, legacy range, `ranges`. */
  readonly rangeSets: RangeSet[];
  /** Specific addresses asked for, deduplicated, in the order given. */
  readonly requestedIps: IpAddr[];
}

/** A CNI error 7 (invalid network config). */
export function invalidConfig(msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg);
}

/**
 * The fields of the config object at `where` ("ipam", "args.cni", …): a
 * field of the wrong type is an invalid config naming its path. A string
 * may be "" (callers fall back to their default for it).
 */
export function ipamFields(obj: Record<string, unknown>, where: string): Fields {
  return fields(obj, {
    where,
    fail: (p) => invalidConfig(`${p.path} must be ${p.expected}`),
  });
}

/**
 * Checks the invocation's `ipam` block against the IPAM's shape: a key of
 * the wrong type is the error {@link ipamFields} gives (not on DEL, which
 * must release whatever the block has become), an unknown or unsupported
 * key goes to the invocation's warnings.
 */
export function enforceIpamShape(args: CmdArgs, shape: Shape): void {
  const ipam = args.config.ipam;
  if (!isJsonObject(ipam)) return;
  enforceShape(ipam, shape, {
    where: "ipam",
    fail: (p) => invalidConfig(`${p.path} must be ${p.expected}`),
    types: args.command !== "DEL",
    warn: (p) => args.warn?.(p.message),
  });
}

/** The network name of a config, checked to be usable as a directory name. */
export function networkName(conf: NetConf): string {
  const name = conf.name;
  if (typeof name !== "string" || !NETWORK_NAME.test(name)) {
    throw invalidConfig(
      `invalid network name ${JSON.stringify(name)}: must match ${NETWORK_NAME.source}`,
    );
  }
  return name;
}

/** True for cniVersion >= 0.3.0, the first to allow several addresses per family. */
export function allowsManyPerFamily(cniVersion: string): boolean {
  const parts = (cniVersion === "" ? "0.1.0" : cniVersion).split(".").map(Number);
  if (parts.length > 3 || parts.some((n) => !Number.isInteger(n) || n < 0)) return false;
  const [major, minor = 0] = parts;
  return major > 0 || minor >= 3;
}

function requestedIpList(list: unknown[] | undefined, where: string): IpAddr[] {
  return (list ?? []).map((entry, i) => {
    const ip = typeof entry === "string" ? parseIpAddrOrCidr(entry) : undefined;
    if (!ip) throw invalidConfig(`${where}[${i}]: invalid IP address ${JSON.stringify(entry)}`);
    return ip;
  });
}

/**
 * The addresses a caller asked for, in host-local's order: CNI_ARGS `IP=`,
 * then `args.cni.ips`, then `runtimeConfig.ips`; each an address or CIDR.
 */
function requestedIps(conf: NetConf, cniArgs: string): IpAddr[] {
  const out: IpAddr[] = [];
  const ipArg = loadCniArgs(cniArgs, ["IP"]).IP;
  if (ipArg) {
    const ip = parseIpAddrOrCidr(ipArg);
    if (!ip) {
      throw new CniError(
        ErrorCode.InvalidEnvironmentVariables,
        `ARGS: error parsing value of pair "IP=${ipArg}": invalid IP address ${ipArg}`,
      );
    }
    out.push(ip);
  }
  const cni = conf.args ? ipamFields(conf.args, "args").object("cni") : undefined;
  if (cni) out.push(...requestedIpList(ipamFields(cni, "args.cni").list("ips"), "args.cni.ips"));
  if (conf.runtimeConfig) {
    const list = ipamFields(conf.runtimeConfig, "runtimeConfig").list("ips");
    out.push(...requestedIpList(list, "runtimeConfig.ips"));
  }
  const seen = new Set<string>();
  return out.filter((ip) => !seen.has(ipAddrKey(ip)) && seen.add(ipAddrKey(ip)));
}

/** The range-set inputs in allocation order, before validation. */
function rangeSetInputs(conf: NetConf, ipam: Record<string, unknown>): unknown[] {
  const inputs: unknown[] = [];
  if (conf.runtimeConfig) {
    inputs.push(...ipamFields(conf.runtimeConfig, "runtimeConfig").list("ipRanges") ?? []);
  }
  // The single-range form predates `ranges`; host-local puts it first.
  if (ipam.subnet !== undefined && ipam.subnet !== null) {
    const { subnet, rangeStart, rangeEnd, gateway } = ipam;
    inputs.push([{ subnet, rangeStart, rangeEnd, gateway }]);
  }
  inputs.push(...ipamFields(ipam, "ipam").list("ranges") ?? []);
  return inputs;
}

/**
 * Loads and validates the host-local configuration from a plugin's config
 * and its CNI_ARGS. Throws CniError 7 for an invalid config (naming the
 * range set at fault) and CniError 4 for malformed CNI_ARGS.
 */
export function loadHostLocalConfig(conf: NetConf, cniArgs: string): HostLocalConfig {
  if (!conf.ipam || typeof conf.ipam !== "object") {
    throw invalidConfig("IPAM config missing 'ipam' key");
  }
  const ipam = conf.ipam as Record<string, unknown>;
  const name = networkName(conf);
  const cniVersion = typeof conf.cniVersion === "string" ? conf.cniVersion : "";
  const requested = requestedIps(conf, cniArgs);

  const inputs = rangeSetInputs(conf, ipam);
  if (inputs.length === 0) throw invalidConfig("no IP ranges specified");
  const rangeSets = inputs.map((input, i) => {
    try {
      return canonicalizeRangeSet(input);
    } catch (err) {
      if (err instanceof RangeConfigError) {
        throw invalidConfig(`invalid range set ${i}: ${err.message}`);
      }
      throw err;
    }
  });

  const v4 = rangeSets.filter((s) => rangeSetFamily(s) === 4).length;
  if ((v4 > 1 || rangeSets.length - v4 > 1) && !allowsManyPerFamily(cniVersion)) {
    throw invalidConfig(
      `CNI version ${cniVersion} does not support more than 1 address per family`,
    );
  }
  for (let i = 0; i < rangeSets.length; i++) {
    for (let j = i + 1; j < rangeSets.length; j++) {
      if (rangeSetsOverlap(rangeSets[i], rangeSets[j])) {
        throw invalidConfig(`range set ${i} overlaps with ${j}`);
      }
    }
  }

  const dataDir = ipamFields(ipam, "ipam").string("dataDir") || DEFAULT_DATA_DIR;
  const resolvConf = ipamFields(ipam, "ipam").string("resolvConf") || undefined;
  const routes = parseRoutes(ipam.routes);
  return { name, cniVersion, dataDir, resolvConf, routes, rangeSets, requestedIps: requested };
}

/** Where a network's reservations live. */
export interface StoreLocation {
  readonly name: string;
  readonly dataDir: string;
}

/**
 * Only the store location of a config: what DEL and GC need. They must be
 * able to release addresses even when the ranges have since become invalid.
 */
export function loadStoreLocation(conf: NetConf): StoreLocation {
  if (!conf.ipam || typeof conf.ipam !== "object") {
    throw invalidConfig("IPAM config missing 'ipam' key");
  }
  const ipam = conf.ipam as Record<string, unknown>;
  const dataDir = ipamFields(ipam, "ipam").string("dataDir") || DEFAULT_DATA_DIR;
  return { name: networkName(conf), dataDir };
}
