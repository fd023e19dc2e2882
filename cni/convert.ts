/**
 * CNI results of every spec version: parsing untrusted result JSON into a
 * clean object, and converting between versions.
 *
 * Shapes by version:
 * - 0.1.0/0.2.0: `ip4`/`ip6` blocks, each with `ip`, `gateway`, `routes`.
 * - 0.3.0/0.3.1/0.4.0: `interfaces`, `ips` (each with a required
 *   `version` "4"/"6"), `routes`, `dns`.
 * - 1.0.0: as 0.4.0 without `ips[].version`.
 * - 1.1.0: adds interface `mtu`/`socketPath`/`pciID` and route
 *   `mtu`/`advmss`/`priority`/`table`/`scope`.
 *
 * Every conversion goes through hydra's internal form (the 1.1.0 shape).
 * Going down to 0.x drops the 1.1.0-only fields; 1.0.0 and 1.1.0 share one
 * major version, whose format stays compatible both ways, so fields pass
 * between them unchanged (as libcni does). A result with no address cannot be
 * expressed in 0.1.0/0.2.0 and fails to convert.
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import { isCidr, isIp, parseIpAddr } from "../ipaddr/ip.ts";
import { type Fields, fields } from "../pkg/fields.ts";
import type {
  AnyResult,
  Dns,
  Interface,
  IpConfig,
  LegacyIpBlock,
  LegacyResult,
  Result,
  Route,
} from "./types.ts";
import { CURRENT_VERSION } from "./types.ts";
import { isSupportedVersion, normalizeVersion } from "./version.ts";

/** True for the 0.1.0/0.2.0 result shape. */
export function isLegacyVersion(version: string): boolean {
  const v = normalizeVersion(version);
  return v === "0.1.0" || v === "0.2.0";
}

function isOneX(version: string): boolean {
  return version === "1.0.0" || version === "1.1.0";
}

/** True when `result` has the 0.1.0/0.2.0 shape. */
export function isLegacyResult(result: AnyResult): result is LegacyResult {
  return isLegacyVersion(result.cniVersion);
}

// ---------------------------------------------------------------- parsing

type Json = Record<string, unknown>;

