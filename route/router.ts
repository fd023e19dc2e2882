/**
 * The router's engine: holds the node set the source reports, and turns
 * every change into a sync pass — compute the desired state of every
 * network, reconcile each with the kernel, report problems and metrics.
 *
 * Changes are batched: the first change after a pass starts a short timer
 * (the debounce, a few ms) and everything arriving meanwhile joins the same
 * pass, so a burst of a thousand events costs one pass while a lone change
 * still reaches the kernel within milliseconds. Passes are incremental
 * (compared with what the last pass left); a full pass that reads the
 * kernel runs at start, periodically, and after anything failed.
 *
 * Nothing is removed before the source has delivered the complete node
 * set: routes left by an earlier run are adopted, not flushed.
 *
 * @module
 */

import { type BackoffState, createBackoff } from "../pkg/async.ts";
import type { Logger } from "../pkg/log.ts";
import { findLink, type Handle, listAddrs, listLinks } from "../netlink/mod.ts";
import type { ConfigProblem, NetworkConfig } from "./config.ts";
import { computeDesired, type DesiredState, type Problem } from "./desired.ts";
import { applyNodeChanges, type ChangedKeys } from "./incremental.ts";
import type { RouterMetrics } from "./metrics.ts";
import { type NodeInfo, sameNode } from "./nodes.ts";
import type { ChangeCounts, NetworkMirror } from "./mirror.ts";
import { reconcileNetwork } from "./reconcile.ts";

/** Options of {@link createRouter}. */
export interface RouterOptions {
  handle: Handle;
  networks: NetworkConfig[];
  /** Problems found in the config (networks left out); reported with every pass's. */
  configProblems?: ConfigProblem[];
  nodeName: string;
  logger: Logger;
  metrics: RouterMetrics;
  /** Wait after the first change before a pass; 5 ms. */
  debounceMs?: number;
  /** Full pass every so often (0: never); 60 s. */
  resyncIntervalMs?: number;
  /**
   * How often to look at this node's addresses and watched devices (0:
   * never); 2 s. A change (the underlay address moved, a device went away,
   * the hydra-vxlan plugin made its tunnel) can make the kernel drop routes
   * or make new ones possible, so it triggers a full pass.
   */
  addressCheckMs?: number;
  /** Called once for each problem when it appears (after its log line and metric). */
  onNewProblem?: (p: Problem) => void;
  /** Called after every pass, whatever it did (the role's idle collector listens). */
  onPass?: () => void;
}

/** What one pass did. */
export interface SyncSummary {
  pass: "full" | "incremental";
  durationMs: number;
  /** Of which computing the desired state (the rest is the kernel). */
  computeMs: number;
  /** "changes": only the changed nodes were computed; "all": every node. */
  computed: "changes" | "all";
  nodes: number;
  /** Routes owned after the pass, over all networks. */
  routes: number;
  changes: ChangeCounts;
  /** Problems in force after the pass. */
  problems: number;
  /** No kernel operation failed (bad input does not count). */
  ok: boolean;
}

/** The engine's state, for health checks. */
export interface RouterStatus {
  sourceSynced: boolean;
  passes: number;
  lastPassAt: number;
  lastPassOk: boolean;
  nodes: number;
  routes: number;
}

/** A running engine. */
export interface Router {
  /** Replaces the whole node set (a re-read node list). */
  replaceNodes(nodes: NodeInfo[]): void;
  upsertNode(node: NodeInfo): void;
  deleteNode(name: string): void;
  /** The source delivered the complete set: from now on passes may remove entries. */
  markSourceSynced(): void;
  /** Runs a pass now (outside the debounce). */
  syncNow(full?: boolean): SyncSummary;
  readonly status: RouterStatus;
  /** Stops timers; the kernel state stays. */
  stop(): void;
}

const RETRY_BACKOFF = { initialMs: 500, maxMs: 30_000 };

function problemKey(p: Problem): string {
  return `${p.kind}|${p.network ?? ""}|${p.node ?? ""}|${p.message}`;
}

