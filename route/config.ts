/**
 * The router's networks: one config file (YAML or JSON) listing every
 * network the router keeps routed between nodes, or flags for a single one.
 *
 * ```yaml
 * networks:
 *   - name: default            # pod CIDRs from spec.podCIDRs, next hop the InternalIP
 *     mode: routed
 *     allowedCIDRs: [10.244.0.0/16]   # the cluster CIDR: nothing outside it is routed
 *   - name: blue
 *     mode: routed
 *     allowedCIDRs: [10.245.0.0/16, fd45::/48]
 *     protocol: 203            # unique per network; the router owns routes with it
 *     cidrAnnotation: hydra.clusternet.io/blue.cidr        # the default for "blue"
 *     addressAnnotation: hydra.clusternet.io/blue.address  # the default for "blue"
 *   - name: red
 *     mode: vxlan
 *     allowedCIDRs: [10.246.0.0/16]
 *     protocol: 204
 *     table: 254
 *     mtu: 1450
 *     vxlan: { device: vx-red, vni: 4096, port: 8472, underlayDevice: eth0 }
 *   - name: green              # pods attached with the hydra-vxlan plugin (vni 42)
 *     mode: vxlan
 *     allowedCIDRs: [10.247.0.0/16]
 *     protocol: 205
 *     vxlan: { owner: plugin, vni: 42 }   # device hydravx42, made by the plugin
 * ```
 *
 * Every network names the ranges its node CIDRs must lie in
 * (`allowedCIDRs`, typically the network's cluster CIDR): a node object is
 * written by the node itself, and a node that claims a CIDR outside them
 * (a public range, the metadata address 169.254.169.254/32, another
 * network's range) is refused rather than routed to. A file without them
 * is refused as a whole.
 *
 * A problem confined to one network (a protocol number another network
 * already uses, a vxlan device name or VNI taken twice) disables that
 * network only and is reported; a file that cannot be read at all is an
 * error.
 *
 * @module
 */

import { parseConfigText } from "../pkg/config_text.ts";
import { formatIp, isIp, maskBytes, parseCidr } from "../ipaddr/ip.ts";

/** How a network is carried between nodes. */
export type NetworkMode = "routed" | "vxlan";

/**
 * Who makes the vxlan device: the router itself (an L3 device with the
 * first address of this node's CIDR), or the hydra-vxlan CNI plugin (a
 * tunnel on the network's bridge, made with the first pod; the router only
 * programs its FDB, neighbours and routes, as that plugin expects).
 */
export type VxlanOwner = "router" | "plugin";

/** The overlay device of a vxlan network. */
export interface VxlanConfig {
  owner: VxlanOwner;
  /** Device name (at most 15 bytes); default vx-<network>, or hydravx<vni> for the plugin's. */
  device: string;
  /** VXLAN network identifier, 1–16777215. */
  vni: number;
  /** UDP port; default 8472 (the kernel's and flannel's), 4789 is IANA's. */
  port: number;
  /** Underlay device the packets leave by (also picks the local address when none is known). */
  underlayDevice?: string;
  /** Local underlay address; default the node's own address for the network. */
  local?: string;
}

/** One network the router keeps routed. */
export interface NetworkConfig {
  name: string;
  mode: NetworkMode;
  /** Route protocol number marking the routes this network owns (5–255). */
  protocol: number;
  /** Routing table (default 254, main). */
  table: number;
  /** Route metric (priority); default none (IPv6: the kernel's 1024). */
  metric?: number;
  /** routed: MTU on each route; vxlan: the device's MTU. */
  mtu?: number;
  /**
   * The ranges every node CIDR of this network must lie in (canonical
   * `network/prefix` form); a node claiming anything else is refused.
   */
  allowedCIDRs: string[];
  /** Node annotation holding the node's CIDRs for this network; "" = spec.podCIDRs. */
  cidrAnnotation: string;
  /** Node annotation holding the address to reach the node by; "" = its InternalIP(s). */
  addressAnnotation: string;
  /** Present exactly when mode is "vxlan". */
  vxlan?: VxlanConfig;
}

/** A problem that disables one network. */
export interface ConfigProblem {
  kind: "protocol_clash" | "config";
  network: string;
  message: string;
}

/** The networks to sync, and those left out with why. */
export interface RouterConfig {
  networks: NetworkConfig[];
  problems: ConfigProblem[];
}

/** A config file or flag set that cannot be used at all. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The protocol number of a network that does not name one. */
export const DEFAULT_PROTOCOL = 202;
/** The main routing table. */
export const MAIN_TABLE = 254;
/** The vxlan UDP port when none is given. */
export const DEFAULT_VXLAN_PORT = 8472;
/** Where the annotations of secondary networks live by default. */
export const ANNOTATION_PREFIX = "hydra.clusternet.io/";

/** The default CIDR annotation of a network ("" for "default": spec.podCIDRs). */
export function defaultCidrAnnotation(network: string): string {
  return network === "default" ? "" : `${ANNOTATION_PREFIX}${network}.cidr`;
}

