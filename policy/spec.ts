/**
 * MultiNetworkPolicy objects (`k8s.cni.cncf.io/v1beta1`, the Network
 * Plumbing Working Group's schema: NetworkPolicy's spec plus the
 * `k8s.v1.cni.cncf.io/policy-for` annotation naming the networks it is
 * for), checked and turned into a {@link ParsedPolicy}.
 *
 * The object is a custom resource: the API server checks little of it. So
 * everything NetworkPolicy validation would refuse is refused here, with a
 * message naming the field, plus sizes beyond {@link POLICY_LIMITS}. A
 * policy with problems still yields its {@link PolicyScope} — the pods,
 * networks and directions it was meant to isolate, as far as they can be
 * read — so that the caller can fail closed for them.
 *
 * @module
 */

import type { ObjectMeta } from "../kube/objects.ts";
import { isDnsLabel, isDnsSubdomain } from "../kube/selection.ts";
import type { KubeObject } from "../kube/watch.ts";
import { type IpNet, ipNetContains, lastIpAddr, networkIpAddr, parseIpNet } from "../ipaddr/ip.ts";
import { parseSelector, type Selector } from "./selector.ts";

/** The annotation naming the networks a policy is for. */
export const POLICY_FOR_ANNOTATION = "k8s.v1.cni.cncf.io/policy-for";
/** apiVersion of the objects read. */
export const MNP_API_VERSION = "k8s.cni.cncf.io/v1beta1";

