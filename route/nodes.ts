/**
 * Nodes as the router sees them, whether they come from Node objects or a
 * static node list, and what each says about one network: its CIDRs there
 * and the addresses to reach it by.
 *
 * A static node list is YAML or JSON in either of two shapes:
 *
 * ```yaml
 * nodes:
 *   - name: node1
 *     podCIDRs: [10.244.1.0/24]          # the default network's CIDRs
 *     addresses: [192.168.77.11]         # its InternalIP(s)
 *     annotations:                       # secondary networks, as on a Node
 *       hydra.clusternet.io/blue.cidr: 10.245.1.0/24
 *       hydra.clusternet.io/blue.address: 192.168.77.11
 * ```
 *
 * or Node objects as `kubectl get nodes -o yaml` prints them (a List with
 * `items`, or `nodes:` holding objects with `metadata`, `spec`, `status`).
 *
 * @module
 */

import { parseConfigText } from "../pkg/config_text.ts";
import { formatIp, type IpFamily, maskBytes, parseCidr, tryParseIp } from "../ipaddr/ip.ts";
import type { Node } from "../kube/objects.ts";
import type { NetworkConfig } from "./config.ts";

/** A node, reduced to what the router reads. */
export interface NodeInfo {
  name: string;
  /** spec.podCIDRs (or spec.podCIDR). */
  podCIDRs: string[];
  /** status.addresses of type InternalIP. */
  internalIPs: string[];
  annotations: Record<string, string>;
}

/** A CIDR of a node with its range as numbers, for overlap checks. */
export interface NodeCidr {
  /** Canonical form, host bits cleared ("10.244.1.0/24"). */
  cidr: string;
  family: IpFamily;
  /** Its first address (the network address), "10.244.1.0". */
  first: string;
  /**
   * First and last address as fixed-width hex ({@link ipKey}): string order
   * is address order within a family, which keeps overlap checks cheap.
   */
  start: string;
  end: string;
}

/** What a node says about one network. */
export type NodeNetwork =
  | {
    ok: true;
    cidrs: NodeCidr[];
    addresses: string[];
    /** {@link ipKey} of each address. */
    addressKeys: string[];
  }
  | {
    ok: false;
    kind: "missing_annotation" | "malformed_annotation" | "cidr_not_allowed";
    message: string;
  };

/** A node list file that cannot be used (the previous list stays in force). */
export class NodeListError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NodeListError";
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** An address as fixed-width hex (8 digits for IPv4, 32 for IPv6): ordered like the address. */
export function ipKey(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += HEX[b[i]];
  return s;
}

/** True when the address with key `key` lies in `c` (keys of the other family never do). */
export function cidrHasKey(c: NodeCidr, key: string): boolean {
  return key.length === c.start.length && key >= c.start && key <= c.end;
}

/** Parses one CIDR into a {@link NodeCidr}; undefined when malformed. */
export function nodeCidr(text: string): NodeCidr | undefined {
  const m = V4_CIDR.exec(text);
  if (m) return v4Cidr(m);
  let c;
  try {
    c = parseCidr(text);
  } catch {
    return undefined;
  }
  if (!text.includes("/")) return undefined;
  const mask = maskBytes(c.prefixLen, c.family);
  const net = c.bytes.map((b, i) => b & mask[i]);
  const last = c.bytes.map((b, i) => (b | ~mask[i]) & 0xff);
  const first = formatIp(net);
  return {
    cidr: `${first}/${c.prefixLen}`,
    family: c.family,
    first,
    start: ipKey(net),
    end: ipKey(last),
  };
}

const V4_CIDR = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

/**
 * The common IPv4 case on 32-bit integers: thousands of nodes are parsed
 * at start-up, before the JIT has warmed up to the generic byte path.
 */
function v4Cidr(m: RegExpExecArray): NodeCidr | undefined {
  const parts = [m[1], m[2], m[3], m[4]];
  if (parts.some((p) => Number(p) > 255 || (p.length > 1 && p[0] === "0"))) return undefined;
  const prefix = Number(m[5]);
  if (prefix > 32 || (m[5].length > 1 && m[5][0] === "0")) return undefined;
  const n = ((Number(parts[0]) << 24) | (Number(parts[1]) << 16) | (Number(parts[2]) << 8) |
    Number(parts[3])) >>> 0;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  const start = (n & mask) >>> 0;
  const end = (start | ~mask) >>> 0;
  const first = `${start >>> 24}.${(start >>> 16) & 255}.${(start >>> 8) & 255}.${start & 255}`;
  return { cidr: `${first}/${prefix}`, family: 4, first, start: hex8(start), end: hex8(end) };
}

