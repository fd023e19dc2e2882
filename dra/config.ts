/**
 * The opaque configuration of hydra's devices, from a DeviceClass or a
 * ResourceClaim (`spec.devices.config[].opaque` with `driver:
 * hydra.clusternet.io`). For one allocated device, every config entry that
 * applies to its request is merged key by key, class entries first, then
 * the claim's (the claim wins). `apiVersion` and `kind` keys are allowed
 * and ignored.
 *
 * Host NIC (`kind: nic`):
 *
 * ```json
 * { "interface": "data0", "mtu": 9000,
 *   "addresses": ["192.168.50.10/24"],
 *   "routes": [{ "dst": "10.50.0.0/16", "gw": "192.168.50.1" }] }
 * ```
 *
 * or, in a DeviceClass only (see {@link CLASS_ONLY_KEYS}), addresses from
 * IPAM: `"ipam": { "type": "hydra-ipam", "subnet": "192.168.50.0/24" },
 * "ipamName": "storage"`. Without `addresses` and `ipam` the NIC keeps the
 * addresses it has on the host; without `interface` it keeps its name.
 *
 * hydra network (`kind: network`): one element of the
 * `k8s.v1.cni.cncf.io/networks` annotation in its JSON form, with the
 * network under `network` (`"name"` or `"namespace/name"`; a NAD, else a
 * conf file of that name), e.g. `{ "network": "blue", "interface": "blue0",
 * "ips": ["10.1.0.9/24"] }`. Without `interface` the request's name is used.
 *
 * @module
 */

import {
  interfaceNameProblem,
  type NetworkSelection,
  parseNetworkSelection,
} from "../kube/selection.ts";
import { isCidr, isIp } from "../ipaddr/ip.ts";
import { type Fields, fields, isJsonObject as isObject } from "../pkg/fields.ts";
import { DRIVER_NAME } from "../drasandbox/names.ts";
import type { RouteConf } from "../drasandbox/state.ts";

/** A config entry of a claim's allocation (`status.allocation.devices.config[]`). */
export interface AllocationConfig {
  source?: string;
  requests?: string[];
  opaque?: { driver: string; parameters?: unknown };
}

/** A host NIC's settings. */
export interface NicConfig {
  interface?: string;
  mtu?: number;
  addresses?: string[];
  ipam?: Record<string, unknown>;
  ipamName?: string;
  routes: RouteConf[];
}

/** A claim or class config nobody can act on; the message names the field. */
export class DeviceConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeviceConfigError";
  }
}

type Json = Record<string, unknown>;

/**
 * Keys only a DeviceClass may set: an IPAM config names a plugin the node
 * runs as root with its settings (store folders, …), which is for the
 * cluster's administrators to choose, not for whoever may create claims.
 */
export const CLASS_ONLY_KEYS = ["ipam", "ipamName"];

/**
 * The merged parameters for `request`: class entries first, then claim
 * entries, each only if it names no requests or names this one. A claim
 * entry setting a {@link CLASS_ONLY_KEYS} key is refused.
 */
export function mergedParameters(configs: readonly AllocationConfig[], request: string): Json {
  const applies = (c: AllocationConfig) =>
    c.opaque?.driver === DRIVER_NAME && (!c.requests?.length || c.requests.includes(request));
  const ordered = [
    ...configs.filter((c) => c.source === "FromClass" && applies(c)),
    ...configs.filter((c) => c.source !== "FromClass" && applies(c)),
  ];
  const out: Json = {};
  for (const c of ordered) {
    const p = c.opaque?.parameters ?? {};
    if (!isObject(p)) {
      throw new DeviceConfigError(`config for request "${request}": parameters must be an object`);
    }
    const reserved = CLASS_ONLY_KEYS.filter((k) => k in p);
    if (c.source !== "FromClass" && reserved.length) {
      throw new DeviceConfigError(
        `config for request "${request}": "${
          reserved[0]
        }" may only be set in a DeviceClass's config`,
      );
    }
    Object.assign(out, p);
  }
  delete out.apiVersion;
  delete out.kind;
  return out;
}

/** An address or network with an explicit prefix length. */
function cidr(text: string): boolean {
  return text.includes("/") && isCidr(text);
}

/** A field reader whose type errors name the claim, request and field. */
function reader(value: Json, where: string): Fields {
  return fields(value, {
    fail: (p) => new DeviceConfigError(`${where}: "${p.path}" must be ${p.expected}, not ${p.got}`),
  });
}

function checkIfName(name: string | undefined, where: string): string | undefined {
  const problem = name === undefined ? undefined : interfaceNameProblem(name);
  if (problem) throw new DeviceConfigError(`${where}: ${problem}`);
  return name;
}

