/**
 * Applies a change of a few nodes to the last computed state without
 * recomputing the others: their old contribution goes, their new one is
 * checked on its own and against the index of accepted CIDRs and underlay
 * addresses, and added. The result is the same as a full computation would
 * give (a property test holds the two together).
 *
 * It declines — and leaves the state untouched — whenever the answer
 * depends on more than the changed nodes: this node changed, a network is
 * held, the last state had refused a claim for overlapping or sharing an
 * underlay address (freeing one might let it in), or a changed node now
 * overlaps or shares an address with another. The caller then computes in
 * full; that is rare and never wrong.
 *
 * @module
 */

import type { NodeInfo } from "./nodes.ts";
import {
  addPlan,
  byStart,
  type DesiredNetwork,
  type DesiredState,
  type Interval,
  localMissing,
  type NodeEntry,
} from "./desired.ts";
import { checkRemote, fullPlan, type Problem } from "./plan.ts";

/** The kernel keys a change touched, per network. */
export interface ChangedKeys {
  routes: Set<string>;
  /** vxlan FDB MACs. */
  fdb: Set<string>;
  /** vxlan neighbour addresses. */
  neighs: Set<string>;
}

/** Index of the first interval that ends at or after `start` in `family`. */
function firstReaching(intervals: Interval[], family: number, start: string): number {
  let lo = 0;
  let hi = intervals.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const iv = intervals[mid];
    if (iv.family > family || (iv.family === family && iv.end >= start)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** True when [start, end] overlaps an interval of a node outside `changed`. */
function overlapsOther(
  intervals: Interval[],
  c: { family: number; start: string; end: string },
  changed: ReadonlySet<string>,
): boolean {
  for (let i = firstReaching(intervals, c.family, c.start); i < intervals.length; i++) {
    const iv = intervals[i];
    if (iv.family !== c.family || iv.start > c.end) break;
    if (!changed.has(iv.node)) return true;
  }
  return false;
}

/** The new entries of the changed nodes in one network, or undefined on any conflict. */
function planNetwork(
  d: DesiredNetwork,
  nodes: ReadonlyMap<string, NodeInfo>,
  names: string[],
  changed: ReadonlySet<string>,
): Map<string, NodeEntry | undefined> | undefined {
  const idx = d.index;
  if (d.hold || !idx || !idx.clean) return undefined;
  const next = new Map<string, NodeEntry | undefined>();
  const claimed: Interval[] = [];
  const underlays = new Set<string>();
  for (const name of names) {
    const node = nodes.get(name);
    if (!node) {
      next.set(name, undefined);
      continue;
    }
    const r = checkRemote(node, idx.ctx);
    if (!r.cand) {
      next.set(name, { problems: [r.problem], cidrs: [] });
      continue;
    }
    const u = r.cand.underlay;
    if (u) {
      const twin = idx.underlays.get(u);
      if ((twin !== undefined && !changed.has(twin)) || underlays.has(u)) return undefined;
      underlays.add(u);
    }
    for (const c of r.cand.nn.cidrs) {
      if (overlapsOther(idx.intervals, c, changed)) return undefined;
      if (claimed.some((o) => o.family === c.family && o.start <= c.end && c.start <= o.end)) {
        return undefined;
      }
      claimed.push({ family: c.family, start: c.start, end: c.end, node: name });
    }
    const plan = fullPlan(r.cand, d.net);
    next.set(name, {
      problems: [...plan.problems],
      plan: plan.routes.length ? plan : undefined,
      underlay: u,
      cidrs: r.cand.nn.cidrs,
    });
  }
  return next;
}

function removeEntry(d: DesiredNetwork, name: string, old: NodeEntry, keys: ChangedKeys): void {
  const idx = d.index!;
  if (old.underlay && idx.underlays.get(old.underlay) === name) idx.underlays.delete(old.underlay);
  const plan = old.plan;
  if (!plan) return;
  for (const r of plan.routes) {
    if (d.routes.get(r.key)?.node === name) d.routes.delete(r.key);
    if (d.owners.get(r.dst) === name) d.owners.delete(r.dst);
    keys.routes.add(r.key);
  }
  if (d.vxlan && plan.mac) {
    if (d.vxlan.fdb.get(plan.mac) === old.underlay) d.vxlan.fdb.delete(plan.mac);
    keys.fdb.add(plan.mac);
    for (const v of plan.vteps) {
      if (d.vxlan.neighs.get(v) === plan.mac) d.vxlan.neighs.delete(v);
      keys.neighs.add(v);
    }
  }
}

function insertInterval(intervals: Interval[], iv: Interval): void {
  let lo = 0;
  let hi = intervals.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (byStart(intervals[mid], iv) < 0) lo = mid + 1;
    else hi = mid;
  }
  intervals.splice(lo, 0, iv);
}

/**
 * Applies the change of the nodes named in `changed` (now as in `nodes`,
 * or gone) to `state`, in place. Returns the kernel keys touched per
 * network, or undefined — with `state` untouched — when a full computation
 * is needed.
 */
export function applyNodeChanges(
  state: DesiredState,
  nodes: ReadonlyMap<string, NodeInfo>,
  changed: ReadonlySet<string>,
  localName: string,
): Map<string, ChangedKeys> | undefined {
  if (changed.has(localName)) return undefined;
  const names = [...changed].sort();
  const plans: Map<string, NodeEntry | undefined>[] = [];
  for (const d of state.networks) {
    const p = planNetwork(d, nodes, names, changed);
    if (!p) return undefined;
    plans.push(p);
  }
  const touched = new Map<string, ChangedKeys>();
  state.networks.forEach((d, i) => {
    const idx = d.index!;
    const keys: ChangedKeys = { routes: new Set(), fdb: new Set(), neighs: new Set() };
    for (const name of names) {
      const old = idx.entries.get(name);
      if (old) removeEntry(d, name, old, keys);
      idx.entries.delete(name);
    }
    idx.intervals = idx.intervals.filter((iv) => !changed.has(iv.node));
    for (const [name, entry] of plans[i]) {
      if (!entry) continue;
      idx.entries.set(name, entry);
      if (entry.underlay) idx.underlays.set(entry.underlay, name);
      for (const c of entry.cidrs) {
        insertInterval(idx.intervals, { family: c.family, start: c.start, end: c.end, node: name });
      }
      if (!entry.plan) continue;
      addPlan(d, entry.plan, entry.underlay);
      for (const r of entry.plan.routes) keys.routes.add(r.key);
      if (entry.plan.mac) {
        keys.fdb.add(entry.plan.mac);
        for (const v of entry.plan.vteps) keys.neighs.add(v);
      }
    }
    let synced = 0;
    for (const e of idx.entries.values()) if (e.plan) synced++;
    d.nodesSynced = synced;
    d.nodesSkipped = idx.entries.size - synced;
    touched.set(d.net.name, keys);
  });
  state.globalProblems = nodes.has(localName) ? [] : localMissing(localName, nodes.size);
  const problems: Problem[] = [...state.globalProblems];
  for (const d of state.networks) {
    problems.push(...d.index!.localProblems);
    for (const e of d.index!.entries.values()) problems.push(...e.problems);
  }
  state.problems = problems;
  return touched;
}
