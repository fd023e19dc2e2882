/**
 * The policy agent of one node: watches MultiNetworkPolicies, pods,
 * namespaces and NetworkAttachmentDefinitions, follows the attachments on
 * this node, and keeps every local pod's policy table what the compiler
 * says.
 *
 * Work happens in passes: any change marks the agent dirty, and a pass
 * (a few milliseconds later, coalescing bursts) reads the attachments,
 * compiles every local pod's rules and lets the enforcer write the tables
 * that changed. Passes never overlap; changes during one start the next.
 *
 * Start and restart: nothing is written until every watch has listed, so
 * the tables left by a previous run stay in force meanwhile; the first
 * pass then checks every local pod (writing, or removing a table no longer
 * wanted) and only after it is the agent ready. Stopping leaves every
 * table in place.
 *
 * Failures: a pod whose table could not be written as computed is retried
 * with backoff (1 s doubling to 30 s); every `resyncMs` all tables are
 * written again, repairing anything changed behind the agent's back.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import type { KubeClient } from "../kube/client.ts";
import { type Informer, startInformer } from "../kube/informer.ts";
import { nadPath, type Pod, podPath } from "../kube/objects.ts";
import type { KubeObject } from "../kube/watch.ts";
import type { AttachmentSource, PodAttachment } from "./attachments.ts";
import type { PolicyBook } from "./book.ts";
import { type CompileInput, compilePod, newMemo } from "./compile.ts";
import { createEnforcer, type DesiredTable, type Enforcer, type TableOutcome } from "./enforcer.ts";
import type { EventSink } from "./events.ts";
import type { PolicyMetrics } from "./metrics.ts";
import { isInactive, type PodView, podView, trimPod } from "./pods.ts";
import type { Labels } from "./selector.ts";
import { type MultiNetworkPolicy, multiNetworkPolicyPath } from "./spec.ts";
import { reportPolicies } from "./status.ts";

/** Options of {@link startPolicyAgent}. */
export interface PolicyAgentOptions {
  client: KubeClient;
  nodeName: string;
  source: AttachmentSource;
  book: PolicyBook;
  log: Logger;
  metrics: PolicyMetrics;
  events?: EventSink;
  enforcer?: Enforcer;
  /** Pod namespaces written at once; 32. */
  maxParallel?: number;
  /** Every table written again this often; 300 s. */
  resyncMs?: number;
  /** Wait after a change before a pass (bursts coalesce); 5 ms. */
  settleMs?: number;
}

/** A running agent. */
export interface PolicyAgent {
  /** Resolves after the first pass (every watch listed, every local pod checked). */
  readonly ready: Promise<void>;
  isReady(): boolean;
  /** Stops watching; every table stays in place. */
  stop(): Promise<void>;
}

interface Namespace extends KubeObject {
  metadata: { name: string; labels?: Record<string, string>; [k: string]: unknown };
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** What of a pod the compiler reads, to skip pod changes that do not matter. */
function relevant(pod: Pod): string {
  return JSON.stringify([
    pod.metadata.uid,
    pod.metadata.labels,
    pod.metadata.annotations,
    pod.spec,
    pod.status?.phase,
  ]);
}

/** Starts watching and enforcing; see the module doc. */
export function startPolicyAgent(opts: PolicyAgentOptions): PolicyAgent {
  const { client, log, metrics, book } = opts;
  const enforcer = opts.enforcer ?? createEnforcer({ maxParallel: opts.maxParallel });
  let changedAt: number | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  let ready = false;
  let retryMs = 0;
  let markReady!: () => void;
  const readyPromise = new Promise<void>((resolve) => markReady = resolve);

  const schedule = (delayMs = opts.settleMs ?? 5) => {
    changedAt ??= Date.now();
    if (stopped || running || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      running = loop().finally(() => running = undefined);
    }, delayMs);
  };
  const onError = (what: string) => (err: unknown) =>
    log.warn("watch failed; retrying", { collection: what, error: message(err) });

  const pods: Informer<Pod> = startInformer<Pod>(client, podPath(), {
    transform: trimPod,
    onEvent: (type, pod, old) => {
      if (type === "MODIFIED" && old && relevant(old) === relevant(pod)) return;
      schedule();
    },
    onError: onError("pods"),
  });
  const namespaces: Informer<Namespace> = startInformer<Namespace>(client, "/api/v1/namespaces", {
    transform: (ns) => ({
      metadata: {
        name: ns.metadata.name,
        labels: ns.metadata.labels,
        resourceVersion: ns.metadata.resourceVersion,
      },
    }),
    onEvent: () => schedule(),
    onError: onError("namespaces"),
  });
  const policies: Informer<MultiNetworkPolicy> = startInformer<MultiNetworkPolicy>(
    client,
    multiNetworkPolicyPath(),
    {
      onEvent: (type, obj) => {
        delete obj.metadata.managedFields;
        if (type === "DELETED") {
          book.remove(obj);
          opts.events?.forget({ kind: "MultiNetworkPolicy", ...obj.metadata });
        } else book.update(obj);
        schedule();
      },
      onError: onError("multi-networkpolicies"),
    },
  );
  const nads: Informer<KubeObject> = startInformer<KubeObject>(client, nadPath(), {
    transform: (n) => ({
      metadata: {
        name: n.metadata.name,
        namespace: n.metadata.namespace,
        resourceVersion: n.metadata.resourceVersion,
      },
    }),
    onEvent: () => schedule(),
    onError: onError("network-attachment-definitions"),
  });
  const watch = opts.source.watch(() => schedule());
  const resync = setInterval(() => {
    enforcer.forget();
    schedule(0);
  }, opts.resyncMs ?? 300_000);
  const views = new WeakMap<Pod, PodView>();
  const viewOf = (pod: Pod) => {
    let v = views.get(pod);
    if (!v) views.set(pod, v = podView(pod));
    return v;
  };