/** One router's state, shared by the steps below. */
interface RouterState {
  opts: RouterOptions;
  h: Handle;
  log: Logger;
  m: RouterMetrics;
  nodes: Map<string, NodeInfo>;
  /** Nodes changed since the last pass. */
  dirty: Set<string>;
  /** The last pass's desired state (updated in place by small changes). */
  desired?: DesiredState;
  mirrors: Map<string, NetworkMirror>;
  owners: Map<string, ReadonlyMap<string, string>>;
  /** Problems in force, by key. */
  active: Map<string, Problem>;
  localAddresses: string[];
  underlayAddresses: Map<string, string>;
  /** {@link localSignature} at the last full pass. */
  addressSig: string;
  /** Devices whose coming and going matters: underlays, and tunnels other components make. */
  watchedLinks: string[];
  sourceSynced: boolean;
  needFull: boolean;
  pending?: ReturnType<typeof setTimeout>;
  retryTimer?: ReturnType<typeof setTimeout>;
  retryBackoff: BackoffState;
  stopped: boolean;
  status: RouterStatus;
  timers: ReturnType<typeof setInterval>[];
}

/** A pass soon (after the debounce), unless one is already due. */
function schedule(r: RouterState): void {
  if (r.stopped || !r.sourceSynced || r.pending !== undefined) return;
  r.pending = setTimeout(() => {
    r.pending = undefined;
    try {
      syncNow(r, r.needFull);
    } catch (err) {
      r.log.error("sync pass failed", { error: err });
    }
  }, r.opts.debounceMs ?? 5);
}

/** A full pass after the next pause of the retry backoff. */
function scheduleRetry(r: RouterState): void {
  if (r.stopped || r.retryTimer !== undefined) return;
  r.retryTimer = setTimeout(() => {
    r.retryTimer = undefined;
    r.needFull = true;
    schedule(r);
  }, r.retryBackoff.next());
}

function watchedLinksOf(networks: readonly NetworkConfig[]): string[] {
  return [
    ...new Set(
      networks.flatMap((n) => [
        n.vxlan?.underlayDevice,
        n.vxlan?.owner === "plugin" ? n.vxlan.device : undefined,
      ]).filter((d): d is string => d !== undefined),
    ),
  ];
}

/** This node's addresses and watched devices, as one comparable string. */
function localSignature(r: RouterState, addrs = listAddrs(r.h)): string {
  const links = r.watchedLinks.map((name) => `${name}#${findLink(r.h, name)?.index ?? "-"}`);
  return [...addrs.map((a) => `${a.index}/${a.cidr}`).sort(), ...links].join(",");
}

/** Reads this node's addresses and its underlays' (for a full pass). */
function readLocal(r: RouterState): void {
  const addrs = listAddrs(r.h);
  r.addressSig = localSignature(r, addrs);
  r.localAddresses = addrs.map((a) => a.address);
  r.underlayAddresses = new Map();
  const wanted = new Set(r.opts.networks.map((n) => n.vxlan?.underlayDevice).filter((d) => d));
  if (!wanted.size) return;
  for (const link of listLinks(r.h)) {
    if (!wanted.has(link.name)) continue;
    const a = addrs.find((x) => x.index === link.index && x.scope === 0);
    if (a) r.underlayAddresses.set(link.name, a.address);
  }
}

/** A full pass when this node's addresses or watched devices changed. */
function checkAddresses(r: RouterState): void {
  if (!r.sourceSynced || r.stopped) return;
  try {
    if (localSignature(r) !== r.addressSig) {
      r.log.info("this node's addresses or devices changed; full resync");
      r.needFull = true;
      schedule(r);
    }
  } catch (err) {
    r.log.warn("reading this node's addresses failed", { error: err });
  }
}

/** Logs problems that are new and those resolved, and counts those in force. */
function report(r: RouterState, problems: Problem[]): void {
  const next = new Map<string, Problem>();
  for (const p of problems) next.set(problemKey(p), p);
  for (const [key, p] of next) {
    if (r.active.has(key)) continue;
    r.m.errors.inc({ kind: p.kind });
    const fields = { kind: p.kind, network: p.network, node: p.node };
    if (p.level === "warn") r.log.warn(p.message, fields);
    else r.log.error(p.message, fields);
    r.opts.onNewProblem?.(p);
  }
  for (const [key, p] of r.active) {
    if (!next.has(key)) {
      r.log.info(`resolved: ${p.message}`, { kind: p.kind, network: p.network, node: p.node });
    }
  }
  r.active = next;
  r.m.problems.reset();
  for (const p of next.values()) r.m.problems.inc({ kind: p.kind });
}

/**
 * The desired state for this pass: a few changed nodes applied to the last
 * one (their keys returned as `touched`), else computed for every node.
 */
