/**
 * The reclaim controller of hydra's cluster-wide IPAM: watches pods,
 * nodes, StatefulSets, AddressBlocks and AddressPools, and while it leads
 * (see leader.ts) scans every block every `intervalMs` and soon after a
 * pod or node is deleted:
 *
 * - frees what judge.ts says to free, after the API server confirmed the
 *   pod is gone (a watch cache that lags must never free a live pod's
 *   address); StatefulSet holds are marked and aged the same way;
 * - frees a node's own gateway address (ipam/pool/node_owned.ts) once the
 *   API server confirms the node is gone, never while it exists;
 * - releases the blocks of deleted nodes (affinity cleared, so any node
 *   takes them over) and deletes those left empty;
 * - records addresses whereabouts still holds in hydra's blocks (a late
 *   whereabouts allocation during a migration), reporting any that hydra
 *   gave to someone else;
 * - writes each pool's size, allocated and free addresses into its status
 *   and its metrics.
 *
 * Every write is a compare-and-swap on the block: a node allocating at the
 * same moment wins or loses cleanly, and the controller looks again on its
 * next scan. It never sits on the allocation path.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import type { KubeClient } from "../kube/client.ts";
import { isNotFound } from "../kube/errors.ts";
import { type Informer, startInformer } from "../kube/informer.ts";
import { type Node, nodePath, type Pod, podPath } from "../kube/objects.ts";
import {
  type Block,
  BlockNonsenseError,
  blockObject,
  copyBlock,
  parseBlock,
} from "../ipam/pool/block.ts";
import {
  type AddressBlock,
  type AddressPool,
  type Allocation,
  blockPath,
  poolPath,
} from "../ipam/pool/objects.ts";
import { deadlineIn, deleteBlock, updateBlock } from "../ipam/pool/store.ts";
import { readWhereaboutsHolds } from "../ipam/pool/whereabouts.ts";
import { planHoldImports } from "./whereabouts_sync.ts";
import { countPool, type PoolCounts } from "./counts.ts";
import { type Facts, judge, type PodFacts, type Verdict } from "./judge.ts";

/** A pod as the controller keeps it. */
interface SlimPod {
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
  };
}

/** apps/v1 StatefulSet, the fields used. */
interface StatefulSet {
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    deletionTimestamp?: string;
  };
  spec?: { replicas?: number; ordinals?: { start?: number } };
}

/** What the controller reports to its metrics. */
export interface ControllerMetrics {
  reclaimed(pool: string, reason: string): void;
  pool(name: string, counts: PoolCounts): void;
  forgetPools(keep: Set<string>): void;
  scan(result: "ok" | "error", seconds: number): void;
  malformed(count: number): void;
  whereaboutsConflict(): void;
}

/** Options of {@link startController}. */
export interface ControllerOptions {
  client: KubeClient;
  log: Logger;
  metrics: ControllerMetrics;
  isLeader: () => boolean;
  /** Between scans; 30 s. */
  intervalMs?: number;
  /** Allocations younger than this are left alone; 30 s. */
  graceMs?: number;
  /** StatefulSet hold once the ordinal is unwanted; 5 min. */
  holdMs?: number;
  /** Deadline of each API call; 10 s. */
  apiTimeoutMs?: number;
}

/** A running controller. */
export interface Controller {
  /** Resolves once every watch cache has listed. */
  synced: Promise<void>;
  hasSynced(): boolean;
  /** Runs a scan now (if leading); resolves when it is done. */
  scanNow(): Promise<void>;
  stop(): Promise<void>;
}

function slimPod(p: Pod): SlimPod {
  const m = p.metadata;
  return {
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      ownerReferences: (m.ownerReferences as SlimPod["metadata"]["ownerReferences"] | undefined)
        ?.map((o) => ({ kind: o.kind, name: o.name, controller: o.controller })),
    },
  };
}

function stsOf(p: SlimPod): string | undefined {
  return p.metadata.ownerReferences?.find((o) => o.kind === "StatefulSet" && o.controller)?.name;
}

