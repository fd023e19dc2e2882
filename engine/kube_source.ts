/**
 * Where Kubernetes mode gets its objects and sends its reports: the node
 * agent that runs the engine in its own process when it hands over its
 * watch caches and report queue ({@link NodeAgentKube}: the NRI plugin),
 * else the node daemon over its unix socket when one listens (answers from
 * watch caches, writes the pod's status itself, retrying), else the API
 * server directly with the lean client. Every API call of an invocation
 * fits in one budget (`apiTimeout`); what does not fit fails with CNI
 * code 11.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Logger } from "../pkg/log.ts";
import { createKubeClient, type KubeClient, retryTransient } from "../kube/client.ts";
import type { PodArgs } from "../kube/delegate.ts";
import { isTransient, KubeTransportError } from "../kube/errors.ts";
import { resolveConnection } from "../kube/kubeconfig.ts";
import { fetchPod } from "../kube/networks.ts";
import { type Pod, podPath } from "../kube/objects.ts";
import { type NodeCache, type ReadSource, servesPath } from "../kube/node_cache.ts";
import type { ReportQueue } from "../kube/report_queue.ts";
import {
  connectNodeDaemon,
  type DaemonConnection,
  daemonKubeClient,
} from "../daemonclient/client.ts";
import {
  listSpool,
  readSpooled,
  removeSpooled,
  type SpooledReport,
  spoolReport,
  writeReport,
} from "../kube/report_spool.ts";
import type { KubeMetaSettings } from "./kube_config.ts";

/** Objects in, reports out, for one invocation. */
export interface KubeSource {
  kind: "agent" | "daemon" | "direct";
  /** A client for network resolution; every call bounded by the invocation's budget. */
  client: KubeClient;
  /** The pod (undefined: it does not exist); PodUidMismatchError when it was replaced. */
  fetchPod(pod: PodArgs): Promise<Pod | undefined>;
  /** Records what ADD attached on the pod; never throws (a failed write is spooled and logged). */
  report(report: SpooledReport): Promise<void>;
  close(): void;
}

/** Longest wait for the daemon to take a report. */
const HANDOFF_TIMEOUT_MS = 2_000;
/** Spooled reports a meta-CNI writes after its own, at most. */
const DRAIN_AT_MOST = 3;

function timeoutError(method: string, path: string, budgetMs: number): KubeTransportError {
  return new KubeTransportError(
    "timeout",
    `${method} ${path}: the API budget of ${budgetMs} ms (apiTimeout) is used up`,
    method,
    path,
  );
}

/**
 * `inner` with every request's deadline cut to what is left of the budget
 * ending at `end`, and GETs retried on transient failures within it.
 */
export function budgetedClient(inner: KubeClient, end: number, budgetMs: number): KubeClient {
  const left = (method: string, path: string, ms?: number): number => {
    const rest = end - Date.now();
    if (rest <= 0) throw timeoutError(method, path, budgetMs);
    return Math.min(ms ?? inner.timeoutMs, rest);
  };
  const wrap = <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return run();
    } catch (err) {
      return Promise.reject(err);
    }
  };
  return {
    ...inner,
    // Reads are retried while the budget lasts when the failure may pass (5xx, 429, no answer).
    get: <T>(path: string, o?: { timeoutMs?: number }) =>
      wrap(() =>
        retryTransient(
          () => inner.get<T>(path, { ...o, timeoutMs: left("GET", path, o?.timeoutMs) }),
          { deadlineMs: Math.max(1, end - Date.now()) },
        )
      ),
    create: <T>(path: string, body: unknown, o?: { timeoutMs?: number }) =>
      wrap(() =>
        inner.create<T>(path, body, { ...o, timeoutMs: left("POST", path, o?.timeoutMs) })
      ),
    request: <T>(method: string, path: string, body?: unknown, o?: { timeoutMs?: number }) =>
      wrap(() =>
        inner.request<T>(method, path, body, {
          ...o,
          timeoutMs: left(method, path, o?.timeoutMs),
        })
      ),
  };
}

/** Reads the invocation's pod through `client`, retrying transient failures until `end`. */
function podFetcher(client: KubeClient, end: number): KubeSource["fetchPod"] {
  return (p) => fetchPod(client, p, { deadlineMs: Math.max(1, end - Date.now()) });
}

/** The direct API client of the conf's kubeconfig (or the in-cluster account). */
async function directClient(s: KubeMetaSettings): Promise<KubeClient> {
  let conn;
  try {
    conn = await resolveConnection(s.kube.kubeconfig);
  } catch (err) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, (err as Error).message);
  }
  if (!conn) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `Kubernetes mode needs "kubeconfig" (or to run in a cluster) when no node daemon answers`,
    );
  }
  return createKubeClient(conn, { timeoutMs: s.kube.apiTimeoutMs, userAgent: "hydra-cni" });
}

/**
 * What a node agent running the engine in its own process lends it: its
 * watch caches (reads of pods, NADs and the Node), its report queue (the
 * pod's status is written after the ADD answers, retried, spooled first)
 * and its API client for everything else.
 */