  /** The compiler's input and the local pods' views, from the caches and attachments. */
  function inputs(attachments: PodAttachment[]) {
    const local = new Map<string, PodView>();
    for (const a of attachments) {
      const pod = pods.get(a.pod.namespace, a.pod.name);
      if (!pod || isInactive(pod) || (a.pod.uid && pod.metadata.uid !== a.pod.uid)) continue;
      const key = `${a.pod.namespace}/${a.pod.name}`;
      const addresses = new Map(local.get(key)?.addresses ?? []);
      for (const i of a.interfaces) {
        addresses.set(i.network, [...(addresses.get(i.network) ?? []), ...i.addresses]);
      }
      local.set(key, { ...viewOf(pod), addresses });
    }
    const views: PodView[] = [];
    for (const pod of pods.list()) {
      if (isInactive(pod)) continue;
      views.push(local.get(`${pod.metadata.namespace}/${pod.metadata.name}`) ?? viewOf(pod));
    }
    const input: CompileInput = {
      policies: book.entries().map((e) => e.effective),
      pods: views,
      namespaceLabels: (ns): Labels | undefined =>
        namespaces.get(undefined, ns)?.metadata.labels ??
          (namespaces.get(undefined, ns) ? {} : undefined),
    };
    return { input, local };
  }

  async function pass(): Promise<TableOutcome[]> {
    const since = changedAt ?? Date.now();
    changedAt = undefined;
    const attachments = await opts.source.list();
    const { input, local } = inputs(attachments);
    const memo = newMemo();
    const desired: DesiredTable[] = [];
    for (const a of attachments) {
      const pod = `${a.pod.namespace}/${a.pod.name}`;
      const view = local.get(pod);
      if (view) desired.push({ netns: a.netns, pod, rules: compilePod(view, a, input, memo) });
    }
    const outcomes = await enforcer.sync(desired);
    metrics.passes.inc();
    record(outcomes, since);
    reportPolicies(book.entries(), {
      events: opts.events,
      metrics,
      nadExists: nads.hasSynced()
        ? (net) => nads.get(net.split("/")[0], net.split("/")[1]) !== undefined
        : undefined,
    });
    return outcomes;
  }

  function record(outcomes: TableOutcome[], since: number) {
    for (const o of outcomes) {
      const seconds = Math.max(0, o.at - since) / 1000;
      const fields = { pod: o.pod, netns: o.netns, state: o.state, at: o.at, since };
      if (o.state === "applied" || o.state === "removed") {
        metrics.applySeconds.observe({ result: "ok" }, seconds);
        log.debug("pod table written", {
          ...fields,
          rules: o.state === "applied" ? o.rules : 0,
          ms: Math.round(seconds * 1000),
        });
      } else if (o.state === "fail_closed" || o.state === "failed") {
        metrics.applySeconds.observe({ result: o.state }, seconds);
        metrics.errors.inc({ outcome: o.state });
        log.error("pod table not written as computed", { ...fields, error: o.error });
        const [namespace, name] = o.pod.split("/");
        opts.events?.record(
          { apiVersion: "v1", kind: "Pod", namespace, name },
          "Warning",
          "PolicyNotEnforced",
          o.state === "fail_closed"
            ? `hydra: the pod's network policy rules could not be written (${o.error}); ` +
              "its policed interfaces admit only replies until they can be"
            : `hydra: the pod's network policy rules could not be written: ${o.error}`,
        );
      }
    }
    const totals = enforcer.totals();
    metrics.rules.set({}, totals.rules);
    metrics.pods.set({ state: "enforced" }, totals.enforced);
    metrics.pods.set({ state: "fail_closed" }, totals.failClosed);
  }

  async function loop(): Promise<void> {
    await Promise.all([pods.synced, namespaces.synced, policies.synced]);
    while (!stopped && changedAt !== undefined) {
      let outcomes: TableOutcome[] = [];
      try {
        outcomes = await pass();
      } catch (err) {
        log.error("policy pass failed", { error: message(err) });
        outcomes = [{ netns: "", pod: "", at: Date.now(), state: "failed", error: message(err) }];
      }
      if (!ready && !outcomes.some((o) => o.state === "failed" && o.netns === "")) {
        book.prune();
        ready = true;
        metrics.ready.set({}, 1);
        markReady();
        log.info("first pass done: every local pod checked", enforcer.totals());
      }
      const failed = outcomes.some((o) => o.state === "failed" || o.state === "fail_closed");
      retryMs = failed ? Math.min(30_000, Math.max(1_000, retryMs * 2)) : 0;
      if (failed && !stopped) setTimeout(() => schedule(0), retryMs);
    }
  }

  schedule(0);
  return {
    ready: readyPromise,
    isReady: () => ready,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(resync);
      await watch.stop();
      await Promise.all([pods, namespaces, policies, nads].map((i) => i.stop()));
      await running?.catch(() => {});
      await opts.events?.drain();
      await book.flush();
    },
  };
}