const allowedRanges = new WeakMap<NetworkConfig, NodeCidr[]>();

/** The network's allowed ranges as {@link NodeCidr}s (parsed once per network config). */
function rangesOf(net: NetworkConfig): NodeCidr[] {
  let r = allowedRanges.get(net);
  if (!r) {
    r = net.allowedCIDRs.map(nodeCidr).filter((c): c is NodeCidr => c !== undefined);
    allowedRanges.set(net, r);
  }
  return r;
}

/** True when all of `c` lies inside one of the network's allowed ranges. */
export function cidrAllowed(c: NodeCidr, net: NetworkConfig): boolean {
  return rangesOf(net).some((r) => r.family === c.family && r.start <= c.start && c.end <= r.end);
}

function splitList(value: string): string[] {
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/**
 * What `node` says about `net`: its CIDRs (from the CIDR annotation, or
 * spec.podCIDRs) and addresses (from the address annotation, or its
 * InternalIPs). Missing is a warning-level outcome (the node is not part of
 * the network yet); malformed, or a CIDR outside the network's
 * `allowedCIDRs`, is an error.
 */
export function nodeNetwork(node: NodeInfo, net: NetworkConfig): NodeNetwork {
  const fromAnn = (key: string) => key === "" ? undefined : node.annotations[key]?.trim();
  const cidrTexts = net.cidrAnnotation === ""
    ? node.podCIDRs
    : splitList(fromAnn(net.cidrAnnotation) ?? "");
  const addrTexts = net.addressAnnotation === ""
    ? node.internalIPs
    : splitList(fromAnn(net.addressAnnotation) ?? "");
  const cidrSource = net.cidrAnnotation === ""
    ? "spec.podCIDRs"
    : `annotation ${net.cidrAnnotation}`;
  const addrSource = net.addressAnnotation === ""
    ? "InternalIP"
    : `annotation ${net.addressAnnotation}`;
  // Malformed values are errors even when the other half is missing: someone meant to set them.
  const cidrs: NodeCidr[] = [];
  for (const t of cidrTexts) {
    const c = nodeCidr(t);
    if (!c) {
      return {
        ok: false,
        kind: "malformed_annotation",
        message: `node ${node.name}: ${cidrSource} holds ${JSON.stringify(t)}, not a CIDR; ` +
          `network ${net.name} skipped for this node`,
      };
    }
    cidrs.push(c);
  }
  const addresses: string[] = [];
  const addressKeys: string[] = [];
  for (const t of addrTexts) {
    const b = tryParseIp(t);
    if (!b) {
      return {
        ok: false,
        kind: "malformed_annotation",
        message: `node ${node.name}: ${addrSource} holds ${JSON.stringify(t)}, not an address; ` +
          `network ${net.name} skipped for this node`,
      };
    }
    addresses.push(formatIp(b));
    addressKeys.push(ipKey(b));
  }
  if (cidrs.length === 0 || addresses.length === 0) {
    const what = [cidrs.length ? "" : cidrSource, addresses.length ? "" : addrSource]
      .filter((s) => s).join(" nor ");
    return {
      ok: false,
      kind: "missing_annotation",
      message: `node ${node.name} has no ${what} for network ${net.name}; skipped`,
    };
  }
  // A node writes its own object: what it claims is routed only inside the network's ranges.
  const outside = cidrs.find((c) => !cidrAllowed(c, net));
  if (outside) {
    return {
      ok: false,
      kind: "cidr_not_allowed",
      message: `node ${node.name}: ${cidrSource} claims ${outside.cidr}, outside the ranges ` +
        `network ${net.name} allows (${net.allowedCIDRs.join(", ")}); refused, not routed`,
    };
  }
  return { ok: true, cidrs, addresses, addressKeys };
}

/** The first address of `family` in a list, or undefined. */
export function addressOfFamily(addresses: string[], family: IpFamily): string | undefined {
  return addresses.find((a) => (a.includes(":") ? 6 : 4) === family);
}

/**
 * Reduces a Node object to a {@link NodeInfo}. With `annotationKeys`, only
 * those annotations are kept: others (and status heartbeats) then never
 * look like a change.
 */
export function nodeFromKube(node: Node, annotationKeys?: ReadonlySet<string>): NodeInfo {
  const spec = node.spec ?? {};
  const podCIDRs = spec.podCIDRs?.length ? spec.podCIDRs : spec.podCIDR ? [spec.podCIDR] : [];
  return {
    name: node.metadata.name,
    podCIDRs: [...podCIDRs],
    internalIPs: (node.status?.addresses ?? [])
      .filter((a) => a.type === "InternalIP")
      .map((a) => a.address),
    annotations: pickAnnotations(node.metadata.annotations ?? {}, annotationKeys),
  };
}

function pickAnnotations(
  all: Record<string, string>,
  keys: ReadonlySet<string> | undefined,
): Record<string, string> {
  if (!keys) return { ...all };
  const out: Record<string, string> = {};
  for (const k of keys) if (k in all) out[k] = all[k];
  return out;
}

// The checks below run for every node of every read of the list (thousands a read), so
// they name the node only when they throw: building the message up front is most of their cost.
function stringList(node: string, key: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return splitList(v);
  if (!Array.isArray(v)) throw new NodeListError(`node ${node}: ${key} must be a list of strings`);
  for (let i = 0; i < v.length; i++) {
    if (typeof v[i] !== "string") {
      throw new NodeListError(`node ${node}: ${key} must be a list of strings`);
    }
  }
  return v;
}

function stringMap(node: string, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new NodeListError(`node ${node}: annotations must be a map of strings`);
  }
  const out: Record<string, string> = {};
  for (const k in v) {
    const val = (v as Record<string, unknown>)[k];
    if (typeof val !== "string") {
      throw new NodeListError(`node ${node}: annotation ${k} must be a string`);
    }
    out[k] = val;
  }
  return out;
}

