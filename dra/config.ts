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

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

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

function ifNameOf(value: unknown, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") {
    throw new DeviceConfigError(`${where}: "interface" must be a string`);
  }
  const problem = interfaceNameProblem(value);
  if (problem) throw new DeviceConfigError(`${where}: ${problem}`);
  return value;
}

function cidrList(value: unknown, where: string, field: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new DeviceConfigError(`${where}: "${field}" must be a list of addresses in CIDR form`);
  }
  for (const v of value as string[]) {
    if (!cidr(v)) {
      throw new DeviceConfigError(`${where}: "${field}": "${v}" is not an address in CIDR form`);
    }
  }
  return value as string[];
}

function routesOf(value: unknown, where: string): RouteConf[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new DeviceConfigError(`${where}: "routes" must be a list`);
  return value.map((r, i) => {
    if (!isObject(r) || typeof r.dst !== "string" || !cidr(r.dst)) {
      throw new DeviceConfigError(`${where}: routes[${i}].dst must be a destination in CIDR form`);
    }
    if (r.gw !== undefined && (typeof r.gw !== "string" || !isIp(r.gw))) {
      throw new DeviceConfigError(`${where}: routes[${i}].gw must be an IP address`);
    }
    return r.gw === undefined ? { dst: r.dst } : { dst: r.dst, gw: r.gw as string };
  });
}

const NIC_KEYS = new Set(["interface", "mtu", "addresses", "ipam", "ipamName", "routes"]);

/** Validates a host NIC's parameters; `where` names the claim and request in errors. */
export function parseNicConfig(p: Json, where: string): NicConfig {
  for (const key of Object.keys(p)) {
    if (!NIC_KEYS.has(key)) {
      throw new DeviceConfigError(
        `${where}: unknown field "${key}" for a host NIC (known: ${[...NIC_KEYS].join(", ")})`,
      );
    }
  }
  const cfg: NicConfig = { routes: routesOf(p.routes, where) };
  const ifName = ifNameOf(p.interface, where);
  if (ifName) cfg.interface = ifName;
  if (p.mtu !== undefined) {
    if (typeof p.mtu !== "number" || !Number.isInteger(p.mtu) || p.mtu < 68 || p.mtu > 65535) {
      throw new DeviceConfigError(`${where}: "mtu" must be a whole number from 68 to 65535`);
    }
    cfg.mtu = p.mtu;
  }
  const addresses = cidrList(p.addresses, where, "addresses");
  if (addresses) cfg.addresses = addresses;
  if (p.ipam !== undefined) {
    if (!isObject(p.ipam) || typeof p.ipam.type !== "string" || p.ipam.type === "") {
      throw new DeviceConfigError(`${where}: "ipam" must be an IPAM config with a "type"`);
    }
    if (addresses) throw new DeviceConfigError(`${where}: give "addresses" or "ipam", not both`);
    cfg.ipam = p.ipam;
  }
  if (p.ipamName !== undefined) {
    if (typeof p.ipamName !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(p.ipamName)) {
      throw new DeviceConfigError(
        `${where}: "ipamName" must be a name of letters, digits, "_", "." or "-"`,
      );
    }
    cfg.ipamName = p.ipamName;
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
    ifNameOf(element.interface, where);
  }
  let sel: NetworkSelection[];
  try {
    sel = parseNetworkSelection(JSON.stringify([element]), claimNamespace, "claim config");
  } catch (err) {
    throw new DeviceConfigError(`${where}: ${(err as Error).message}`);
  }
  return { selection: sel[0], element };
}
