/**
 * Kubernetes mode's API work kept off the runtime's path: the plugin
 * watches this node's pods, every NetworkAttachmentDefinition and its Node
 * (kube/node_cache.ts), and writes each pod's network status from a queue
 * after RunPodSandbox is answered (kube/report_queue.ts), spooled first so
 * a killed plugin loses none. The engine reads from the caches and hands
 * its report to the queue (engine/kube_source.ts, {@link NodeAgentKube}).
 *
 * Why: containerd calls NRI plugins under one lock for all pods, so every
 * millisecond the plugin spends on a pod is waited for by the pods behind
 * it. With the caches a pod's attach asks the API server nothing in the
 * usual case: the pod is cached (or arrives by watch a moment later), its
 * NADs are cached, and the status write happens afterwards.
 *
 * Until the watches have listed, and for objects they do not hold, reads
 * go to the API server as before; a watch that fails (RBAC without
 * list/watch, an outage) is retried and logged, and reads keep working.
 *
 * @module
 */

import { createKubeClient } from "../kube/client.ts";
import { resolveConnection } from "../kube/kubeconfig.ts";
import { startNodeCache } from "../kube/node_cache.ts";
import { startReportQueue } from "../kube/report_queue.ts";
import { spoolDirOf } from "../kube/report_spool.ts";
import type { NodeAgentKube } from "../engine/kube_source.ts";
import type { Logger } from "../pkg/log.ts";
import { DURATION_BUCKETS, type Registry } from "../pkg/metrics.ts";

/** Settings of {@link startKubeCaches}. */
export interface KubeCacheOptions {
  /** Kubeconfig file; undefined: the pod's ServiceAccount (in-cluster). */
  kubeconfig?: string;
  /** This node: the pods and Node watched. */
  nodeName: string;
  /** The plugin's cache dir: reports are spooled under it. */
  cacheDir: string;
  /** Budget of one status write attempt, ms. */
  attemptMs: number;
  /** Longest wait for the pod watch to deliver a pod not cached yet, ms. */
  podWaitMs: number;
  log: Logger;
  registry: Registry;
}

/** The caches and queue, lent to the engine, and their stop. */
export interface KubeCaches {
  kube: NodeAgentKube;
  /** Stops the watches and the queue (after up to `graceMs` of writing; the rest is spooled). */
  stop(graceMs: number): Promise<void>;
}

function cacheMetrics(r: Registry) {
  return {
    reads: r.counter(
      "hydra_nri_api_reads_total",
      "Reads of pods, NADs and the Node during attaches, by where they were served from.",
      ["source"],
    ),
    watchErrors: r.counter(
      "hydra_nri_watch_errors_total",
      "Failed list or watch attempts of the watch caches, by collection.",
      ["collection"],
    ),
    reports: r.counter(
      "hydra_nri_reports_total",
      "Pod status reports settled, by outcome.",
      ["outcome"],
    ),
    synced: r.gauge("hydra_nri_watch_synced", "1 once every watch cache has listed."),
    reportDelay: r.histogram(
      "hydra_nri_report_delay_seconds",
      "Time from an attach to the pod's status settled.",
      [],
      [...DURATION_BUCKETS, 30, 60, 300],
    ),
  };
}

/** Starts the watches and the status queue (queuing what an earlier run spooled). */
export async function startKubeCaches(opts: KubeCacheOptions): Promise<KubeCaches> {
  const conn = await resolveConnection(opts.kubeconfig);
  if (!conn) throw new Error("Kubernetes mode needs API access (--kubeconfig or --in-cluster)");
  const client = createKubeClient(conn, { timeoutMs: opts.attemptMs, userAgent: "hydra-nri" });
  const metrics = cacheMetrics(opts.registry);
  const log = opts.log.with({ component: "kube" });
  const cache = startNodeCache(client, {
    nodeName: opts.nodeName,
    podWaitMs: opts.podWaitMs,
    onError: (what, err) => {
      metrics.watchErrors.inc({ collection: what });
      log.warn("watch failed; retrying (reads go to the API server meanwhile)", {
        collection: what,
        error: err,
      });
    },
  });
  cache.synced.then(() => {
    metrics.synced.set({}, 1);
    log.info("watch caches listed", cache.sizes());
    if (!cache.nodeExists()) {
      log.warn("no Node of this name: pods are read from the API server (set --node-name)", {
        node: opts.nodeName,
      });
    }
  }, () => {});
  const reports = startReportQueue(client, {
    log,
    spoolDir: spoolDirOf(opts.cacheDir),
    attemptMs: opts.attemptMs,
    onDone: (outcome, seconds) => {
      metrics.reports.inc({ outcome });
      metrics.reportDelay.observe({}, seconds);
    },
  });
  reports.loadSpool().then(
    (n) => n && log.info("spooled status reports queued", { count: n }),
    (err) => log.error("cannot read the status report spool", { error: err }),
  );
  return {
    kube: { cache, reports, client, onRead: (source) => metrics.reads.inc({ source }) },
    async stop(graceMs) {
      await reports.stop(graceMs);
      await cache.stop();
      client.close();
    },
  };
}
