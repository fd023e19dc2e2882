/**
 * The policy compiler: for one pod on this node, which of its secondary
 * interfaces are isolated in which direction, and what each allows — the
 * NetworkPolicy semantics applied per network:
 *
 * - A policy selects the pods of its namespace matching `podSelector`, on
 *   the interfaces of the networks its `policy-for` names. A selected
 *   interface is isolated for ingress (egress) when any selecting policy has
 *   that policy type; it then admits exactly what the union of those
 *   policies' rules allows (plus replies, which the renderer admits by
 *   connection tracking).
 * - A rule's peers are pods (by pod and namespace selectors; their
 *   addresses on the policy's networks) or IP blocks minus their
 *   exceptions; no peers means any address. Its ports are numbers, ranges
 *   or container port names; no ports means any port.
 * - A named port is resolved against the pod the traffic goes to: for
 *   ingress this pod, for egress each destination pod (addresses inside an
 *   IP block or, with no peers, every pod on the networks).
 *
 * Pure: the cluster comes in as {@link CompileInput}.
 *
 * @module
 */

import { type IpAddr, ipAddrKey, type IpFamily, type IpNet, ipNetContains } from "../ipaddr/ip.ts";
import type { AttachedInterface, PodAttachment } from "./attachments.ts";
import type { PodView } from "./pods.ts";
import type { Labels, Selector } from "./selector.ts";
import type { Peer, PolicyRule, PortMatch, Protocol } from "./spec.ts";

/** What one policy object enforces now. */
export interface EffectivePolicy {
  namespace: string;
  name: string;
  /** Networks it is for; undefined: every secondary network (a policy that cannot be read). */
  networks?: readonly string[];
  /** Undefined: every pod of the namespace (a policy that cannot be read). */
  podSelector?: Selector;
  ingress?: readonly PolicyRule[];
  egress?: readonly PolicyRule[];
  /** True when this is the fail-closed stand-in of a policy that cannot be read. */
  failClosed?: boolean;
}

/** The cluster, as far as the compiler reads it. */
export interface CompileInput {
  policies: readonly EffectivePolicy[];
  /** Every active pod of the cluster (peers), this node's with their recorded addresses. */
  pods: readonly PodView[];
  namespaceLabels(namespace: string): Labels | undefined;
}

/** Addresses of one family: these networks, minus those. */
export interface AddrMatch {
  family: IpFamily;
  include: readonly IpNet[];
  exclude: readonly IpNet[];
}

/** A transport protocol, on these destination ports (all when undefined). */
export interface L4Match {
  protocol: Protocol;
  ports?: readonly (readonly [number, number])[];
}

/** One allowed kind of traffic; an undefined part matches anything. */
export interface Allow {
  /** Where it comes from: "namespace/policy ingress[0]". */
  comment: string;
  addrs?: AddrMatch;
  l4?: L4Match;
}

/** An isolated interface and what it admits (undefined direction: not isolated). */
export interface InterfaceRules {
  ifName: string;
  network: string;
  ingress?: Allow[];
  egress?: Allow[];
}

/** A pod's rules: its interfaces isolated in at least one direction. */
export interface PodRules {
  interfaces: InterfaceRules[];
}

type Direction = "ingress" | "egress";

/** Per-pass memo of peer resolution (many pods share policies). */
export interface CompileMemo {
  peerPods: WeakMap<Peer, Map<string, PodView[]>>;
}

/** A fresh memo; use one per pass over the node's pods. */
export function newMemo(): CompileMemo {
  return { peerPods: new WeakMap() };
}

function hostNet(ip: IpAddr): IpNet {
  return { ip, prefix: ip.family === 4 ? 32 : 128 };
}

function addressesOn(pod: PodView, networks: readonly string[] | undefined): IpAddr[] {
  const out: IpAddr[] = [];
  for (const [net, ips] of pod.addresses) if (!networks || networks.includes(net)) out.push(...ips);
  return out;
}