/** The default address annotation of a network ("" for "default": the InternalIP). */
export function defaultAddressAnnotation(network: string): string {
  return network === "default" ? "" : `${ANNOTATION_PREFIX}${network}.address`;
}

const NETWORK_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const ANNOTATION_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const IFNAME = /^[^/:\s]{1,15}$/;
const KNOWN_KEYS = new Set([
  "name",
  "allowedCIDRs",
  "mode",
  "protocol",
  "table",
  "metric",
  "mtu",
  "cidrAnnotation",
  "addressAnnotation",
  "vxlan",
]);
const VXLAN_KEYS = new Set(["owner", "device", "vni", "port", "underlayDevice", "local"]);

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function int(where: string, key: string, v: unknown, min: number, max: number): number {
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${where}: ${key} must be a whole number from ${min} to ${max}`);
  }
  return n;
}

function str(where: string, key: string, v: unknown): string {
  if (typeof v !== "string") throw new ConfigError(`${where}: ${key} must be a string`);
  return v;
}

function annotation(where: string, key: string, v: unknown, fallback: string): string {
  if (v === undefined) return fallback;
  const s = str(where, key, v);
  if (s !== "" && !ANNOTATION_KEY.test(s)) {
    throw new ConfigError(`${where}: ${key} ${JSON.stringify(s)} is not an annotation key`);
  }
  return s;
}

/** The canonical form of a CIDR (host bits cleared), or undefined when `text` is not one. */
function canonicalCidr(text: string): string | undefined {
  if (!text.includes("/")) return undefined;
  try {
    const c = parseCidr(text);
    const mask = maskBytes(c.prefixLen, c.family);
    return `${formatIp(c.bytes.map((b, i) => b & mask[i]))}/${c.prefixLen}`;
  } catch {
    return undefined;
  }
}

/**
 * `allowedCIDRs`: a non-empty list of CIDRs (a comma-separated string
 * too, as a flag gives it).
 */
function allowedCidrs(where: string, v: unknown): string[] {
  if (v === undefined) {
    throw new ConfigError(
      `${where}: allowedCIDRs is missing: list the ranges this network's node CIDRs lie in ` +
        `(its cluster CIDR, e.g. [10.244.0.0/16]); nodes claiming anything else are not routed`,
    );
  }
  const list = typeof v === "string" ? v.split(",").map((t) => t.trim()).filter((t) => t) : v;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError(`${where}: allowedCIDRs must be a non-empty list of CIDRs`);
  }
  return list.map((t) => {
    const c = typeof t === "string" ? canonicalCidr(t.trim()) : undefined;
    if (!c) {
      throw new ConfigError(`${where}: allowedCIDRs entry ${JSON.stringify(t)} is not a CIDR`);
    }
    return c;
  });
}

function parseVxlan(where: string, network: string, raw: unknown): VxlanConfig {
  if (!isObject(raw)) throw new ConfigError(`${where}: mode vxlan needs a "vxlan" object`);
  for (const k of Object.keys(raw)) {
    if (!VXLAN_KEYS.has(k)) throw new ConfigError(`${where}: unknown key vxlan.${k}`);
  }
  const owner = raw.owner ?? "router";
  if (owner !== "router" && owner !== "plugin") {
    throw new ConfigError(`${where}: vxlan.owner must be "router" or "plugin"`);
  }
  const vni = int(where, "vxlan.vni", raw.vni, 1, 0xffffff);
  const device = raw.device === undefined
    ? owner === "plugin" ? `hydravx${vni}` : `vx-${network}`.slice(0, 15)
    : str(where, "vxlan.device", raw.device);
  if (!IFNAME.test(device) || new TextEncoder().encode(device).length > 15) {
    throw new ConfigError(`${where}: vxlan.device ${JSON.stringify(device)} is not a device name`);
  }
  const vx: VxlanConfig = {
    owner,
    device,
    vni,
    port: raw.port === undefined
      ? DEFAULT_VXLAN_PORT
      : int(where, "vxlan.port", raw.port, 1, 65535),
  };
  if (raw.underlayDevice !== undefined) {
    vx.underlayDevice = str(where, "vxlan.underlayDevice", raw.underlayDevice);
  }
  if (raw.local !== undefined) {
    const local = str(where, "vxlan.local", raw.local);
    if (!isIp(local)) throw new ConfigError(`${where}: vxlan.local ${local} is not an address`);
    vx.local = local;
  }
  return vx;
}

