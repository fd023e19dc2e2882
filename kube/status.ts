/**
 * What hydra reports on a pod after attaching its networks: entries of the
 * `k8s.v1.cni.cncf.io/network-status` annotation, built from CNI results
 * the way Multus builds them, and hydra's per-network result annotation.
 * Pure functions; `objects.ts` writes them.
 *
 * @module
 */

import type { Dns, Result } from "../cni/types.ts";
import { canonicalIp } from "../ipaddr/ip.ts";

/** The pod annotation listing every attached network. */
export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";
/** Prefix of hydra's per-network annotation holding the CNI result JSON. */
export const RESULT_ANNOTATION_PREFIX = "hydra.clusternet.io.";

/** Device details a device plugin or CNI may report (multi-net-spec `device-info`). */
export interface DeviceInfo {
  type?: string;
  version?: string;
  [key: string]: unknown;
}

/** One entry of the network-status annotation. */
export interface NetworkStatus {
  /** "namespace/name" for a NetworkAttachmentDefinition, else the conf's name. */
  name: string;
  interface?: string;
  /** Bare addresses, no prefix length. */
  ips?: string[];
  mac?: string;
  mtu?: number;
  default?: boolean;
  /** Always present (possibly `{}`), as Multus writes it. */
  dns: Dns;
  "device-info"?: DeviceInfo;
  /** Gateways of the result's default routes. */
  gateway?: string[];
}

function copyDns(dns: Dns | undefined): Dns {
  const out: Dns = {};
  if (dns?.nameservers?.length) out.nameservers = [...dns.nameservers];
  if (dns?.domain) out.domain = dns.domain;
  if (dns?.search?.length) out.search = [...dns.search];
  if (dns?.options?.length) out.options = [...dns.options];
  return out;
}

/** A route to 0.0.0.0 or :: with any prefix length counts as a default route, as in Multus. */
function isDefaultDst(dst: string): boolean {
  const ip = canonicalIp(dst.split("/")[0]);
  return ip === "0.0.0.0" || ip === "::";
}

function defaultGateways(result: Result): string[] {
  const out: string[] = [];
  for (const r of result.routes ?? []) {
    // A default route without a gateway names none to report.
    if (isDefaultDst(r.dst) && r.gw) out.push(canonicalIp(r.gw));
  }
  return out;
}

/** Builds an entry in Multus's field order, leaving out empty fields. */
function entry(fields: {
  name: string;
  iface?: string;
  ips: string[];
  mac?: string;
  mtu?: number;
  isDefault: boolean;
  dns: Dns;
  device?: DeviceInfo;
  gateway: string[];
}): NetworkStatus {
  // Key order is the order of assignment; `dns` comes after `default` in Multus's output.
  const e = { name: fields.name } as NetworkStatus;
  if (fields.iface) e.interface = fields.iface;
  if (fields.ips.length) e.ips = fields.ips;
  if (fields.mac) e.mac = fields.mac;
  if (fields.mtu) e.mtu = fields.mtu;
  if (fields.isDefault) e.default = true;
  e.dns = fields.dns;
  if (fields.device) e["device-info"] = fields.device;
  if (fields.gateway.length) e.gateway = fields.gateway;
  return e;
}

/**
 * The network-status entries for one attachment's result (1.x shape):
 * with exactly one interface in the result, one entry carrying every
 * address; otherwise one entry per sandbox interface, each with the
 * addresses pointing at it (addresses naming no interface go to the last
 * one). For the default network, the entry of the first interface with a
 * gatewayed address is marked default, else the first sandbox interface.
 *
 * @param networkName "namespace/name" for a NAD, else the conf's name
 * @param isDefault whether this attachment is the pod's default network
 */