function selects(policy: EffectivePolicy, pod: PodView): boolean {
  return policy.namespace === pod.namespace &&
    (policy.podSelector === undefined || policy.podSelector.matches(pod.labels));
}

function appliesTo(policy: EffectivePolicy, iface: AttachedInterface): boolean {
  return policy.networks === undefined || policy.networks.includes(iface.network);
}

/** The pods a pod peer of `policy` selects (memoized per pass). */
function peerPods(
  peer: Peer & { kind: "pods" },
  policy: EffectivePolicy,
  input: CompileInput,
  memo: CompileMemo,
): PodView[] {
  let byNs = memo.peerPods.get(peer);
  if (!byNs) memo.peerPods.set(peer, byNs = new Map());
  const hit = byNs.get(policy.namespace);
  if (hit) return hit;
  const nsMatch = new Map<string, boolean>();
  const inNamespace = (ns: string) => {
    if (peer.namespaces === "own") return ns === policy.namespace;
    let m = nsMatch.get(ns);
    if (m === undefined) {
      const labels = input.namespaceLabels(ns);
      nsMatch.set(ns, m = labels !== undefined && peer.namespaces.matches(labels));
    }
    return m;
  };
  const out = input.pods.filter((p) => inNamespace(p.namespace) && peer.pods.matches(p.labels));
  byNs.set(policy.namespace, out);
  return out;
}

/** Address groups of a rule's peers (undefined: any address). */
function peerAddrs(
  rule: PolicyRule,
  policy: EffectivePolicy,
  input: CompileInput,
  memo: CompileMemo,
): AddrMatch[] | undefined {
  if (rule.peers.length === 0) return undefined;
  const fromPods: IpAddr[] = [];
  const groups: AddrMatch[] = [];
  for (const peer of rule.peers) {
    if (peer.kind === "ipBlock") {
      groups.push({ family: peer.cidr.ip.family, include: [peer.cidr], exclude: peer.except });
    } else {
      for (const p of peerPods(peer, policy, input, memo)) {
        fromPods.push(...addressesOn(p, policy.networks));
      }
    }
  }
  for (const family of [4, 6] as const) {
    const seen = new Map<string, IpNet>();
    for (const ip of fromPods) if (ip.family === family) seen.set(ipAddrKey(ip), hostNet(ip));
    if (seen.size) groups.unshift({ family, include: [...seen.values()], exclude: [] });
  }
  return groups;
}

/** Numeric ports per protocol; `null` ports: the whole protocol. */
function numericPorts(ports: readonly PortMatch[], named: (p: PortMatch) => number[]) {
  const byProto = new Map<Protocol, [number, number][] | null>();
  for (const p of ports) {
    const have = byProto.get(p.protocol);
    if (have === null) continue;
    if (p.name !== undefined) {
      const resolved = named(p);
      if (resolved.length) {
        byProto.set(p.protocol, [
          ...(have ?? []),
          ...resolved.map((n) => [n, n] as [number, number]),
        ]);
      }
    } else if (p.port === undefined) byProto.set(p.protocol, null);
    else byProto.set(p.protocol, [...(have ?? []), [p.port, p.endPort ?? p.port]]);
  }
  return [...byProto].map(([protocol, ports]): L4Match =>
    ports === null ? { protocol } : { protocol, ports }
  );
}