function desiredNow(
  r: RouterState,
  full: boolean,
): { desired: DesiredState; touched?: Map<string, ChangedKeys> } {
  let touched: Map<string, ChangedKeys> | undefined;
  if (!full && r.desired) {
    touched = r.dirty.size
      ? applyNodeChanges(r.desired, r.nodes, r.dirty, r.opts.nodeName)
      : new Map(
        r.desired.networks.map((
          d,
        ) => [d.net.name, { routes: new Set(), fdb: new Set(), neighs: new Set() }]),
      );
  }
  if (!touched || !r.desired) {
    r.desired = computeDesired({
      networks: r.opts.networks,
      nodes: r.nodes.values(),
      localName: r.opts.nodeName,
      localAddresses: r.localAddresses,
      underlayAddresses: r.underlayAddresses,
      previousOwners: r.owners,
    });
  }
  r.dirty.clear();
  return { desired: r.desired, touched };
}

/** What reconciling every network did. */
interface PassOutcome {
  problems: Problem[];
  total: ChangeCounts;
  retry: boolean;
  routes: number;
}

/** Reconciles each network with the kernel, keeping mirrors, owners and gauges. */
function reconcileAll(
  r: RouterState,
  desired: DesiredState,
  full: boolean,
  touched: Map<string, ChangedKeys> | undefined,
): PassOutcome {
  const out: PassOutcome = {
    problems: [
      ...(r.opts.configProblems ?? []).map((p): Problem => ({ ...p, level: "error" })),
      ...desired.problems,
    ],
    total: {
      routesAdded: 0,
      routesReplaced: 0,
      routesDeleted: 0,
      fdbChanged: 0,
      neighChanged: 0,
    },
    retry: false,
    routes: 0,
  };
  const nextOwners = new Map<string, ReadonlyMap<string, string>>();
  for (const d of desired.networks) {
    const name = d.net.name;
    const res = reconcileNetwork(r.h, d, r.mirrors.get(name), full, touched?.get(name));
    if (res.mirror) r.mirrors.set(name, res.mirror);
    out.problems.push(...res.problems);
    out.retry ||= res.retry;
    for (const k of Object.keys(out.total) as (keyof ChangeCounts)[]) {
      out.total[k] += res.changes[k];
    }
    if (res.deviceChanges.length) {
      r.log.info(`vxlan device ${d.vxlan?.device}: ${res.deviceChanges.join(", ")}`, {
        network: name,
      });
    }
    nextOwners.set(name, d.hold ? r.owners.get(name) ?? new Map() : d.owners);
    const owned = res.mirror?.routes.size ?? 0;
    out.routes += owned;
    r.m.routesOwned.set({ network: name }, owned);
    r.m.nodesSynced.set({ network: name }, d.nodesSynced);
    r.m.nodesSkipped.set({ network: name }, d.nodesSkipped);
    if (d.net.mode === "vxlan") {
      r.m.fdbEntries.set({ network: name }, res.mirror?.fdb.size ?? 0);
      r.m.neighbours.set({ network: name }, res.mirror?.neighs.size ?? 0);
    }
  }
  r.owners = nextOwners;
  return out;
}

/** Counts a finished pass in the metrics and the status. */
function recordPass(r: RouterState, pass: SyncSummary["pass"], o: PassOutcome, ms: number): void {
  const ok = !o.retry;
  r.m.syncDuration.observe({ pass }, ms / 1000);
  r.m.syncs.inc({ pass, result: ok ? "ok" : "error" });
  r.m.changes.inc({ object: "route", op: "add" }, o.total.routesAdded);
  r.m.changes.inc({ object: "route", op: "replace" }, o.total.routesReplaced);
  r.m.changes.inc({ object: "route", op: "delete" }, o.total.routesDeleted);
  r.m.changes.inc({ object: "fdb", op: "set" }, o.total.fdbChanged);
  r.m.changes.inc({ object: "neighbour", op: "set" }, o.total.neighChanged);
  r.m.lastSync.set({}, Date.now() / 1000);
  r.status.passes++;
  r.status.lastPassAt = Date.now();
  r.status.lastPassOk = ok;
  r.status.nodes = r.nodes.size;
  r.status.routes = o.routes;
}