export function networkStatusEntries(
  result: Result,
  networkName: string,
  isDefault: boolean,
  deviceInfo?: DeviceInfo,
): NetworkStatus[] {
  const ifaces = result.interfaces ?? [];
  const ips = result.ips ?? [];
  const dns = copyDns(result.dns);
  const gateway = defaultGateways(result);
  if (ifaces.length === 1) {
    const iface = ifaces[0].sandbox ? ifaces[0] : undefined;
    return [entry({
      name: networkName,
      iface: iface?.name,
      ips: ips.map((ip) => canonicalIp(ip.address)),
      mac: iface?.mac,
      mtu: iface?.mtu,
      isDefault,
      dns,
      device: deviceInfo,
      gateway,
    })];
  }
  const gwIface = isDefault
    ? ips.find((ip) => ip.gateway && ip.interface !== undefined)?.interface ?? -1
    : -1;
  const byIndex = new Map<number, { iface: string; mac?: string; mtu?: number; ips: string[] }>();
  let defaultIndex = -1;
  for (const [i, iface] of ifaces.entries()) {
    if (!iface.sandbox) continue;
    byIndex.set(i, { iface: iface.name, mac: iface.mac, mtu: iface.mtu, ips: [] });
    if (isDefault && defaultIndex < 0 && (gwIface === -1 || gwIface === i)) defaultIndex = i;
  }
  const slots = [...byIndex.values()];
  for (const ip of ips) {
    const slot = ip.interface !== undefined ? byIndex.get(ip.interface) : slots[slots.length - 1];
    slot?.ips.push(canonicalIp(ip.address));
  }
  return [...byIndex.entries()].map(([i, s]) =>
    entry({
      name: networkName,
      iface: s.iface,
      ips: s.ips,
      mac: s.mac,
      mtu: s.mtu,
      isDefault: i === defaultIndex,
      dns: copyDns(dns),
      device: deviceInfo,
      gateway: [...gateway],
    })
  );
}

/** Go's encoder escapes these inside strings; matching it keeps the text byte-identical. */
function goEscape(json: string): string {
  return json.replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** The annotation value: each entry indented by four spaces, as Multus writes it. */
export function formatNetworkStatus(entries: readonly NetworkStatus[]): string {
  return `[${entries.map((e) => goEscape(JSON.stringify(e, null, 4))).join(",")}]`;
}

/**
 * Reads an existing network-status value. Entries that are not objects with
 * a string `name` are kept as they are (they belong to whoever wrote them).
 * Throws when the value is not a JSON list.
 */
export function parseNetworkStatus(value: string): unknown[] {
  const doc: unknown = JSON.parse(value);
  if (!Array.isArray(doc)) throw new Error("network-status is not a JSON list");
  return doc;
}

/**
 * Merges `ours` into an existing network-status value without dropping
 * entries others wrote: existing entries with one of `replaceNames` as name,
 * or with the same interface as one of ours, are replaced; the rest keep
 * their order and ours follow. An unreadable existing value is replaced.
 *
 * @param replaceNames networks this writer owns (also to remove: pass `ours` empty)
 */
export function mergeNetworkStatus(
  existing: string | undefined,
  ours: readonly NetworkStatus[],
  replaceNames: readonly string[] = ours.map((e) => e.name),
): string {
  let kept: unknown[] = [];
  if (existing) {
    try {
      kept = parseNetworkStatus(existing);
    } catch {
      kept = [];
    }
  }
  const names = new Set(replaceNames);
  const ifaces = new Set(ours.map((e) => e.interface).filter((i) => i !== undefined));
  kept = kept.filter((e) => {
    if (typeof e !== "object" || e === null) return true;
    const { name, interface: iface } = e as { name?: unknown; interface?: unknown };
    if (typeof name === "string" && names.has(name)) return false;
    return !(typeof iface === "string" && ifaces.has(iface));
  });
  const text = kept.map((e) => goEscape(JSON.stringify(e, null, 4)));
  for (const e of ours) text.push(goEscape(JSON.stringify(e, null, 4)));
  return `[${text.join(",")}]`;
}

/** FNV-1a, enough to keep shortened annotation keys distinct. */
function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

const KEY_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/**
 * The key of hydra's result annotation for a network: `hydra.clusternet.io.<ns>/<name>`
 * for a NAD ("ns/name"), `hydra.clusternet.io.<name>` otherwise. Kubernetes
 * limits the part after the `/` (or the whole key without one) to 63
 * characters; longer names are shortened with a hash suffix.
 */
export function resultAnnotationKey(networkName: string): string {
  const slash = networkName.indexOf("/");
  const prefix = slash >= 0
    ? `${RESULT_ANNOTATION_PREFIX}${networkName.slice(0, slash)}/`
    : RESULT_ANNOTATION_PREFIX;
  const name = slash >= 0 ? networkName.slice(slash + 1) : networkName;
  const room = slash >= 0 ? 63 : 63 - RESULT_ANNOTATION_PREFIX.length;
  if (name.length <= room && KEY_NAME.test(name)) return prefix + name;
  const safe = name.replace(/[^-A-Za-z0-9_.]/g, "-").slice(0, room - 9).replace(/[-_.]+$/, "");
  return `${prefix}${safe || "net"}-${shortHash(networkName)}`;
}

/** The value of hydra's result annotation: the CNI result as the delegate returned it. */
export function resultAnnotationValue(result: unknown): string {
  return JSON.stringify(result);
}