/** Egress to named ports: per destination pod, its addresses with its port number. */
function namedEgress(
  rule: PolicyRule,
  policy: EffectivePolicy,
  input: CompileInput,
  memo: CompileMemo,
  comment: string,
): Allow[] {
  const out: Allow[] = [];
  const named = rule.ports.filter((p) => p.name !== undefined);
  if (named.length === 0) return out;
  const candidates = new Map<PodView, IpAddr[]>();
  const addAll = (pods: readonly PodView[], keep: (ip: IpAddr) => boolean) => {
    for (const p of pods) {
      const ips = addressesOn(p, policy.networks).filter(keep);
      if (ips.length) candidates.set(p, [...(candidates.get(p) ?? []), ...ips]);
    }
  };
  if (rule.peers.length === 0) addAll(input.pods, () => true);
  for (const peer of rule.peers) {
    if (peer.kind === "pods") addAll(peerPods(peer, policy, input, memo), () => true);
    else {
      addAll(
        input.pods,
        (ip) => ipNetContains(peer.cidr, ip) && !peer.except.some((e) => ipNetContains(e, ip)),
      );
    }
  }
  // One rule per port number and family, holding every destination with that number.
  const groups = new Map<string, { l4: L4Match; family: IpFamily; nets: Map<string, IpNet> }>();
  for (const port of named) {
    for (const [pod, ips] of candidates) {
      const numbers = pod.ports.filter((np) =>
        np.name === port.name && np.protocol === port.protocol
      );
      for (const n of new Set(numbers.map((np) => np.port))) {
        for (const ip of ips) {
          const key = `${port.protocol}/${n}/${ip.family}`;
          let g = groups.get(key);
          if (!g) {
            g = {
              l4: { protocol: port.protocol, ports: [[n, n]] },
              family: ip.family,
              nets: new Map(),
            };
            groups.set(key, g);
          }
          g.nets.set(ipAddrKey(ip), hostNet(ip));
        }
      }
    }
  }
  for (const g of groups.values()) {
    out.push({
      comment,
      addrs: { family: g.family, include: [...g.nets.values()], exclude: [] },
      l4: g.l4,
    });
  }
  return out;
}

/** What one rule of `policy` allows for traffic of `pod` in `dir`. */
function ruleAllows(
  rule: PolicyRule,
  index: number,
  dir: Direction,
  policy: EffectivePolicy,
  pod: PodView,
  input: CompileInput,
  memo: CompileMemo,
): Allow[] {
  const comment = `${policy.namespace}/${policy.name} ${dir}[${index}]`;
  const addrs = peerAddrs(rule, policy, input, memo);
  if (addrs !== undefined && addrs.length === 0 && rule.ports.every((p) => p.name === undefined)) {
    return [];
  }
  const ownNamed = (p: PortMatch) =>
    pod.ports.filter((np) => np.name === p.name && np.protocol === p.protocol).map((np) => np.port);
  const l4s = rule.ports.length === 0 ? [undefined] : numericPorts(
    dir === "ingress" ? rule.ports : rule.ports.filter((p) => p.name === undefined),
    ownNamed,
  );
  const out: Allow[] = [];
  for (const a of addrs ?? [undefined]) {
    for (const l4 of l4s) out.push(stripUndefined({ comment, addrs: a, l4 }));
  }
  if (dir === "egress") out.push(...namedEgress(rule, policy, input, memo, comment));
  return out;
}

function stripUndefined(a: Allow): Allow {
  const out: Allow = { comment: a.comment };
  if (a.addrs) out.addrs = a.addrs;
  if (a.l4) out.l4 = a.l4;
  return out;
}

/** The rules of one pod on this node. */
export function compilePod(
  pod: PodView,
  attachment: PodAttachment,
  input: CompileInput,
  memo: CompileMemo = newMemo(),
): PodRules {
  const selecting = input.policies.filter((p) => selects(p, pod));
  const interfaces: InterfaceRules[] = [];
  for (const iface of attachment.interfaces) {
    const rules: InterfaceRules = { ifName: iface.ifName, network: iface.network };
    for (const policy of selecting) {
      if (!appliesTo(policy, iface)) continue;
      for (const dir of ["ingress", "egress"] as const) {
        const list = policy[dir];
        if (!list) continue;
        const allows = rules[dir] ??= [];
        for (const [i, rule] of list.entries()) {
          allows.push(...ruleAllows(rule, i, dir, policy, pod, input, memo));
        }
      }
    }
    if (rules.ingress || rules.egress) interfaces.push(rules);
  }
  return { interfaces };
}
