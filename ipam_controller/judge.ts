/**
 * What the reclaim controller does with one allocation, decided from what
 * it knows of the cluster: keep it, free it, or change its StatefulSet
 * hold. Pure: the controller gathers the facts (and confirms a pod's
 * absence with the API server before any address is freed).
 *
 * The rules:
 * - an address is never freed while a pod with its UID exists (a pod name
 *   alone proves nothing: a re-created pod has a new UID);
 * - a pod's address whose pod is gone is freed, unless the pod belonged
 *   to a StatefulSet: then it is held for the pod's next incarnation (same
 *   name) for as long as the StatefulSet wants that ordinal, and freed
 *   `holdMs` after it stops wanting it;
 * - one pod can hold one address per pool and interface: when an earlier
 *   ADD's allocation is left beside a later one (a failed ADD whose
 *   sandbox was replaced), the older is freed once it is `graceMs` older
 *   than the newer;
 * - an address whereabouts held is freed once its pod is gone;
 * - a node's own gateway address (ipam/pool/node_owned.ts) is freed once
 *   its node is gone, never while the node exists, pods or none;
 * - nothing younger than `graceMs` is touched, nor anything else allocated
 *   for no pod at all (a runtime outside Kubernetes): only its DEL frees it.
 *
 * @module
 */

import type { Allocation } from "../ipam/pool/objects.ts";
import { gatewayOwner } from "../ipam/pool/node_owned.ts";

/** What is known of a pod. */
export interface PodFacts {
  uid: string;
  /** The controlling StatefulSet, when there is one. */
  statefulSet?: string;
}

/** What the controller knows when it judges. */
export interface Facts {
  /** The pod with this UID exists. */
  podWithUid(uid: string): boolean;
  /** The pod now named `namespace/name`, if any. */
  podNamed(ref: string): PodFacts | undefined;
  /** True when StatefulSet `namespace/name` exists and wants `ordinal`. */
  statefulSetWants(namespace: string, name: string, ordinal: number): boolean;
  /** Set when a later allocation of the same pod, pool and interface exists (its time). */
  newerTwin(a: Allocation): string | undefined;
  /** The node of this name exists. */
  nodeExists(name: string): boolean;
}

/** Options of {@link judge}. */
export interface JudgeOptions {
  now: number;
  /** Allocations younger than this are left alone; 30 s. */
  graceMs: number;
  /** How long a StatefulSet pod's address is held once the ordinal is unwanted; 5 min. */
  holdMs: number;
}

/** The verdict on one allocation. */
export type Verdict =
  | { action: "keep" }
  | {
    action: "free";
    reason:
      | "pod-gone"
      | "sts-hold-expired"
      | "superseded"
      | "whereabouts-pod-gone"
      | "node-gone";
  }
  | { action: "update"; allocation: Allocation; why: string };

const KEEP: Verdict = { action: "keep" };

function age(a: Allocation, now: number): number {
  const t = a.time ? Date.parse(a.time) : NaN;
  return Number.isFinite(t) ? now - t : Infinity;
}

function iso(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
}

/** The ordinal of a StatefulSet pod's name, or undefined when it is not `<sts>-<n>`. */
export function ordinalOf(podName: string, statefulSet: string): number | undefined {
  if (!podName.startsWith(`${statefulSet}-`)) return undefined;
  const rest = podName.slice(statefulSet.length + 1);
  return /^(0|[1-9][0-9]*)$/.test(rest) ? Number(rest) : undefined;
}

function split(ref: string): [string, string] | undefined {
  const slash = ref.indexOf("/");
  return slash > 0 ? [ref.slice(0, slash), ref.slice(slash + 1)] : undefined;
}

/** Whether the pod the allocation was made for still exists. */
function podAlive(a: Allocation, f: Facts): boolean {
  if (a.podUID) return f.podWithUid(a.podUID);
  return a.pod !== undefined && f.podNamed(a.pod) !== undefined;
}

/** A sticky (StatefulSet) allocation whose pod is gone: held, then freed after the hold. */
function judgeSticky(a: Allocation, f: Facts, o: JudgeOptions): Verdict {
  const ref = split(a.pod ?? "");
  const ordinal = ref ? ordinalOf(ref[1], a.statefulSet!) : undefined;
  if (!ref || ordinal === undefined) return { action: "free", reason: "pod-gone" };
  const released = a.releasedAt ? a : { ...a, releasedAt: iso(o.now) };
  if (f.statefulSetWants(ref[0], a.statefulSet!, ordinal)) {
    if (a.unwantedSince || !a.releasedAt) {
      const { unwantedSince: _, ...kept } = released;
      return { action: "update", allocation: kept, why: "held for the StatefulSet's next pod" };
    }
    return KEEP;
  }
  if (!a.unwantedSince) {
    return {
      action: "update",
      allocation: { ...released, unwantedSince: iso(o.now) },
      why: "the StatefulSet no longer wants this ordinal; hold started",
    };
  }
  const since = Date.parse(a.unwantedSince);
  if (Number.isFinite(since) && o.now - since < o.holdMs) return KEEP;
  return { action: "free", reason: "sts-hold-expired" };
}

/** Judges one allocation (see the module text). */
export function judge(a: Allocation, f: Facts, o: JudgeOptions): Verdict {
  if (age(a, o.now) < o.graceMs) return KEEP;
  const node = gatewayOwner(a);
  if (node !== undefined) {
    return f.nodeExists(node) ? KEEP : { action: "free", reason: "node-gone" };
  }
  if (!a.pod) return KEEP;
  if (a.source === "whereabouts") {
    return f.podNamed(a.pod) ? KEEP : { action: "free", reason: "whereabouts-pod-gone" };
  }
  if (a.statefulSet && (a.releasedAt || !podAlive(a, f))) {
    // The pod of this name may be back already (with another UID): its ADD takes the address over.
    return judgeSticky(a, f, o);
  }
  if (!podAlive(a, f)) return { action: "free", reason: "pod-gone" };
  const twin = f.newerTwin(a);
  if (twin !== undefined) {
    const newer = Date.parse(twin);
    const mine = a.time ? Date.parse(a.time) : NaN;
    if (Number.isFinite(newer) && Number.isFinite(mine) && newer - mine >= o.graceMs) {
      return { action: "free", reason: "superseded" };
    }
  }
  return KEEP;
}
