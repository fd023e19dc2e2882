/**
 * The API objects of hydra's cluster-wide IPAM (group `hydra.clusternet.io`,
 * version `v1alpha1`, both cluster-scoped; CRDs in deploy/crds/):
 *
 * - `AddressPool`: one range of one network — its CIDR, the allocatable
 *   window (`rangeStart`…`rangeEnd`) and exclusions — with size, allocated
 *   and free addresses in its status (kept by `hydra ipam controller`).
 * - `AddressBlock`: 16 consecutive addresses of a network, aligned, with
 *   the node that claimed it and every address allocated in it. Allocating
 *   is a compare-and-swap update of one block (its resourceVersion), so two
 *   nodes only contend when they touch the same 16 addresses.
 *
 * Names and labels are derived here (see {@link poolName},
 * {@link blockName}), so every node computes the same object for the same
 * addresses without asking anyone.
 *
 * @module
 */

import type { ObjectMeta } from "../../kube/objects.ts";
import type { KubeObject } from "../../kube/watch.ts";
import {
  formatIpAddr,
  formatIpNet,
  type IpAddr,
  type IpFamily,
  type IpNet,
  networkIpAddr,
} from "../../ipaddr/ip.ts";

/** The API group of hydra's own objects. */
export const GROUP = "hydra.clusternet.io";
/** The version served. */
export const VERSION = "v1alpha1";
/** `apiVersion` of the objects. */
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Label naming the network (network key, see {@link networkKey}) of a pool or block. */
export const NETWORK_LABEL = `${GROUP}/network`;
/** Label naming the node (node key, see {@link nodeKey}) a block is affine to; "" when none. */
export const NODE_LABEL = `${GROUP}/node`;

/** Addresses per block: a /28 for IPv4, a /124 for IPv6. */
export const BLOCK_ADDRESSES = 16;

/** The prefix length of a block of `family`. */
export function blockPrefix(family: IpFamily): number {
  return family === 4 ? 28 : 124;
}

/** Where an allocation came from. */
export type AllocationSource = "pod" | "whereabouts";

/** One address in use, recorded on its block. */
export interface Allocation {
  /** The address, canonical text. */
  ip: string;
  /** The pool whose request allocated it (an imported hold names none). */
  pool?: string;
  /** "pod" (default) or "whereabouts" (held by whereabouts when hydra took over the range). */
  source?: AllocationSource;
  /** The pod, `namespace/name`. */
  pod?: string;
  /** The pod's UID at allocation time; reclaim matches on it, never on the name alone. */
  podUID?: string;
  /** The sandbox (CNI_CONTAINERID) and interface (CNI_IFNAME) it was allocated for. */
  containerID?: string;
  interface?: string;
  /** The node whose ADD allocated it. */
  node?: string;
  /** When it was allocated or last taken over (RFC 3339). */
  time?: string;
  /** A random id of the ADD that wrote it (tells a retry's takeover from the original). */
  handle?: string;
  /** The StatefulSet owning the pod: the address stays with `pod` across delete and re-create. */
  statefulSet?: string;
  /** Set when the sticky pod's sandbox was deleted: the address waits for its next pod. */
  releasedAt?: string;
  /** Set by the controller once the StatefulSet no longer wants the ordinal (the hold starts). */
  unwantedSince?: string;
}

/** An AddressBlock's spec. */
export interface BlockSpec {
  /** The network key (see {@link networkKey}); "" for whereabouts' unnamed network. */
  network: string;
  /** The block's addresses, e.g. `10.1.0.16/28`. */
  cidr: string;
  /** The node it is affine to ("" once that node is gone). */
  node: string;
  allocations?: Allocation[];
}

/** hydra.clusternet.io/v1alpha1 AddressBlock. */
export interface AddressBlock extends KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: BlockSpec;
}