function nodeEntry(raw: unknown, index: number): NodeInfo {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new NodeListError(`nodes[${index}]: must be an object`);
  }
  const r = raw as Record<string, unknown>;
  if (typeof r.metadata === "object" && r.metadata !== null) {
    const node = r as unknown as Node;
    if (typeof node.metadata.name !== "string" || !node.metadata.name) {
      throw new NodeListError(`nodes[${index}]: metadata.name is missing`);
    }
    return nodeFromKube(node);
  }
  const name = r.name;
  if (typeof name !== "string" || !name) {
    throw new NodeListError(`nodes[${index}]: name is missing`);
  }
  return {
    name,
    podCIDRs: stringList(name, "podCIDRs", r.podCIDRs),
    internalIPs: stringList(name, "addresses", r.addresses ?? r.internalIPs),
    annotations: stringMap(name, r.annotations),
  };
}

/**
 * Parses a node list (YAML, or JSON on a fast path). Throws NodeListError
 * for a file that is not a node list (an empty one included) or names a
 * node twice.
 */
export async function parseNodeList(text: string, source = "node list"): Promise<NodeInfo[]> {
  let doc: unknown;
  try {
    // JSON (far quicker to parse on thousands of nodes) or YAML.
    doc = await parseConfigText(text);
  } catch (err) {
    throw new NodeListError(`${source}: not YAML or JSON: ${(err as Error).message}`);
  }
  // An empty file, or one cut short before its list, must not read as "no nodes":
  // that would remove every route. No nodes is said explicitly: `nodes: []`.
  const list = Array.isArray(doc)
    ? doc
    : typeof doc === "object" && doc !== null
    ? (doc as Record<string, unknown>).nodes ?? (doc as Record<string, unknown>).items
    : undefined;
  if (list === undefined || list === null) {
    throw new NodeListError(`${source}: no "nodes" list (for no nodes at all, write "nodes: []")`);
  }
  if (!Array.isArray(list)) throw new NodeListError(`${source}: "nodes" must be a list`);
  const nodes: NodeInfo[] = [];
  const seen = new Set<string>();
  try {
    list.forEach((raw, i) => {
      const n = nodeEntry(raw, i);
      if (seen.has(n.name)) throw new NodeListError(`node ${n.name} is listed twice`);
      seen.add(n.name);
      nodes.push(n);
    });
  } catch (err) {
    if (err instanceof NodeListError) throw new NodeListError(`${source}: ${err.message}`);
    throw err;
  }
  return nodes;
}

// Plain loops: a file source compares every node of the list on each read.
function sameList(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True when two node descriptions are the same (so a change to it changes no route). */
export function sameNode(a: NodeInfo, b: NodeInfo): boolean {
  if (a.name !== b.name || !sameList(a.podCIDRs, b.podCIDRs)) return false;
  if (!sameList(a.internalIPs, b.internalIPs)) return false;
  let count = 0;
  for (const k in a.annotations) {
    if (a.annotations[k] !== b.annotations[k] || !Object.hasOwn(b.annotations, k)) return false;
    count++;
  }
  for (const _ in b.annotations) count--;
  return count === 0;
}
