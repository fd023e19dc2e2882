/**
 * Network selection: what a pod asks for in its annotations, parsed the way
 * Multus users expect.
 *
 * `k8s.v1.cni.cncf.io/networks` comes in two forms. When the value contains
 * `[`, `{` or `"` it is a JSON list of selection objects; otherwise it is a
 * comma list of `name`, `namespace/name` and `name@ifname` items (each
 * trimmed). The older annotation `networks` (a JSON list of `{name}`) is read
 * when the current one is absent, and `v1.multus-cni.io/default-network`
 * replaces the cluster default network. Everything here is pure: no I/O.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { isCidr, isIp } from "../ipaddr/ip.ts";
import { tryParseMac } from "../netlink/mac.ts";

/** The pod annotation selecting secondary networks. */
export const NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks";
/** The seed's older selection annotation, read when {@link NETWORKS_ANNOTATION} is absent. */
export const LEGACY_NETWORKS_ANNOTATION = "networks";
/** The pod annotation replacing the cluster default network. */
export const DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network";

/** A port mapping requested for an attachment (portmap's runtimeConfig entry). */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
}

/** A bandwidth limit requested for an attachment (bandwidth's runtimeConfig entry). */
export interface Bandwidth {
  ingressRate: number;
  ingressBurst: number;
  egressRate: number;
  egressBurst: number;
}

/** One network a pod asks to be attached to, with the namespace filled in. */
export interface NetworkSelection {
  /** Name of the NetworkAttachmentDefinition (or older Network object). */
  name: string;
  /** Namespace of that object; the pod's own when the annotation names none. */
  namespace: string;
  /** Interface name requested in the pod (`interface`, or legacy `interfaceRequest`). */
  interface?: string;
  /** Requested addresses, bare or in CIDR form. */
  ips?: string[];
  mac?: string;
  infinibandGuid?: string;
  /** Gateways this attachment should own the default route through; `[]` is meaningful. */
  defaultRoute?: string[];
  portMappings?: PortMapping[];
  bandwidth?: Bandwidth;
  /** Merged into every plugin's `args.cni` of the attachment. */
  cniArgs?: Record<string, unknown>;
  deviceId?: string;
  /** Name of an IPAMClaim holding this attachment's addresses (multi-net-spec 1.3). */
  ipamClaimReference?: string;
}

/** A network selection that cannot be honoured; CNI code 7 (invalid network config). */
export class SelectionError extends CniError {
  /** The annotation holding the bad value. */
  readonly annotation: string;
  /** 1-based position of the offending element, when one element is at fault. */
  readonly element?: number;