/** An AddressPool's spec: what one range of a network config says. */
export interface PoolSpec {
  /** The network key; "" for the unnamed network. */
  network: string;
  /** `network_name` as configured ("" when none). */
  networkName?: string;
  cidr: string;
  /** First and last allocatable address (inclusive). */
  rangeStart: string;
  rangeEnd: string;
  /** Excluded CIDRs (single addresses as /32, /128). */
  exclude?: string[];
  /** `enable_overlapping_ranges`: may share addresses with other pools of the network. */
  overlapping: boolean;
}

/** An AddressPool's status, written by the controller. */
export interface PoolStatus {
  /** Allocatable addresses (capped at 2^53-1 for huge IPv6 ranges). */
  size?: number;
  allocated?: number;
  free?: number;
  /** Blocks claimed inside the pool's CIDR. */
  blocks?: number;
  /** When the controller last counted (RFC 3339). */
  updated?: string;
}

/** hydra.clusternet.io/v1alpha1 AddressPool. */
export interface AddressPool extends KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: PoolSpec;
  status?: PoolStatus;
}

/** API path of the blocks, or of one block. */
export function blockPath(name?: string): string {
  const base = `/apis/${GROUP}/${VERSION}/addressblocks`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

/** API path of the pools, or of one pool (its status with `sub`). */
export function poolPath(name?: string, sub?: "status"): string {
  const base = `/apis/${GROUP}/${VERSION}/addresspools`;
  if (name === undefined) return base;
  return `${base}/${encodeURIComponent(name)}${sub ? `/${sub}` : ""}`;
}

/** 64-bit FNV-1a of a string, as 16 hex digits: stable short names, not security. */
export function fnv64(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/**
 * The key of a network in names and labels: `network_name` itself when it
 * is a DNS label, else `n-` and a hash of it; "" for the unnamed network.
 */
export function networkKey(networkName: string): string {
  if (networkName === "" || DNS_LABEL.test(networkName)) return networkName;
  return `n-${fnv64(networkName).slice(0, 12)}`;
}

/** The value of {@link NODE_LABEL} for a node: its name, or a hash when too long for a label. */
export function nodeKey(nodeName: string): string {
  return LABEL_VALUE.test(nodeName) ? nodeName : `h-${fnv64(nodeName)}`;
}

/** An address in a name: dots kept, colons as dashes, never starting or ending with one. */
function addressInName(ip: IpAddr): string {
  let text = formatIpAddr(ip);
  if (text.startsWith("::")) text = "0" + text;
  if (text.endsWith("::")) text += "0";
  return text.replaceAll(":", "-");
}

/** A CIDR in a name: `10.1.0.16-28`, `fd00--10-124`. */
export function cidrInName(net: IpNet): string {
  return `${addressInName(net.ip)}-${net.prefix}`;
}

/**
 * The block object holding `ip` in network `key`: its CIDR (aligned, 16
 * addresses) and its name, `[<network>.]<cidr>`.
 */
export function blockOf(key: string, ip: IpAddr): { name: string; cidr: IpNet } {
  const prefix = blockPrefix(ip.family);
  const cidr: IpNet = { ip: networkIpAddr(ip, prefix), prefix };
  return { name: (key ? `${key}.` : "") + cidrInName(cidr), cidr };
}

/**
 * A pool's name: `[<network>.]<cidr>`, plus a hash of the window and
 * exclusions when the range is not the whole CIDR.
 */
export function poolName(spec: PoolSpec, cidr: IpNet, wholeCidr: boolean): string {
  const base = (spec.network ? `${spec.network}.` : "") + cidrInName(cidr);
  if (wholeCidr) return base;
  const window = `${spec.rangeStart}|${spec.rangeEnd}|${(spec.exclude ?? []).join(",")}`;
  return `${base}-${fnv64(window).slice(0, 10)}`;
}

/** The canonical text of a CIDR. */
export function cidrText(net: IpNet): string {
  return formatIpNet(net);
}