function cidrList(f: Fields, where: string, key: string): string[] | undefined {
  const list = f.strings(key);
  for (const v of list ?? []) {
    if (!cidr(v)) {
      throw new DeviceConfigError(`${where}: "${key}": "${v}" is not an address in CIDR form`);
    }
  }
  return list;
}

function routesOf(f: Fields, where: string): RouteConf[] {
  return (f.list("routes") ?? []).map((r, i) => {
    if (!isObject(r)) throw new DeviceConfigError(`${where}: routes[${i}] must be an object`);
    const rf = fields(r, {
      where: `routes[${i}]`,
      fail: (p) => new DeviceConfigError(`${where}: ${p.path} must be ${p.expected}`),
    });
    const dst = rf.string("dst");
    if (!dst || !cidr(dst)) {
      throw new DeviceConfigError(`${where}: routes[${i}].dst must be a destination in CIDR form`);
    }
    const gw = rf.string("gw");
    if (gw !== undefined && !isIp(gw)) {
      throw new DeviceConfigError(`${where}: routes[${i}].gw must be an IP address`);
    }
    return gw === undefined ? { dst } : { dst, gw };
  });
}

const NIC_KEYS = new Set(["interface", "mtu", "addresses", "ipam", "ipamName", "routes"]);

function checkKeys(p: Json, where: string): void {
  for (const key of Object.keys(p)) {
    if (!NIC_KEYS.has(key)) {
      throw new DeviceConfigError(
        `${where}: unknown field "${key}" for a host NIC (known: ${[...NIC_KEYS].join(", ")})`,
      );
    }
  }
}

function ipamOf(f: Fields, where: string): Json | undefined {
  const ipam = f.object("ipam");
  if (ipam && (typeof ipam.type !== "string" || ipam.type === "")) {
    throw new DeviceConfigError(`${where}: "ipam" must be an IPAM config with a "type"`);
  }
  return ipam;
}

/** Validates a host NIC's parameters; `where` names the claim and request in errors. */
export function parseNicConfig(p: Json, where: string): NicConfig {
  checkKeys(p, where);
  const f = reader(p, where);
  const cfg: NicConfig = { routes: routesOf(f, where) };
  const ifName = checkIfName(f.string("interface"), where);
  if (ifName) cfg.interface = ifName;
  const mtu = f.integer("mtu");
  if (mtu !== undefined) {
    if (mtu < 68 || mtu > 65535) {
      throw new DeviceConfigError(`${where}: "mtu" must be a whole number from 68 to 65535`);
    }
    cfg.mtu = mtu;
  }
  const addresses = cidrList(f, where, "addresses");
  if (addresses) cfg.addresses = addresses;
  const ipam = ipamOf(f, where);
  if (ipam) {
    if (addresses) throw new DeviceConfigError(`${where}: give "addresses" or "ipam", not both`);
    cfg.ipam = ipam;
  }
  const ipamName = f.string("ipamName");
  if (ipamName !== undefined) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(ipamName)) {
      throw new DeviceConfigError(
        `${where}: "ipamName" must be a name of letters, digits, "_", "." or "-"`,
      );
    }
    cfg.ipamName = ipamName;
  }
  return cfg;
}

/**
 * Validates a network's parameters into the selection the annotation
 * element would make (namespace defaulting to the claim's); the interface
 * defaults to `request` when that is a valid interface name.
 */
export function parseNetworkConfig(
  p: Json,
  claimNamespace: string,
  request: string,
  where: string,
): { selection: NetworkSelection; element: Json } {
  const { network, ...rest } = p;
  if (typeof network !== "string" || network === "") {
    throw new DeviceConfigError(
      `${where}: "network" must name a network ("name" or "namespace/name")`,
    );
  }
  if ("name" in rest || "namespace" in rest) {
    throw new DeviceConfigError(
      `${where}: name the network with "network", not "name"/"namespace"`,
    );
  }
  const slash = network.indexOf("/");
  const element: Json = slash < 0
    ? { ...rest, name: network }
    : { ...rest, namespace: network.slice(0, slash), name: network.slice(slash + 1) };
  if (element.interface === undefined) {
    if (interfaceNameProblem(request)) {
      throw new DeviceConfigError(
        `${where}: request name "${request}" is no interface name; set "interface"`,
      );
    }
    element.interface = request;
  } else {
    checkIfName(reader(element, where).string("interface"), where);
  }
  let sel: NetworkSelection[];
  try {
    sel = parseNetworkSelection(JSON.stringify([element]), claimNamespace, "claim config");
  } catch (err) {
    throw new DeviceConfigError(`${where}: ${(err as Error).message}`);
  }
  return { selection: sel[0], element };
}