export interface NodeAgentKube {
  cache: NodeCache;
  reports: ReportQueue;
  client: KubeClient;
  /** Told where each cached kind of read was served from, for metrics. */
  onRead?: (source: ReadSource) => void;
}

/**
 * The agent's client: reads the watch caches serve go there (the pod with
 * the UID the runtime named), the rest to its API client.
 */
function agentClient(agent: NodeAgentKube, budgetMs: number, pod: PodArgs | undefined): KubeClient {
  const podAt = pod?.uid ? podPath(pod.namespace, pod.name) : undefined;
  return {
    ...agent.client,
    timeoutMs: budgetMs,
    async get<T>(path: string, o?: { timeoutMs?: number }): Promise<T> {
      if (!servesPath(path)) return await agent.client.get<T>(path, o);
      const uid = path === podAt ? pod!.uid : undefined;
      const read = await agent.cache.get(path, { uid, timeoutMs: o?.timeoutMs ?? budgetMs });
      agent.onRead?.(read.source);
      return read.body as T;
    },
    // The agent's client outlives the invocation.
    close: () => {},
  };
}

/** The source over a node agent's caches and queue (see {@link NodeAgentKube}). */
function agentSource(
  agent: NodeAgentKube,
  pod: PodArgs | undefined,
  end: number,
  budget: number,
  log: Logger,
): KubeSource {
  const client = budgetedClient(agentClient(agent, budget, pod), end, budget);
  return {
    kind: "agent",
    client,
    fetchPod: podFetcher(client, end),
    async report(r) {
      try {
        await agent.reports.enqueue(r);
      } catch (err) {
        log.error("the pod's network status could be neither queued nor spooled; it is lost", {
          error: err,
          pod: `${r.pod.namespace}/${r.pod.name}`,
        });
      }
    },
    close: () => {},
  };
}

/**
 * Opens the source for one invocation: the node agent's caches when `agent`
 * is given, else the daemon when it answers at `settings.daemonSocket`, else
 * the API server. `startedAt` starts the API budget.
 */
export async function openKubeSource(
  s: KubeMetaSettings,
  pod: PodArgs | undefined,
  spoolDir: string,
  log: Logger,
  startedAt: number = Date.now(),
  agent?: NodeAgentKube,
): Promise<KubeSource> {
  const budget = s.kube.apiTimeoutMs;
  const end = startedAt + budget;
  if (agent) return agentSource(agent, pod, end, budget, log);
  let conn: DaemonConnection | undefined;
  if (s.daemonSocket) {
    try {
      conn = await connectNodeDaemon(s.daemonSocket);
    } catch (err) {
      log.warn("node daemon socket unusable; asking the API server", { error: err });
    }
  }
  if (conn) {
    const daemon = conn;
    const expectPod = pod?.uid
      ? { path: podPath(pod.namespace, pod.name), uid: pod.uid }
      : undefined;
    const client = budgetedClient(daemonKubeClient(daemon, budget, { expectPod }), end, budget);
    return {
      kind: "daemon",
      client,
      fetchPod: podFetcher(client, end),
      async report(r) {
        try {
          const res = await daemon.call(
            { op: "report", pod: r.pod, reports: r.reports, events: r.events },
            HANDOFF_TIMEOUT_MS,
          );
          if (res.ok) return;
          log.warn("node daemon refused the status report; spooling it", { error: res.message });
        } catch (err) {
          log.warn("node daemon did not take the status report; spooling it", { error: err });
        }
        await spoolOrLog(spoolDir, r, log);
      },
      close: () => daemon.close(),
    };
  }
  const direct = await directClient(s);
  const client = budgetedClient(direct, end, budget);
  return {
    kind: "direct",
    client,
    fetchPod: podFetcher(client, end),
    async report(r) {
      const reportEnd = Date.now() + budget;
      try {
        const outcome = await writeReport(direct, r, budget);
        if (outcome !== "written") {
          log.info("pod status not written", { outcome, pod: `${r.pod.namespace}/${r.pod.name}` });
        }
      } catch (err) {
        log.error("writing the pod's network status failed; spooled for a retry", {
          error: err,
          transient: isTransient(err),
          pod: `${r.pod.namespace}/${r.pod.name}`,
        });
        await spoolOrLog(spoolDir, r, log);
        return;
      }
      await drainSpool(direct, spoolDir, reportEnd, log);
    },
    close: () => direct.close(),
  };
}

async function spoolOrLog(dir: string, r: SpooledReport, log: Logger): Promise<void> {
  try {
    await spoolReport(dir, r);
  } catch (err) {
    log.error("cannot spool the pod status report; it is lost", { error: err, dir });
  }
}

/** Writes a few spooled reports while the budget lasts (the API answered just now). */
async function drainSpool(client: KubeClient, dir: string, end: number, log: Logger) {
  let files: string[];
  try {
    files = await listSpool(dir);
  } catch {
    return;
  }
  for (const file of files.slice(0, DRAIN_AT_MOST)) {
    const left = end - Date.now();
    if (left <= 0) return;
    const r = await readSpooled(file);
    if (!r) continue;
    try {
      await writeReport(client, r, left);
      await removeSpooled(file);
    } catch (err) {
      log.debug("spooled report still not written", { file, error: err });
      return;
    }
  }
}