/** Validates one network entry; throws ConfigError naming the entry. */
export function parseNetwork(raw: unknown, index: number): NetworkConfig {
  let where = `networks[${index}]`;
  if (!isObject(raw)) throw new ConfigError(`${where}: must be an object`);
  const name = str(where, "name", raw.name);
  if (!NETWORK_NAME.test(name)) {
    throw new ConfigError(`${where}: name ${JSON.stringify(name)} must be a DNS label`);
  }
  where = `network ${name}`;
  for (const k of Object.keys(raw)) {
    if (!KNOWN_KEYS.has(k)) throw new ConfigError(`${where}: unknown key ${JSON.stringify(k)}`);
  }
  const mode = raw.mode ?? "routed";
  if (mode !== "routed" && mode !== "vxlan") {
    throw new ConfigError(
      `${where}: mode must be "routed" or "vxlan", got ${JSON.stringify(mode)}`,
    );
  }
  // 0-4 are the kernel's own and the tools' defaults: routes with them belong to everyone.
  const protocol = raw.protocol === undefined
    ? DEFAULT_PROTOCOL
    : int(where, "protocol", raw.protocol, 5, 255);
  const table = raw.table === undefined
    ? MAIN_TABLE
    : int(where, "table", raw.table, 1, 0xffffffff);
  if (table === 253 || table === 255) {
    throw new ConfigError(`${where}: table ${table} is the kernel's (default/local)`);
  }
  const net: NetworkConfig = {
    name,
    mode,
    protocol,
    table,
    allowedCIDRs: [],
    cidrAnnotation: annotation(
      where,
      "cidrAnnotation",
      raw.cidrAnnotation,
      defaultCidrAnnotation(name),
    ),
    addressAnnotation: annotation(
      where,
      "addressAnnotation",
      raw.addressAnnotation,
      defaultAddressAnnotation(name),
    ),
  };
  if (raw.metric !== undefined) net.metric = int(where, "metric", raw.metric, 0, 0xffffffff);
  if (raw.mtu !== undefined) net.mtu = int(where, "mtu", raw.mtu, 576, 65535);
  if (mode === "vxlan") net.vxlan = parseVxlan(where, name, raw.vxlan);
  else if (raw.vxlan !== undefined) {
    throw new ConfigError(`${where}: vxlan given for a routed network`);
  }
  // Last, so that a file (or flags) with other mistakes names those first.
  net.allowedCIDRs = allowedCidrs(where, raw.allowedCIDRs);
  return net;
}

/**
 * Checks the networks against each other. The first network (in file
 * order) keeps a protocol number, device name or VNI/port; a later one
 * asking for it is left out with a problem, so the routes of the first are
 * never touched by the second.
 */
export function checkNetworks(networks: NetworkConfig[]): RouterConfig {
  const kept: NetworkConfig[] = [];
  const problems: ConfigProblem[] = [];
  const names = new Set<string>();
  const protocols = new Map<number, string>();
  const devices = new Map<string, string>();
  const vnis = new Map<string, string>();
  for (const net of networks) {
    if (names.has(net.name)) {
      problems.push({
        kind: "config",
        network: net.name,
        message: `network ${net.name} is listed twice; the second is ignored`,
      });
      continue;
    }
    names.add(net.name);
    const owner = protocols.get(net.protocol);
    if (owner !== undefined) {
      problems.push({
        kind: "protocol_clash",
        network: net.name,
        message:
          `network ${net.name}: route protocol ${net.protocol} is already network ${owner}'s; ` +
          `give it its own "protocol" (network ${net.name} is not synced)`,
      });
      continue;
    }
    if (net.vxlan) {
      const dev = devices.get(net.vxlan.device);
      const vniKey = `${net.vxlan.vni}/${net.vxlan.port}`;
      const vniOwner = vnis.get(vniKey);
      if (dev !== undefined || vniOwner !== undefined) {
        problems.push({
          kind: "config",
          network: net.name,
          message: dev !== undefined
            ? `network ${net.name}: vxlan device ${net.vxlan.device} is already network ${dev}'s (network ${net.name} is not synced)`
            : `network ${net.name}: VNI ${net.vxlan.vni} on port ${net.vxlan.port} is already network ${vniOwner}'s (network ${net.name} is not synced)`,
        });
        continue;
      }
      devices.set(net.vxlan.device, net.name);
      vnis.set(vniKey, net.name);
    }
    protocols.set(net.protocol, net.name);
    kept.push(net);
  }
  return { networks: kept, problems };
}

/** Parses the text of a networks file (YAML or JSON); throws ConfigError. */
export async function parseRouterConfig(text: string, source = "config"): Promise<RouterConfig> {
  let doc: unknown;
  try {
    doc = await parseConfigText(text);
  } catch (err) {
    throw new ConfigError(`${source}: not YAML or JSON: ${(err as Error).message}`);
  }
  const list = Array.isArray(doc) ? doc : isObject(doc) ? doc.networks : undefined;
  if (!Array.isArray(list) || list.length === 0) {
    throw new ConfigError(`${source}: expected a non-empty "networks" list`);
  }
  try {
    return checkNetworks(list.map((raw, i) => parseNetwork(raw, i)));
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${source}: ${err.message}`);
    throw err;
  }
}

/** Reads and parses a networks file; throws ConfigError. */
export async function loadRouterConfig(path: string): Promise<RouterConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  return await parseRouterConfig(text, path);
}