  constructor(annotation: string, message: string, element?: number) {
    super(
      ErrorCode.InvalidNetworkConfig,
      `annotation ${annotation}${element !== undefined ? ` element ${element}` : ""}: ${message}`,
    );
    this.name = "SelectionError";
    this.annotation = annotation;
    this.element = element;
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The kernel's rule for an interface name: 1-15 bytes, no `/`, `:` or whitespace, not `.`/`..`. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === "") return "interface name is empty";
  if (new TextEncoder().encode(name).length > 15) {
    return `interface name "${name}" is longer than 15 bytes`;
  }
  if (/[\s/:]/.test(name)) return `interface name "${name}" contains "/", ":" or whitespace`;
  if (name === "." || name === "..") return `interface name "${name}" is not allowed`;
  return undefined;
}

/** A DNS-1123 label (namespace names), at most 63 characters. */
export function isDnsLabel(text: string): boolean {
  return text.length <= 63 && DNS_LABEL.test(text);
}

/** A DNS-1123 subdomain (object names), at most 253 characters. */
export function isDnsSubdomain(text: string): boolean {
  return text.length <= 253 && DNS_SUBDOMAIN.test(text);
}

/**
 * Parses a network selection annotation value into its elements, in order
 * (repeats are separate attachments). Throws {@link SelectionError} naming
 * the element at fault.
 *
 * @param value the annotation's value; an empty value selects nothing
 * @param defaultNamespace the namespace for elements that name none
 * @param annotation the annotation's key, for error messages
 */
export function parseNetworkSelection(
  value: string,
  defaultNamespace: string,
  annotation: string = NETWORKS_ANNOTATION,
): NetworkSelection[] {
  if (value === "") return [];
  const out = /[\[{"]/.test(value)
    ? parseJsonForm(value, annotation)
    : value.split(",").map((item, i) => parseTextItem(item, i + 1, annotation));
  for (const sel of out) if (sel.namespace === "") sel.namespace = defaultNamespace;
  return out;
}

/** One comma-list item: `[namespace/]name[@ifname]`, every part trimmed. */
function parseTextItem(raw: string, element: number, annotation: string): NetworkSelection {
  const fail = (msg: string) => new SelectionError(annotation, `"${raw.trim()}": ${msg}`, element);
  const slash = raw.split("/");
  if (slash.length > 2) throw fail('more than one "/"');
  const namespace = slash.length === 2 ? slash[0].trim() : "";
  const at = slash[slash.length - 1].split("@");
  if (at.length > 2) throw fail('more than one "@"');
  const name = at[0].trim();
  const ifname = at.length === 2 ? at[1].trim() : "";
  if (name === "") throw fail("network name is empty");
  for (const part of [namespace, name]) {
    if (part !== "" && !DNS_LABEL.test(part)) {
      throw fail(
        `"${part}" must consist of lower case alphanumeric characters or "-" and start and end with an alphanumeric character`,
      );
    }
  }
  const sel: NetworkSelection = { name, namespace };
  // "name@" names no interface, as in Multus.
  if (ifname !== "") {
    const problem = interfaceNameProblem(ifname);
    if (problem) throw fail(problem);
    sel.interface = ifname;
  }
  return sel;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The JSON form: a list of selection objects. */
function parseJsonForm(value: string, annotation: string): NetworkSelection[] {
  let doc: Json;
  try {
    doc = JSON.parse(value) as Json;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new SelectionError(annotation, `not a valid JSON list of network selections: ${why}`);
  }
  // Go decodes a JSON null into an empty list.
  if (doc === null) return [];
  if (!Array.isArray(doc)) {
    throw new SelectionError(annotation, `JSON form must be a list, got ${jsonKind(doc)}`);
  }
  return doc.map((el, i) => parseJsonElement(el, i + 1, annotation));
}

function jsonKind(v: Json): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/**
 * Selection object keys, lower-cased: Go's JSON decoder matches keys without
 * regard to case, and users' annotations rely on it, so this does too (the
 * last matching key wins, as in Go).
 */
const KEYS: Record<string, string> = {
  "name": "name",
  "namespace": "namespace",
  "interface": "interface",
  "interfacerequest": "interfaceRequest",
  "ips": "ips",
  "mac": "mac",
  "infiniband-guid": "infiniband-guid",
  "default-route": "default-route",
  "portmappings": "portMappings",
  "bandwidth": "bandwidth",
  "cni-args": "cni-args",
  "deviceid": "deviceID",
  "ipam-claim-reference": "ipam-claim-reference",
};

function parseJsonElement(el: Json, element: number, annotation: string): NetworkSelection {
  const fail = (msg: string) => new SelectionError(annotation, msg, element);
  if (el === null || typeof el !== "object" || Array.isArray(el)) {
    throw fail(`must be an object, got ${jsonKind(el)}`);
  }
  const f: Record<string, Json> = {};
  for (const [k, v] of Object.entries(el)) {
    const key = KEYS[k.toLowerCase()];
    if (key !== undefined) f[key] = v;
  }
  const str = (key: string): string => {
    const v = f[key];
    if (v === undefined || v === null) return "";
    if (typeof v !== "string") throw fail(`"${key}" must be a string, got ${jsonKind(v)}`);
    return v;
  };
  const strList = (key: string): string[] | undefined => {
    const v = f[key];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) throw fail(`"${key}" must be a list of strings, got ${jsonKind(v)}`);
    return v.map((x, i) => {
      if (typeof x !== "string") {
        throw fail(`"${key}"[${i}] must be a string, got ${jsonKind(x)}`);
      }
      return x;
    });
  };

  const name = str("name");
  if (name === "") throw fail('"name" is missing or empty');
  if (!isDnsSubdomain(name)) {
    throw fail(`"name" ${JSON.stringify(name)} is not a valid object name`);
  }
  const namespace = str("namespace");
  if (namespace !== "" && !isDnsLabel(namespace)) {
    throw fail(`"namespace" ${JSON.stringify(namespace)} is not a valid namespace name`);
  }
  const sel: NetworkSelection = { name, namespace };

  // The legacy key fills in only when the current one is absent.
  const ifname = str("interface") || str("interfaceRequest");
  if (ifname !== "") {
    const problem = interfaceNameProblem(ifname);
    if (problem) throw fail(problem);
    sel.interface = ifname;
  }
  const ips = strList("ips");
  if (ips !== undefined) {
    for (const ip of ips) {
      if (!(ip.includes("/") ? isCidr(ip) : isIp(ip))) {
        throw fail(`"ips": ${JSON.stringify(ip)} is not an IP address or CIDR`);
      }
    }
    sel.ips = ips;
  }
  const mac = str("mac");
  if (mac !== "") {
    if (!tryParseMac(mac)) throw fail(`"mac": ${JSON.stringify(mac)} is not a MAC address`);
    sel.mac = mac;
  }
  const guid = str("infiniband-guid");
  if (guid !== "") {
    if (!tryParseMac(guid)) {
      throw fail(`"infiniband-guid": ${JSON.stringify(guid)} is not a valid GUID`);
    }
    sel.infinibandGuid = guid;
  }
  const gws = strList("default-route");
  if (gws !== undefined) {
    for (const gw of gws) {
      if (!isIp(gw)) throw fail(`"default-route": ${JSON.stringify(gw)} is not an IP address`);
    }
    sel.defaultRoute = gws;
  }
  const pm = f["portMappings"];
  if (pm !== undefined && pm !== null) sel.portMappings = parsePortMappings(pm, fail);
  const bw = f["bandwidth"];
  if (bw !== undefined && bw !== null) sel.bandwidth = parseBandwidth(bw, fail);
  const cniArgs = f["cni-args"];
  if (cniArgs !== undefined && cniArgs !== null) {
    if (typeof cniArgs !== "object" || Array.isArray(cniArgs)) {
      throw fail(`"cni-args" must be an object, got ${jsonKind(cniArgs)}`);
    }
    sel.cniArgs = cniArgs;
  }
  const deviceId = str("deviceID");
  if (deviceId !== "") sel.deviceId = deviceId;
  const claim = str("ipam-claim-reference");
  if (claim !== "") {
    if (!isDnsSubdomain(claim)) {
      throw fail(`"ipam-claim-reference" ${JSON.stringify(claim)} is not a valid object name`);
    }
    sel.ipamClaimReference = claim;
  }
  return sel;
}

type Fail = (msg: string) => SelectionError;

/** Reads `key` of a decoded object the way Go does: case-insensitively, last match wins. */
function fold(obj: { [key: string]: Json }, key: string): Json | undefined {
  let found: Json | undefined;
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === key.toLowerCase()) found = v;
  return found;
}

function integer(v: Json | undefined, what: string, fail: Fail): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    throw fail(`${what} must be an integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function parsePortMappings(v: Json, fail: Fail): PortMapping[] {
  if (!Array.isArray(v)) throw fail(`"portMappings" must be a list, got ${jsonKind(v)}`);
  return v.map((e, i) => {
    const at = `"portMappings"[${i}]`;
    if (e === null || typeof e !== "object" || Array.isArray(e)) {
      throw fail(`${at} must be an object, got ${jsonKind(e)}`);
    }
    const m: PortMapping = {
      hostPort: integer(fold(e, "hostPort"), `${at}.hostPort`, fail),
      containerPort: integer(fold(e, "containerPort"), `${at}.containerPort`, fail),
    };
    for (const key of ["protocol", "hostIP"] as const) {
      const s = fold(e, key);
      if (s === undefined || s === null || s === "") continue;
      if (typeof s !== "string") throw fail(`${at}.${key} must be a string`);
      m[key] = s;
    }
    return m;
  });
}

function parseBandwidth(v: Json, fail: Fail): Bandwidth {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw fail(`"bandwidth" must be an object, got ${jsonKind(v)}`);
  }
  const get = (k: string) => integer(fold(v, k), `"bandwidth".${k}`, fail);
  return {
    ingressRate: get("ingressRate"),
    ingressBurst: get("ingressBurst"),
    egressRate: get("egressRate"),
    egressBurst: get("egressBurst"),
  };
}

/** Which annotation a pod's selection came from. */
export type SelectionSource = "networks" | "legacy" | "none";

/**
 * The secondary networks a pod selects: `k8s.v1.cni.cncf.io/networks` when
 * set and non-empty, else the older `networks` annotation, else none.
 */
export function podNetworkSelections(
  annotations: Record<string, string> | undefined,
  podNamespace: string,
): { source: SelectionSource; selections: NetworkSelection[] } {
  const current = annotations?.[NETWORKS_ANNOTATION] ?? "";
  if (current !== "") {
    return {
      source: "networks",
      selections: parseNetworkSelection(current, podNamespace, NETWORKS_ANNOTATION),
    };
  }
  const legacy = annotations?.[LEGACY_NETWORKS_ANNOTATION] ?? "";
  if (legacy !== "") {
    return {
      source: "legacy",
      selections: parseNetworkSelection(legacy, podNamespace, LEGACY_NETWORKS_ANNOTATION),
    };
  }
  return { source: "none", selections: [] };
}

/**
 * The pod's replacement for the cluster default network, if it names one:
 * exactly one element, looked up in `defaultNetworkNamespace` (Multus's
 * `multusNamespace`) unless the element names its own namespace.
 */
export function defaultNetworkOverride(
  annotations: Record<string, string> | undefined,
  defaultNetworkNamespace: string,
): NetworkSelection | undefined {
  const raw = annotations?.[DEFAULT_NETWORK_ANNOTATION];
  if (raw === undefined) return undefined;
  const sel = parseNetworkSelection(raw, defaultNetworkNamespace, DEFAULT_NETWORK_ANNOTATION);
  if (sel.length === 0) {
    throw new SelectionError(DEFAULT_NETWORK_ANNOTATION, "names no network");
  }
  if (sel.length > 1) {
    throw new SelectionError(
      DEFAULT_NETWORK_ANNOTATION,
      `names ${sel.length} networks; only one default network is allowed`,
    );
  }
  return sel[0];
}