/** API path of the MultiNetworkPolicies of a namespace (all when undefined), or of one. */
export function multiNetworkPolicyPath(namespace?: string, name?: string): string {
  const base = namespace === undefined
    ? "/apis/k8s.cni.cncf.io/v1beta1/multi-networkpolicies"
    : `/apis/k8s.cni.cncf.io/v1beta1/namespaces/${encodeURIComponent(namespace)}` +
      "/multi-networkpolicies";
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

/** A MultiNetworkPolicy as read from the API (its spec unchecked). */
export interface MultiNetworkPolicy extends KubeObject {
  metadata: ObjectMeta & { namespace: string };
  spec?: unknown;
}

/** Bounds beyond which a policy is refused as not meant. */
export const POLICY_LIMITS = {
  networks: 32,
  rules: 128,
  peers: 128,
  ports: 128,
  except: 128,
  /** Peers, and ports, of all rules of a direction together. */
  total: 1024,
} as const;

/** Transport protocols a port may name. */
export type Protocol = "tcp" | "udp" | "sctp";

/** One entry of a rule's `ports`. */
export interface PortMatch {
  protocol: Protocol;
  /** A number, or undefined with `name` unset for "every port of the protocol". */
  port?: number;
  /** Last port of a range starting at `port`. */
  endPort?: number;
  /** A named container port, resolved against the pod the traffic goes to. */
  name?: string;
}

/** One entry of a rule's `from`/`to`. */
export type Peer =
  | {
    kind: "pods";
    /** Pods matching this in the namespaces below. */
    pods: Selector;
    /** "own": the policy's namespace; else namespaces matching this. */
    namespaces: Selector | "own";
  }
  | { kind: "ipBlock"; cidr: IpNet; except: IpNet[] };

/** One ingress or egress rule; an empty list means "any". */
export interface PolicyRule {
  ports: PortMatch[];
  peers: Peer[];
}

/** A checked policy. */
export interface ParsedPolicy {
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  /** Networks ("namespace/name") the policy is for. */
  networks: string[];
  podSelector: Selector;
  /** Rules when the policy isolates ingress; undefined when it does not. */
  ingress?: PolicyRule[];
  egress?: PolicyRule[];
}

/** What a policy meant to isolate, as far as it can be read. */
export interface PolicyScope {
  /** Undefined when `policy-for` cannot be read: every secondary network. */
  networks?: string[];
  /** Undefined when the selector cannot be read: every pod of the namespace. */
  podSelector?: Selector;
  ingress: boolean;
  egress: boolean;
}

/** The outcome of {@link parsePolicy}. */
export interface PolicyCheck {
  /** Set when there are no errors. */
  policy?: ParsedPolicy;
  scope: PolicyScope;
  errors: string[];
  /** Not wrong, but probably not what was meant (e.g. no `policy-for`). */
  warnings: string[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function list(v: unknown, where: string, max: number, errors: string[]): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return errors.push(`${where}: not a list`), [];
  if (v.length > max) return errors.push(`${where}: ${v.length} items, more than ${max}`), [];
  return v;
}

/**
 * The networks of a `policy-for` value: comma-separated `name` or
 * `namespace/name`, a bare name in the policy's namespace.
 */
export function parsePolicyFor(
  value: string,
  namespace: string,
  errors: string[],
): string[] | undefined {
  const out: string[] = [];
  const before = errors.length;
  for (const item of value.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const parts = item.split("/");
    const [ns, name] = parts.length === 2 ? parts : [namespace, parts[0]];
    if (parts.length > 2 || !isDnsLabel(ns) || !isDnsSubdomain(name)) {
      errors.push(`${POLICY_FOR_ANNOTATION}: ${JSON.stringify(item)} is not [namespace/]name`);
    } else if (!out.includes(`${ns}/${name}`)) out.push(`${ns}/${name}`);
  }
  if (out.length > POLICY_LIMITS.networks) {
    errors.push(`${POLICY_FOR_ANNOTATION}: more than ${POLICY_LIMITS.networks} networks`);
  }
  return errors.length > before ? undefined : out;
}

const SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

function isServiceName(s: string): boolean {
  return s.length <= 15 && SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes("--");
}

function parsePort(raw: unknown, where: string, errors: string[]): PortMatch | undefined {
  if (!isObject(raw)) return void errors.push(`${where}: not an object`);
  const proto = raw.protocol ?? "TCP";
  if (proto !== "TCP" && proto !== "UDP" && proto !== "SCTP") {
    return void errors.push(`${where}.protocol: ${JSON.stringify(proto)} is not TCP, UDP or SCTP`);
  }
  const out: PortMatch = { protocol: proto.toLowerCase() as Protocol };
  const { port, endPort } = raw;
  if (typeof port === "string") {
    if (!isServiceName(port)) {
      return void errors.push(`${where}.port: ${JSON.stringify(port)} is not a port name`);
    }
    if (endPort !== undefined && endPort !== null) {
      return void errors.push(`${where}.endPort: not allowed with a named port`);
    }
    out.name = port;
    return out;
  }
  if (port !== undefined && port !== null) {
    if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
      return void errors.push(`${where}.port: ${JSON.stringify(port)} is not 1-65535`);
    }
    out.port = port as number;
  }
  if (endPort !== undefined && endPort !== null) {
    if (out.port === undefined) return void errors.push(`${where}.endPort: needs a numeric port`);
    if (
      !Number.isInteger(endPort) || (endPort as number) < out.port || (endPort as number) > 65535
    ) {
      return void errors.push(`${where}.endPort: ${JSON.stringify(endPort)} is not port-65535`);
    }
    out.endPort = endPort as number;
  }
  return out;
}

function parseCidr(text: unknown, where: string, errors: string[]): IpNet | undefined {
  const net = typeof text === "string" ? parseIpNet(text) : undefined;
  if (!net || net.mappedV6) {
    return void errors.push(`${where}: ${JSON.stringify(text)} is not a CIDR`);
  }
  return { ip: networkIpAddr(net.ip, net.prefix), prefix: net.prefix };
}

function parseIpBlock(raw: unknown, where: string, errors: string[]): Peer | undefined {
  if (!isObject(raw)) return void errors.push(`${where}: not an object`);
  const cidr = parseCidr(raw.cidr, `${where}.cidr`, errors);
  const except: IpNet[] = [];
  for (
    const [i, e] of list(raw.except, `${where}.except`, POLICY_LIMITS.except, errors).entries()
  ) {
    const net = parseCidr(e, `${where}.except[${i}]`, errors);
    if (!net || !cidr) continue;
    const inside = net.ip.family === cidr.ip.family && net.prefix > cidr.prefix &&
      ipNetContains(cidr, net.ip) && ipNetContains(cidr, lastIpAddr(net.ip, net.prefix));
    if (!inside) errors.push(`${where}.except[${i}]: ${e} is not a strict subset of the cidr`);
    else except.push(net);
  }
  return cidr && { kind: "ipBlock", cidr, except };
}

function parsePeer(raw: unknown, where: string, errors: string[]): Peer | undefined {
  if (!isObject(raw)) return void errors.push(`${where}: not an object`);
  const has = (k: string) => raw[k] !== undefined && raw[k] !== null;
  if (has("ipBlock")) {
    if (has("podSelector") || has("namespaceSelector")) {
      return void errors.push(`${where}: ipBlock cannot be combined with selectors`);
    }
    return parseIpBlock(raw.ipBlock, `${where}.ipBlock`, errors);
  }
  if (!has("podSelector") && !has("namespaceSelector")) {
    return void errors.push(`${where}: needs podSelector, namespaceSelector or ipBlock`);
  }
  const pods = has("podSelector")
    ? parseSelector(raw.podSelector, `${where}.podSelector`, errors)
    : EVERYTHING;
  const namespaces = has("namespaceSelector")
    ? parseSelector(raw.namespaceSelector, `${where}.namespaceSelector`, errors)
    : "own";
  return pods && namespaces ? { kind: "pods", pods, namespaces } : undefined;
}

const EVERYTHING: Selector = { everything: true, matches: () => true };

function parseRules(raw: unknown, dir: "ingress" | "egress", errors: string[]): PolicyRule[] {
  const peerKey = dir === "ingress" ? "from" : "to";
  const rules = list(raw, `spec.${dir}`, POLICY_LIMITS.rules, errors).flatMap((r, i) => {
    const where = `spec.${dir}[${i}]`;
    if (!isObject(r)) return errors.push(`${where}: not an object`), [];
    const ports = list(r.ports, `${where}.ports`, POLICY_LIMITS.ports, errors)
      .map((p, j) => parsePort(p, `${where}.ports[${j}]`, errors));
    const peers = list(r[peerKey], `${where}.${peerKey}`, POLICY_LIMITS.peers, errors)
      .map((p, j) => parsePeer(p, `${where}.${peerKey}[${j}]`, errors));
    if (ports.includes(undefined) || peers.includes(undefined)) return [];
    return [{ ports: ports as PortMatch[], peers: peers as Peer[] }];
  });
  const total = (k: "ports" | "peers") => rules.reduce((n, r) => n + r[k].length, 0);
  for (const k of ["ports", "peers"] as const) {
    if (total(k) > POLICY_LIMITS.total) {
      errors.push(`spec.${dir}: ${total(k)} ${k} in all, more than ${POLICY_LIMITS.total}`);
    }
  }
  return rules;
}

function policyTypes(spec: Record<string, unknown>, errors: string[]) {
  if (spec.policyTypes === undefined || spec.policyTypes === null) {
    const egress = Array.isArray(spec.egress) && spec.egress.length > 0;
    return { ingress: true, egress };
  }
  const types = list(spec.policyTypes, "spec.policyTypes", 2, errors);
  for (const t of types) {
    if (t !== "Ingress" && t !== "Egress") {
      errors.push(`spec.policyTypes: ${JSON.stringify(t)} is not Ingress or Egress`);
      return { ingress: true, egress: true };
    }
  }
  if (!Array.isArray(spec.policyTypes)) return { ingress: true, egress: true };
  return { ingress: types.includes("Ingress"), egress: types.includes("Egress") };
}

/** Checks a policy object; see the module doc for what happens with problems. */
export function parsePolicy(obj: MultiNetworkPolicy): PolicyCheck {
  const errors: string[] = [];
  const warnings: string[] = [];
  const { namespace, name } = obj.metadata;
  const spec = isObject(obj.spec) ? obj.spec : (errors.push("spec: not an object"), {});
  const forText = obj.metadata.annotations?.[POLICY_FOR_ANNOTATION];
  let networks: string[] | undefined = [];
  if (forText === undefined || forText.trim() === "") {
    warnings.push(`no ${POLICY_FOR_ANNOTATION} annotation: the policy applies to no network`);
  } else networks = parsePolicyFor(forText, namespace, errors);
  const podSelector = spec.podSelector === undefined
    ? (errors.push("spec.podSelector: missing"), undefined)
    : parseSelector(spec.podSelector, "spec.podSelector", errors);
  const types = policyTypes(spec, errors);
  const ingress = types.ingress ? parseRules(spec.ingress, "ingress", errors) : undefined;
  const egress = types.egress ? parseRules(spec.egress, "egress", errors) : undefined;
  const scope: PolicyScope = { networks, podSelector, ...types };
  if (errors.length > 0 || !networks || !podSelector) return { scope, errors, warnings };
  const policy: ParsedPolicy = {
    namespace,
    name,
    uid: obj.metadata.uid ?? "",
    resourceVersion: obj.metadata.resourceVersion ?? "",
    networks,
    podSelector,
  };
  if (ingress) policy.ingress = ingress;
  if (egress) policy.egress = egress;
  return { policy, scope, errors, warnings };
}
