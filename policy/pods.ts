/**
 * Pods as the policy compiler sees them: labels, the addresses each
 * secondary network gave them, and their named container ports. Built from
 * Pod objects (addresses from the `k8s.v1.cni.cncf.io/network-status`
 * annotation) and, for pods on this node, from hydra's own attachment
 * records, which are trusted over the annotation (anyone who may edit a
 * pod may edit its annotations).
 *
 * @module
 */

import type { Pod } from "../kube/objects.ts";
import { type IpAddr, ipAddrKey, parseIpAddrOrCidr } from "../ipaddr/ip.ts";
import type { Labels } from "./selector.ts";
import type { Protocol } from "./spec.ts";

/** The pod annotation listing each attachment with its addresses. */
export const NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status";

/** Bounds on what is read from one network-status annotation. */
const STATUS_LIMITS = { entries: 64, ips: 16, bytes: 64 * 1024 } as const;

/** A named container port. */
export interface NamedPort {
  name: string;
  port: number;
  protocol: Protocol;
}

/** A pod, for selection and peer addresses. */
export interface PodView {
  namespace: string;
  name: string;
  uid: string;
  labels: Labels;
  /** Addresses by network ("namespace/name"), secondary networks only. */
  addresses: ReadonlyMap<string, readonly IpAddr[]>;
  ports: readonly NamedPort[];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Addresses by network from a network-status annotation. Entries marked
 * `default` (the pod's primary network) and anything malformed are left
 * out; an unreadable annotation yields no addresses.
 */
export function statusAddresses(text: string | undefined): Map<string, IpAddr[]> {
  const out = new Map<string, IpAddr[]>();
  if (!text || text.length > STATUS_LIMITS.bytes) return out;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return out;
  }
  if (!Array.isArray(raw)) return out;
  for (const e of raw.slice(0, STATUS_LIMITS.entries)) {
    if (!isObject(e) || typeof e.name !== "string" || e.default === true) continue;
    if (!Array.isArray(e.ips)) continue;
    const ips = e.ips.slice(0, STATUS_LIMITS.ips)
      .map((ip) => typeof ip === "string" ? parseIpAddrOrCidr(ip) : undefined)
      .filter((ip): ip is IpAddr => ip !== undefined);
    const name = e.name.includes("/") ? e.name : `default/${e.name}`;
    out.set(name, uniqueAddrs([...(out.get(name) ?? []), ...ips]));
  }
  return out;
}

/** Addresses without repeats, in a stable order. */
export function uniqueAddrs(ips: readonly IpAddr[]): IpAddr[] {
  const seen = new Map<string, IpAddr>();
  for (const ip of ips) seen.set(ipAddrKey(ip), ip);
  return [...seen.values()];
}

interface ContainerLike {
  ports?: { name?: unknown; containerPort?: unknown; protocol?: unknown }[];
}

/** Named container ports of a pod spec (init containers too, as NetworkPolicy does). */
export function namedPorts(pod: Pod): NamedPort[] {
  const spec = pod.spec as { containers?: unknown; initContainers?: unknown } | undefined;
  const containers = [spec?.containers, spec?.initContainers]
    .flatMap((c) => Array.isArray(c) ? c as ContainerLike[] : []);
  const out: NamedPort[] = [];
  for (const c of containers) {
    for (const p of Array.isArray(c?.ports) ? c.ports : []) {
      const protocol = typeof p.protocol === "string" ? p.protocol : "TCP";
      if (typeof p.name !== "string" || typeof p.containerPort !== "number") continue;
      if (protocol !== "TCP" && protocol !== "UDP" && protocol !== "SCTP") continue;
      out.push({
        name: p.name,
        port: p.containerPort,
        protocol: protocol.toLowerCase() as Protocol,
      });
    }
  }
  return out;
}

/** True for pods that hold no addresses any more (finished) or use the node's network. */
export function isInactive(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === "Succeeded" || phase === "Failed" || pod.spec?.hostNetwork === true;
}

/** The view of a Pod object. */
export function podView(pod: Pod): PodView {
  return {
    namespace: pod.metadata.namespace,
    name: pod.metadata.name,
    uid: pod.metadata.uid ?? "",
    labels: pod.metadata.labels ?? {},
    addresses: statusAddresses(pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION]),
    ports: namedPorts(pod),
  };
}

/**
 * Keeps only what the compiler reads of a Pod (the watch cache holds every
 * pod of the cluster): name, namespace, UID, resourceVersion, labels, the
 * network-status annotation, container ports, hostNetwork, node and phase.
 */
export function trimPod(pod: Pod): Pod {
  const status = pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
  const spec = pod.spec as
    | { containers?: ContainerLike[]; initContainers?: ContainerLike[] }
    | undefined;
  const ports = (cs: ContainerLike[] | undefined) =>
    Array.isArray(cs) ? cs.map((c) => ({ ports: c?.ports })) : undefined;
  return {
    metadata: {
      name: pod.metadata.name,
      namespace: pod.metadata.namespace,
      uid: pod.metadata.uid,
      resourceVersion: pod.metadata.resourceVersion,
      labels: pod.metadata.labels,
      annotations: status === undefined ? {} : { [NETWORK_STATUS_ANNOTATION]: status },
    },
    spec: {
      nodeName: pod.spec?.nodeName,
      hostNetwork: pod.spec?.hostNetwork,
      containers: ports(spec?.containers),
      initContainers: ports(spec?.initContainers),
    },
    status: { phase: pod.status?.phase },
  };
}
