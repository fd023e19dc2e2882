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

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

function problemKey(p: Problem): string {
  return `${p.kind}|${p.network ?? ""}|${p.node ?? ""}|${p.message}`;
}

/** Creates the engine; nothing happens until the source reports nodes and marks itself synced. */
export function createRouter(opts: RouterOptions): Router {
  const { handle: h, networks, logger: log, metrics: m } = opts;
  const debounceMs = opts.debounceMs ?? 5;
  const resyncMs = opts.resyncIntervalMs ?? 60_000;
  const nodes = new Map<string, NodeInfo>();
  /** Nodes changed since the last pass. */
  const dirty = new Set<string>();
  /** The last pass's desired state (updated in place by small changes). */
  let state: DesiredState | undefined;
  const mirrors = new Map<string, NetworkMirror>();
  let owners = new Map<string, ReadonlyMap<string, string>>();
  let active = new Map<string, Problem>();
  let localAddresses: string[] = [];
  let underlayAddresses = new Map<string, string>();
  let sourceSynced = false;
  let needFull = true;
  let pending: ReturnType<typeof setTimeout> | undefined;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let retryDelay = 0;
  let stopped = false;
  const status: RouterStatus = {
    sourceSynced: false,
    passes: 0,
    lastPassAt: 0,
    lastPassOk: false,
    nodes: 0,
    routes: 0,
  };
  let addressSig = "";
  const addressTimer = (opts.addressCheckMs ?? 2000) > 0
    ? setInterval(() => {
      if (!sourceSynced || stopped) return;
      try {
        if (localSignature() !== addressSig) {
          log.info("this node's addresses or devices changed; full resync");
          needFull = true;
          schedule();
        }
      } catch (err) {
        log.warn("reading this node's addresses failed", { error: err });
      }
    }, opts.addressCheckMs ?? 2000)
    : undefined;
  const resyncTimer = resyncMs > 0
    ? setInterval(() => {
      needFull = true;
      schedule();
    }, resyncMs)
    : undefined;

  function schedule(): void {
    if (stopped || !sourceSynced || pending !== undefined) return;
    pending = setTimeout(() => {
      pending = undefined;
      try {
        syncNow(needFull);
      } catch (err) {
        log.error("sync pass failed", { error: err });
      }
    }, debounceMs);
  }

  function scheduleRetry(): void {
    if (stopped || retryTimer !== undefined) return;
    retryDelay = retryDelay ? Math.min(retryDelay * 2, RETRY_MAX_MS) : RETRY_MIN_MS;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      needFull = true;
      schedule();
    }, retryDelay);
  }

  // Devices whose coming and going matters: underlays, and tunnels other components make.
  const watchedLinks = [
    ...new Set(
      networks.flatMap((n) => [
        n.vxlan?.underlayDevice,
        n.vxlan?.owner === "plugin" ? n.vxlan.device : undefined,
      ]).filter((d): d is string => d !== undefined),
    ),
  ];

  /** This node's addresses and watched devices, as one comparable string. */
  function localSignature(addrs = listAddrs(h)): string {
    const links = watchedLinks.map((name) => `${name}#${findLink(h, name)?.index ?? "-"}`);
    return [...addrs.map((a) => `${a.index}/${a.cidr}`).sort(), ...links].join(",");
  }

  function readLocal(): void {
    const addrs = listAddrs(h);
    addressSig = localSignature(addrs);
    localAddresses = addrs.map((a) => a.address);
    underlayAddresses = new Map();
    const wanted = new Set(networks.map((n) => n.vxlan?.underlayDevice).filter((d) => d));
    if (!wanted.size) return;
    for (const link of listLinks(h)) {
      if (!wanted.has(link.name)) continue;
      const a = addrs.find((x) => x.index === link.index && x.scope === 0);
      if (a) underlayAddresses.set(link.name, a.address);
    }
  }

  function report(problems: Problem[]): void {
    const next = new Map<string, Problem>();
    for (const p of problems) next.set(problemKey(p), p);
    for (const [key, p] of next) {
      if (active.has(key)) continue;
      m.errors.inc({ kind: p.kind });
      const fields = { kind: p.kind, network: p.network, node: p.node };
      if (p.level === "warn") log.warn(p.message, fields);
      else log.error(p.message, fields);
    }
    for (const [key, p] of active) {
      if (!next.has(key)) {
        log.info(`resolved: ${p.message}`, { kind: p.kind, network: p.network, node: p.node });
      }
    }
    active = next;
    m.problems.reset();
    for (const p of next.values()) m.problems.inc({ kind: p.kind });
  }

  function syncNow(full = needFull): SyncSummary {
    if (pending !== undefined) {
      clearTimeout(pending);
      pending = undefined;
    }
    const started = performance.now();
    const pass = full ? "full" : "incremental";
    if (full) {
      needFull = false;
      try {
        readLocal();
      } catch (err) {
        log.error("reading this node's addresses failed", { error: err });
      }
    }
    // A few changed nodes are applied on their own; anything else is computed in full.
    let touched: Map<string, ChangedKeys> | undefined;
    if (!full && state) {
      touched = dirty.size ? applyNodeChanges(state, nodes, dirty, opts.nodeName) : new Map(
        state.networks.map((
          d,
        ) => [d.net.name, { routes: new Set(), fdb: new Set(), neighs: new Set() }]),
      );
    }
    if (!touched || !state) {
      state = computeDesired({
        networks,
        nodes: nodes.values(),
        localName: opts.nodeName,
        localAddresses,
        underlayAddresses,
        previousOwners: owners,
      });
    }
    dirty.clear();
    const computeMs = performance.now() - started;
    const desired = state;
    const problems: Problem[] = [
      ...(opts.configProblems ?? []).map((p): Problem => ({ ...p, level: "error" })),
      ...desired.problems,
    ];
    const total: ChangeCounts = {
      routesAdded: 0,
      routesReplaced: 0,
      routesDeleted: 0,
      fdbChanged: 0,
      neighChanged: 0,
    };
    let retry = false;
    const nextOwners = new Map<string, ReadonlyMap<string, string>>();
    let routes = 0;
    for (const d of desired.networks) {
      const name = d.net.name;
      const r = reconcileNetwork(h, d, mirrors.get(name), full, touched?.get(name));
      if (r.mirror) mirrors.set(name, r.mirror);
      problems.push(...r.problems);
      retry ||= r.retry;
      for (const k of Object.keys(total) as (keyof ChangeCounts)[]) total[k] += r.changes[k];
      if (r.deviceChanges.length) {
        log.info(`vxlan device ${d.vxlan?.device}: ${r.deviceChanges.join(", ")}`, {
          network: name,
        });
      }
      nextOwners.set(name, d.hold ? owners.get(name) ?? new Map() : d.owners);
      const owned = r.mirror?.routes.size ?? 0;
      routes += owned;
      m.routesOwned.set({ network: name }, owned);
      m.nodesSynced.set({ network: name }, d.nodesSynced);
      m.nodesSkipped.set({ network: name }, d.nodesSkipped);
      if (d.net.mode === "vxlan") {
        m.fdbEntries.set({ network: name }, r.mirror?.fdb.size ?? 0);
        m.neighbours.set({ network: name }, r.mirror?.neighs.size ?? 0);
      }
    }
    owners = nextOwners;
    report(problems);
    const durationMs = performance.now() - started;
    const ok = !retry;
    m.syncDuration.observe({ pass }, durationMs / 1000);
    m.syncs.inc({ pass, result: ok ? "ok" : "error" });
    m.changes.inc({ object: "route", op: "add" }, total.routesAdded);
    m.changes.inc({ object: "route", op: "replace" }, total.routesReplaced);
    m.changes.inc({ object: "route", op: "delete" }, total.routesDeleted);
    m.changes.inc({ object: "fdb", op: "set" }, total.fdbChanged);
    m.changes.inc({ object: "neighbour", op: "set" }, total.neighChanged);
    m.lastSync.set({}, Date.now() / 1000);
    status.passes++;
    status.lastPassAt = Date.now();
    status.lastPassOk = ok;
    status.nodes = nodes.size;
    status.routes = routes;
    const summary: SyncSummary = {
      pass,
      durationMs: Math.round(durationMs * 1000) / 1000,
      computeMs: Math.round(computeMs * 1000) / 1000,
      computed: touched ? "changes" : "all",
      nodes: nodes.size,
      routes,
      changes: total,
      problems: active.size,
      ok,
    };
    const changed = total.routesAdded + total.routesReplaced + total.routesDeleted +
      total.fdbChanged + total.neighChanged;
    if (changed || full) log.info(`${pass} sync`, { ...summary });
    else log.debug(`${pass} sync`, { ...summary });
    if (retry) scheduleRetry();
    else retryDelay = 0;
    return summary;
  }

  return {
    replaceNodes(list) {
      const seen = new Set<string>();
      let changed = false;
      for (const n of list) {
        seen.add(n.name);
        const old = nodes.get(n.name);
        // Keep the old object when nothing changed: computed results are cached per object.
        if (old && sameNode(old, n)) continue;
        nodes.set(n.name, n);
        dirty.add(n.name);
        changed = true;
      }
      for (const name of [...nodes.keys()]) {
        if (!seen.has(name)) {
          nodes.delete(name);
          dirty.add(name);
          changed = true;
        }
      }
      m.nodesSeen.set({}, nodes.size);
      if (changed) schedule();
    },
    upsertNode(node) {
      const old = nodes.get(node.name);
      if (old && sameNode(old, node)) return;
      nodes.set(node.name, node);
      dirty.add(node.name);
      m.nodesSeen.set({}, nodes.size);
      schedule();
    },
    deleteNode(name) {
      if (!nodes.delete(name)) return;
      dirty.add(name);
      m.nodesSeen.set({}, nodes.size);
      schedule();
    },
    markSourceSynced() {
      if (sourceSynced) return;
      sourceSynced = true;
      status.sourceSynced = true;
      needFull = true;
      schedule();
    },
    syncNow,
    status,
    stop() {
      stopped = true;
      if (pending !== undefined) clearTimeout(pending);
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      if (resyncTimer !== undefined) clearInterval(resyncTimer);
      if (addressTimer !== undefined) clearInterval(addressTimer);
      pending = retryTimer = undefined;
    },
  };
}