function bad(msg: string): CniError {
  return new CniError(ErrorCode.DecodingFailure, `invalid result: ${msg}`);
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The fields of a result's object at `where`, wrong types reported as "invalid result". */
function resultFields(obj: Json, where: string): Fields {
  return fields(obj, {
    where,
    emptyStringUnset: true,
    fail: (p) => bad(`${p.path} must be ${p.expected}`),
  });
}

function optString(obj: Json, key: string, where: string): string | undefined {
  return resultFields(obj, where).string(key);
}

function optInt(obj: Json, key: string, where: string): number | undefined {
  return resultFields(obj, where).integer(key);
}

function optStrings(obj: Json, key: string, where: string): string[] | undefined {
  const v = resultFields(obj, where).strings(key);
  return v?.length ? [...v] : undefined;
}

function optArray(obj: Json, key: string, where: string): unknown[] {
  return resultFields(obj, where).list(key) ?? [];
}

/**
 * The IP version of an address or CIDR: "4" for IPv4 (also IPv4-mapped, as
 * Go's To4 has it), "6" for anything else; results built in-process are not
 * validated, so this never throws.
 */
function versionOf(addressOrCidr: string): "4" | "6" {
  return parseIpAddr(addressOrCidr.split("/")[0])?.family === 4 ? "4" : "6";
}

function cidr(obj: Json, key: string, where: string): string {
  const v = obj[key];
  if (typeof v !== "string" || !isCidr(v)) {
    throw bad(`${where}.${key} must be an address in CIDR notation, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optIp(obj: Json, key: string, where: string): string | undefined {
  const v = optString(obj, key, where);
  if (v !== undefined && !isIp(v)) throw bad(`${where}.${key} is not an IP address: "${v}"`);
  return v;
}

/** Parses a `dns` object; returns undefined when it carries nothing. */
export function parseDns(raw: unknown, where = "dns"): Dns | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw)) throw bad(`${where} must be an object`);
  const dns: Dns = {};
  const nameservers = optStrings(raw, "nameservers", where);
  const domain = optString(raw, "domain", where);
  const search = optStrings(raw, "search", where);
  const options = optStrings(raw, "options", where);
  if (nameservers) dns.nameservers = nameservers;
  if (domain) dns.domain = domain;
  if (search) dns.search = search;
  if (options) dns.options = options;
  return Object.keys(dns).length ? dns : undefined;
}

function parseRoute(raw: unknown, where: string): Route {
  if (!isObject(raw)) throw bad(`${where} must be an object`);
  const route: Route = { dst: cidr(raw, "dst", where) };
  const gw = optIp(raw, "gw", where);
  if (gw) route.gw = gw;
  for (const key of ["mtu", "advmss", "priority"] as const) {
    const n = optInt(raw, key, where);
    if (n) route[key] = n;
  }
  for (const key of ["table", "scope"] as const) {
    const n = optInt(raw, key, where);
    if (n !== undefined) route[key] = n;
  }
  return route;
}

function parseLegacyBlock(raw: unknown, where: string): LegacyIpBlock | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isObject(raw)) throw bad(`${where} must be an object`);
  const block: LegacyIpBlock = { ip: cidr(raw, "ip", where) };
  const gateway = optIp(raw, "gateway", where);
  if (gateway) block.gateway = gateway;
  const routes = optArray(raw, "routes", where).map((r, i) => {
    const route = parseRoute(r, `${where}.routes[${i}]`);
    return route.gw ? { dst: route.dst, gw: route.gw } : { dst: route.dst };
  });
  if (routes.length) block.routes = routes;
  return block;
}

function parseInterface(raw: unknown, where: string): Interface {
  if (!isObject(raw)) throw bad(`${where} must be an object`);
  const name = raw.name;
  if (typeof name !== "string") throw bad(`${where}.name must be a string`);
  const iface: Interface = { name };
  const mac = optString(raw, "mac", where);
  if (mac) iface.mac = mac;
  const mtu = optInt(raw, "mtu", where);
  if (mtu) iface.mtu = mtu;
  const sandbox = optString(raw, "sandbox", where);
  if (sandbox) iface.sandbox = sandbox;
  const socketPath = optString(raw, "socketPath", where);
  if (socketPath) iface.socketPath = socketPath;
  const pciID = optString(raw, "pciID", where);
  if (pciID) iface.pciID = pciID;
  return iface;
}

function parseIpConfig(raw: unknown, where: string, withVersion: boolean): IpConfig {
  if (!isObject(raw)) throw bad(`${where} must be an object`);
  const address = cidr(raw, "address", where);
  const ip: IpConfig = { address };
  const gateway = optIp(raw, "gateway", where);
  if (gateway) ip.gateway = gateway;
  const index = optInt(raw, "interface", where);
  if (index !== undefined) {
    if (index < 0) throw bad(`${where}.interface must not be negative`);
    ip.interface = index;
  }
  if (withVersion) {
    const version = raw.version;
    if (version !== undefined && version !== "4" && version !== "6") {
      throw bad(`${where}.version must be "4" or "6"`);
    }
    ip.version = (version as "4" | "6" | undefined) ?? versionOf(address);
  }
  return ip;
}

/**
 * Parses a result printed by a plugin. A missing `cniVersion` takes
 * `fallbackVersion` (the config's, as libcni does), else means 0.1.0.
 * Unknown keys are dropped. Throws CniError 6 for a malformed result and
 * 1 for a version hydra does not know.
 */
export function parseResult(raw: unknown, fallbackVersion?: string): AnyResult {
  if (!isObject(raw)) throw bad("not a JSON object");
  let version = raw.cniVersion;
  if (version === undefined || version === null || version === "") {
    version = fallbackVersion || "0.1.0";
  }
  if (typeof version !== "string") throw bad("cniVersion must be a string");
  if (!isSupportedVersion(version)) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      `unsupported CNI result version "${version}"`,
    );
  }
  if (isLegacyVersion(version)) {
    const out: LegacyResult = { cniVersion: version };
    const ip4 = parseLegacyBlock(raw.ip4, "ip4");
    const ip6 = parseLegacyBlock(raw.ip6, "ip6");
    const dns = parseDns(raw.dns);
    if (ip4) out.ip4 = ip4;
    if (ip6) out.ip6 = ip6;
    if (dns) out.dns = dns;
    return out;
  }
  const withVersion = !isOneX(version);
  const out: Result = { cniVersion: version };
  const interfaces = optArray(raw, "interfaces", "result").map((r, i) =>
    parseInterface(r, `interfaces[${i}]`)
  );
  const ips = optArray(raw, "ips", "result").map((r, i) =>
    parseIpConfig(r, `ips[${i}]`, withVersion)
  );
  const routes = optArray(raw, "routes", "result").map((r, i) => parseRoute(r, `routes[${i}]`));
  const dns = parseDns(raw.dns);
  if (interfaces.length) out.interfaces = interfaces;
  if (ips.length) out.ips = ips;
  if (routes.length) out.routes = routes;
  if (dns) out.dns = dns;
  return isOneX(version) ? out : downTo04(toInternalShape(out), version);
}

// ------------------------------------------------------------- conversion

function copyDns(dns: Dns | undefined): Dns | undefined {
  if (!dns) return undefined;
  return parseDns(structuredClone(dns));
}

/** Turns any parsed result into the 1.x shape (version string untouched). */
function toInternalShape(result: AnyResult): Result {
  if (isLegacyResult(result)) {
    const out: Result = { cniVersion: CURRENT_VERSION };
    const ips: IpConfig[] = [];
    const routes: Route[] = [];
    for (const block of [result.ip4, result.ip6]) {
      if (!block) continue;
      const ip: IpConfig = { address: block.ip };
      if (block.gateway) ip.gateway = block.gateway;
      ips.push(ip);
      for (const r of block.routes ?? []) {
        routes.push(r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst });
      }
    }
    if (ips.length) out.ips = ips;
    if (routes.length) out.routes = routes;
    const dns = copyDns(result.dns);
    if (dns) out.dns = dns;
    return out;
  }
  const out: Result = { cniVersion: CURRENT_VERSION };
  if (result.interfaces?.length) out.interfaces = result.interfaces.map((i) => ({ ...i }));
  if (result.ips?.length) {
    out.ips = result.ips.map((ip): IpConfig => ({
      ...(ip.interface !== undefined ? { interface: ip.interface } : {}),
      address: ip.address,
      ...(ip.gateway ? { gateway: ip.gateway } : {}),
    }));
  }
  if (result.routes?.length) out.routes = result.routes.map((r) => ({ ...r }));
  const dns = copyDns(result.dns);
  if (dns) out.dns = dns;
  return out;
}

/** 1.x shape to 0.3.0/0.3.1/0.4.0: `version` per address, 1.1-only fields dropped. */
function downTo04(internal: Result, version: string): Result {
  const out: Result = { cniVersion: version };
  if (internal.interfaces?.length) {
    out.interfaces = internal.interfaces.map((i) => {
      const iface: Interface = { name: i.name };
      if (i.mac) iface.mac = i.mac;
      if (i.sandbox) iface.sandbox = i.sandbox;
      return iface;
    });
  }
  if (internal.ips?.length) {
    out.ips = internal.ips.map((ip): IpConfig => ({
      version: versionOf(ip.address),
      ...(ip.interface !== undefined ? { interface: ip.interface } : {}),
      address: ip.address,
      ...(ip.gateway ? { gateway: ip.gateway } : {}),
    }));
  }
  if (internal.routes?.length) {
    out.routes = internal.routes.map((r) => (r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst }));
  }
  if (internal.dns) out.dns = internal.dns;
  return out;
}

/** 1.x shape to 0.1.0/0.2.0: first address of each family; routes to their family's block. */
function downToLegacy(internal: Result, version: string): LegacyResult {
  const out: LegacyResult = { cniVersion: version };
  for (const ip of internal.ips ?? []) {
    const key = versionOf(ip.address) === "4" ? "ip4" : "ip6";
    if (out[key]) continue;
    const block: LegacyIpBlock = { ip: ip.address };
    if (ip.gateway) block.gateway = ip.gateway;
    out[key] = block;
  }
  if (!out.ip4 && !out.ip6) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      `cannot convert result to CNI ${version}: no valid IP addresses`,
    );
  }
  for (const r of internal.routes ?? []) {
    const block = versionOf(r.dst) === "4" ? out.ip4 : out.ip6;
    if (!block) continue;
    (block.routes ??= []).push(r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst });
  }
  if (internal.dns) out.dns = internal.dns;
  return out;
}

function legacyCopy(result: LegacyResult, version: string): LegacyResult {
  const out: LegacyResult = { cniVersion: version };
  for (const key of ["ip4", "ip6"] as const) {
    const block = result[key];
    if (!block) continue;
    const copy: LegacyIpBlock = { ip: block.ip };
    if (block.gateway) copy.gateway = block.gateway;
    if (block.routes?.length) copy.routes = block.routes.map((r) => ({ ...r }));
    out[key] = copy;
  }
  const dns = copyDns(result.dns);
  if (dns) out.dns = dns;
  return out;
}

/**
 * Converts a result to spec version `toVersion` ("" means 0.1.0). The input
 * is not modified. Throws CniError 1 for an unknown version or a result that
 * cannot be expressed in the target version.
 */
export function convertResult(result: AnyResult, toVersion: string): AnyResult {
  const to = normalizeVersion(toVersion);
  if (!isSupportedVersion(to)) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      `cannot convert result to unsupported CNI version "${toVersion}"`,
    );
  }
  const from = normalizeVersion(result.cniVersion);
  if (!isSupportedVersion(from)) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      `cannot convert result of unsupported CNI version "${result.cniVersion}"`,
    );
  }
  if (isLegacyVersion(from) && isLegacyVersion(to)) return legacyCopy(result as LegacyResult, to);
  const internal = toInternalShape({ ...result, cniVersion: from } as AnyResult);
  if (isOneX(to)) return { ...internal, cniVersion: to };
  if (isLegacyVersion(to)) return downToLegacy(internal, to);
  return downTo04(internal, to);
}

/** Converts any result into hydra's internal form (the 1.1.0 shape). */
export function toInternal(result: AnyResult): Result {
  return convertResult(result, CURRENT_VERSION) as Result;
}

/** Converts an internal (1.1.0) result into `version`'s shape. */
export function fromInternal(result: Result, version: string): AnyResult {
  return convertResult(result, version);
}