/** Starts the watches and the scan loop. */
export function startController(opts: ControllerOptions): Controller {
  const { client, log, metrics } = opts;
  const intervalMs = opts.intervalMs ?? 30_000;
  const apiTimeoutMs = opts.apiTimeoutMs ?? 10_000;
  let soon: ReturnType<typeof setTimeout> | undefined;
  const later = () => {
    if (soon === undefined) {
      soon = setTimeout(() => {
        soon = undefined;
        void scanNow();
      }, 2_000);
    }
  };
  const onErr = (what: string) => (err: unknown) =>
    log.warn("watch failed; retrying", { collection: what, error: err });
  const pods: Informer<SlimPod> = startInformer<SlimPod>(client, podPath(), {
    transform: (p) => slimPod(p as unknown as Pod),
    onEvent: (type) => type === "DELETED" && later(),
    onError: onErr("pods"),
  });
  const nodes = startInformer<Node>(client, nodePath(), {
    transform: (n) => ({
      metadata: { name: n.metadata.name, resourceVersion: n.metadata.resourceVersion },
    }),
    onEvent: (type) => type === "DELETED" && later(),
    onError: onErr("nodes"),
  });
  const sets = startInformer<StatefulSet>(client, "/apis/apps/v1/statefulsets", {
    transform: (s) => ({
      metadata: {
        name: s.metadata.name,
        namespace: s.metadata.namespace,
        resourceVersion: s.metadata.resourceVersion,
      },
      spec: { replicas: s.spec?.replicas, ordinals: s.spec?.ordinals },
    }),
    onError: onErr("statefulsets"),
  });
  const blocks = startInformer<AddressBlock>(client, blockPath(), {
    onError: onErr("addressblocks"),
  });
  const pools = startInformer<AddressPool>(client, poolPath(), { onError: onErr("addresspools") });
  const informers = [pods, nodes, sets, blocks, pools] as Informer<
    { metadata: { name: string } }
  >[];
  const synced = Promise.all(informers.map((i) => i.synced)).then(() => {});
  const malformedSeen = new Set<string>();

  /** Reads the pod named `ref` from the API server: undefined when it is not there. */
  async function livePod(ref: string): Promise<PodFacts | undefined> {
    const [ns, name] = [ref.slice(0, ref.indexOf("/")), ref.slice(ref.indexOf("/") + 1)];
    try {
      const p = await client.get<Pod>(podPath(ns, name), { timeoutMs: apiTimeoutMs });
      return { uid: p.metadata.uid ?? "", statefulSet: stsOf(slimPod(p)) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** True when the API server says there is no node `name` (a watch cache may lag). */
  async function nodeGone(name: string): Promise<boolean> {
    return await client.get(nodePath(name), { timeoutMs: apiTimeoutMs }).then(
      () => false,
      (err) => {
        if (isNotFound(err)) return true;
        throw err;
      },
    );
  }

  /**
   * True when the API server says what the allocation was kept for is gone:
   * its node (a node's own gateway), else its pod: no pod of its name, or
   * (unless `byName`) one with another UID.
   */
  async function confirmedGone(a: Allocation, check: "uid" | "name" | "node"): Promise<boolean> {
    if (check === "node") return a.node ? await nodeGone(a.node) : false;
    const byName = check === "name";
    if (!a.pod || a.pod.indexOf("/") <= 0) return true;
    const p = await livePod(a.pod);
    if (!p) return true;
    if (byName || !a.podUID) return false;
    return p.uid !== a.podUID;
  }

  /** Whether a verdict rests on a pod or node being gone, and how to ask (UID, name, node). */
  function absenceCheck(a: Allocation, v: Verdict): "uid" | "name" | "node" | undefined {
    if (v.action === "keep") return undefined;
    if (v.action === "update") return a.releasedAt ? undefined : "uid";
    if (v.reason === "superseded") return undefined;
    if (v.reason === "node-gone") return "node";
    return v.reason === "pod-gone" ? "uid" : "name";
  }

  function facts(parsed: Block[]): Facts {
    const byUid = new Set<string>();
    const byName = new Map<string, PodFacts>();
    for (const p of pods.list()) {
      if (p.metadata.uid) byUid.add(p.metadata.uid);
      byName.set(`${p.metadata.namespace}/${p.metadata.name}`, {
        uid: p.metadata.uid ?? "",
        statefulSet: stsOf(p),
      });
    }
    const newest = new Map<string, string>();
    const twinKey = (a: Allocation) => `${a.podUID}|${a.interface}|${a.pool}`;
    for (const b of parsed) {
      for (const a of b.allocations.values()) {
        if (a.source === "whereabouts" || !a.podUID || !a.time) continue;
        const k = twinKey(a);
        const cur = newest.get(k);
        if (!cur || Date.parse(a.time) > Date.parse(cur)) newest.set(k, a.time);
      }
    }
    return {
      podWithUid: (uid) => byUid.has(uid),
      podNamed: (ref) => byName.get(ref),
      statefulSetWants(ns, name, ordinal) {
        const s = sets.get(ns, name);
        if (!s || s.metadata.deletionTimestamp) return false;
        const start = s.spec?.ordinals?.start ?? 0;
        return ordinal >= start && ordinal < start + (s.spec?.replicas ?? 1);
      },
      newerTwin(a) {
        if (!a.podUID || !a.time) return undefined;
        const t = newest.get(twinKey(a));
        return t && Date.parse(t) > Date.parse(a.time) ? t : undefined;
      },
      nodeExists: (name) => nodes.get(undefined, name) !== undefined,
    };
  }

  /** Parses every cached block; malformed ones are counted and logged once each. */
  function parsedBlocks(): Block[] {
    const out: Block[] = [];
    let bad = 0;
    for (const obj of blocks.list()) {
      try {
        out.push(parseBlock(obj));
      } catch (err) {
        if (!(err instanceof BlockNonsenseError)) throw err;
        bad++;
        if (!malformedSeen.has(err.block)) {
          log.error("malformed address block left alone", { error: err });
        }
        malformedSeen.add(err.block);
      }
    }
    metrics.malformed(bad);
    return out;
  }

  /** Applies the verdicts on one block (confirming absences first); one CAS write. */
  async function reclaimBlock(
    b: Block,
    verdicts: [number, Verdict][],
    orphan: boolean,
  ): Promise<void> {
    const draft = copyBlock(b);
    const freed: [Allocation, string][] = [];
    let updated = 0;
    for (const [offset, v] of verdicts) {
      const a = b.allocations.get(offset)!;
      const check = absenceCheck(a, v);
      if (v.action === "keep" || (check && !(await confirmedGone(a, check)))) continue;
      if (v.action === "update") {
        draft.allocations.set(offset, v.allocation);
        updated++;
      } else {
        draft.allocations.delete(offset);
        freed.push([a, v.reason]);
      }
    }
    if (orphan) draft.node = "";
    if (freed.length === 0 && updated === 0 && !orphan) return;
    const d = deadlineIn(apiTimeoutMs);
    const report = () => {
      for (const [a, why] of freed) {
        metrics.reclaimed(a.pool ?? "whereabouts", why);
        log.info("address reclaimed", {
          ip: a.ip,
          pod: a.pod,
          ...(why === "node-gone" ? { node: a.node } : {}),
          podUID: a.podUID,
          reason: why,
          block: b.name,
        });
      }
    };
    if (draft.allocations.size === 0 && draft.node === "" && b.resourceVersion) {
      if (await deleteBlock(client, b.name, b.resourceVersion, d)) {
        report();
        log.info("deleted an empty block of a deleted node", { block: b.name });
      }
      return;
    }
    if (await updateBlock(client, blockObject(draft), d) === "conflict") return;
    report();
    if (orphan) log.info("released the block of a deleted node", { block: b.name, node: b.node });
  }

  /** Records whereabouts' holds that hydra's blocks lack (only for pods that exist). */
  async function importWhereabouts(parsed: Block[]): Promise<void> {
    const holds = await readWhereaboutsHolds(client, deadlineIn(apiTimeoutMs)).catch((err) => {
      log.warn("cannot read whereabouts IPPools", { error: err });
      return undefined;
    });
    if (!holds || holds.length === 0) return;
    const live = new Set(pods.list().map((p) => `${p.metadata.namespace}/${p.metadata.name}`));
    const plan = planHoldImports(holds, parsed, live, new Date());
    for (const c of plan.conflicts) {
      metrics.whereaboutsConflict();
      log.error("an address whereabouts holds was given to another pod by hydra", { ...c });
    }
    for (const draft of plan.drafts) {
      await updateBlock(client, blockObject(draft), deadlineIn(apiTimeoutMs));
    }
  }

  /** Writes changed pool counts and refreshes the pool metrics. */
  async function writeCounts(parsed: Block[]): Promise<void> {
    const byNetwork = new Map<string, Block[]>();
    for (const b of parsed) byNetwork.set(b.network, [...(byNetwork.get(b.network) ?? []), b]);
    const seen = new Set<string>();
    for (const p of pools.list()) {
      const counts = countPool(p, byNetwork.get(p.spec?.network ?? "") ?? []);
      if (!counts) continue;
      seen.add(p.metadata.name);
      metrics.pool(p.metadata.name, counts);
      const s = p.status ?? {};
      if (
        s.size === counts.size && s.allocated === counts.allocated && s.free === counts.free &&
        s.blocks === counts.blocks
      ) {
        continue;
      }
      const status = { ...counts, updated: new Date().toISOString().replace(/\.\d+Z$/, "Z") };
      await client.patch(poolPath(p.metadata.name, "status"), { status }, "merge", {
        timeoutMs: apiTimeoutMs,
      })
        .catch((err) =>
          log.warn("cannot write pool status", { pool: p.metadata.name, error: err })
        );
    }
    metrics.forgetPools(seen);
  }

  async function scan(): Promise<void> {
    const parsed = parsedBlocks();
    const f = facts(parsed);
    const now = Date.now();
    const judgeOpts = { now, graceMs: opts.graceMs ?? 30_000, holdMs: opts.holdMs ?? 300_000 };
    for (const b of parsed) {
      if (!opts.isLeader()) return;
      const verdicts = [...b.allocations].map(([o, a]) =>
        [o, judge(a, f, judgeOpts)] as [number, Verdict]
      );
      let orphan = false;
      if (b.node !== "" && !nodes.get(undefined, b.node)) orphan = await nodeGone(b.node);
      if (orphan || verdicts.some(([, v]) => v.action !== "keep")) {
        await reclaimBlock(b, verdicts, orphan);
      }
    }
    if (!opts.isLeader()) return;
    await importWhereabouts(parsed);
    await writeCounts(parsedBlocks());
  }

  let running: Promise<void> | undefined;
  let again = false;
  async function scanNow(): Promise<void> {
    if (running) {
      again = true;
      return await running;
    }
    running = (async () => {
      do {
        again = false;
        if (!opts.isLeader() || !informers.every((i) => i.hasSynced())) return;
        const t0 = performance.now();
        try {
          await scan();
          metrics.scan("ok", (performance.now() - t0) / 1000);
        } catch (err) {
          metrics.scan("error", (performance.now() - t0) / 1000);
          log.warn("scan failed; next one retries", { error: err });
        }
      } while (again);
    })();
    try {
      await running;
    } finally {
      running = undefined;
    }
  }

  const timer = setInterval(() => void scanNow(), intervalMs);
  synced.then(() => void scanNow(), () => {});
  return {
    synced,
    hasSynced: () => informers.every((i) => i.hasSynced()),
    scanNow,
    async stop() {
      clearInterval(timer);
      if (soon !== undefined) clearTimeout(soon);
      await running;
      await Promise.all(informers.map((i) => i.stop()));
    },
  };
}