/** One pass: desired state, kernel, problems, metrics; a retry is scheduled when it failed. */
function syncNow(r: RouterState, full = r.needFull): SyncSummary {
  if (r.pending !== undefined) {
    clearTimeout(r.pending);
    r.pending = undefined;
  }
  const started = performance.now();
  const pass = full ? "full" : "incremental";
  if (full) {
    r.needFull = false;
    try {
      readLocal(r);
    } catch (err) {
      r.log.error("reading this node's addresses failed", { error: err });
    }
  }
  const { desired, touched } = desiredNow(r, full);
  const computeMs = performance.now() - started;
  const outcome = reconcileAll(r, desired, full, touched);
  report(r, outcome.problems);
  const durationMs = performance.now() - started;
  recordPass(r, pass, outcome, durationMs);
  const { total } = outcome;
  const summary: SyncSummary = {
    pass,
    durationMs: Math.round(durationMs * 1000) / 1000,
    computeMs: Math.round(computeMs * 1000) / 1000,
    computed: touched ? "changes" : "all",
    nodes: r.nodes.size,
    routes: outcome.routes,
    changes: total,
    problems: r.active.size,
    ok: !outcome.retry,
  };
  const changed = total.routesAdded + total.routesReplaced + total.routesDeleted +
    total.fdbChanged + total.neighChanged;
  if (changed || full) r.log.info(`${pass} sync`, { ...summary });
  else r.log.debug(`${pass} sync`, { ...summary });
  if (outcome.retry) scheduleRetry(r);
  else r.retryBackoff.reset();
  r.opts.onPass?.();
  return summary;
}

/** Replaces the node set; a pass follows when anything changed. */
function replaceNodes(r: RouterState, list: NodeInfo[]): void {
  const seen = new Set<string>();
  let changed = false;
  for (const n of list) {
    seen.add(n.name);
    const old = r.nodes.get(n.name);
    // Keep the old object when nothing changed: computed results are cached per object.
    if (old && sameNode(old, n)) continue;
    r.nodes.set(n.name, n);
    r.dirty.add(n.name);
    changed = true;
  }
  for (const name of [...r.nodes.keys()]) {
    if (!seen.has(name)) {
      r.nodes.delete(name);
      r.dirty.add(name);
      changed = true;
    }
  }
  r.m.nodesSeen.set({}, r.nodes.size);
  if (changed) schedule(r);
}

function upsertNode(r: RouterState, node: NodeInfo): void {
  const old = r.nodes.get(node.name);
  if (old && sameNode(old, node)) return;
  r.nodes.set(node.name, node);
  r.dirty.add(node.name);
  r.m.nodesSeen.set({}, r.nodes.size);
  schedule(r);
}

function deleteNode(r: RouterState, name: string): void {
  if (!r.nodes.delete(name)) return;
  r.dirty.add(name);
  r.m.nodesSeen.set({}, r.nodes.size);
  schedule(r);
}

function markSourceSynced(r: RouterState): void {
  if (r.sourceSynced) return;
  r.sourceSynced = true;
  r.status.sourceSynced = true;
  r.needFull = true;
  schedule(r);
}

function stop(r: RouterState): void {
  r.stopped = true;
  if (r.pending !== undefined) clearTimeout(r.pending);
  if (r.retryTimer !== undefined) clearTimeout(r.retryTimer);
  for (const t of r.timers) clearInterval(t);
  r.pending = r.retryTimer = undefined;
}

/** The periodic full pass and the address check, as the options ask. */
function startTimers(r: RouterState): void {
  const resyncMs = r.opts.resyncIntervalMs ?? 60_000;
  const addressCheckMs = r.opts.addressCheckMs ?? 2000;
  if (addressCheckMs > 0) r.timers.push(setInterval(() => checkAddresses(r), addressCheckMs));
  if (resyncMs > 0) {
    r.timers.push(setInterval(() => {
      r.needFull = true;
      schedule(r);
    }, resyncMs));
  }
}

/** Creates the engine; nothing happens until the source reports nodes and marks itself synced. */
export function createRouter(opts: RouterOptions): Router {
  const r: RouterState = {
    opts,
    h: opts.handle,
    log: opts.logger,
    m: opts.metrics,
    nodes: new Map(),
    dirty: new Set(),
    mirrors: new Map(),
    owners: new Map(),
    active: new Map(),
    localAddresses: [],
    underlayAddresses: new Map(),
    addressSig: "",
    watchedLinks: watchedLinksOf(opts.networks),
    sourceSynced: false,
    needFull: true,
    retryBackoff: createBackoff(RETRY_BACKOFF),
    stopped: false,
    status: {
      sourceSynced: false,
      passes: 0,
      lastPassAt: 0,
      lastPassOk: false,
      nodes: 0,
      routes: 0,
    },
    timers: [],
  };
  startTimers(r);
  return {
    replaceNodes: (list) => replaceNodes(r, list),
    upsertNode: (node) => upsertNode(r, node),
    deleteNode: (name) => deleteNode(r, name),
    markSourceSynced: () => markSourceSynced(r),
    syncNow: (full?: boolean) => syncNow(r, full),
    status: r.status,
    stop: () => stop(r),
  };
}
