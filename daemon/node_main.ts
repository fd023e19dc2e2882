/**
 * `hydra daemon`: the node daemon. Keeps watch caches of this node's pods,
 * every NetworkAttachmentDefinition and this node's Node object, serves
 * them to the exec'd meta-CNI and `kube-node` IPAM over a unix socket, and
 * writes the pods' network status for them (retrying, spooling what is
 * left when it stops). Health and Prometheus metrics on `--health-addr`;
 * SIGTERM stops it cleanly.
 *
 * Without it everything still works: the meta-CNI then asks the API server
 * itself, paying a TLS handshake per pod.
 *
 * @module
 */

import { createLogger, type LogFormat, type Logger, type LogLevel } from "../pkg/log.ts";
import { createKubeClient, type KubeClient } from "../kube/client.ts";
import { resolveConnection } from "../kube/kubeconfig.ts";
import {
  type HealthEndpoint,
  type HealthServer,
  type ListenAddress,
  startHealthEndpoint,
} from "../pkg/http.ts";
import { defaultHealthAddr, operationHelp, parseRoleArgs } from "../pkg/operation_flags.ts";
import { addProcessMetrics } from "../pkg/process_metrics.ts";
import { createRegistry, DURATION_BUCKETS, type Registry } from "../pkg/metrics.ts";
import { sweepLeftovers } from "../pkg/fsutil.ts";
import { deferLinkDeletion, settleDeferredDeletions } from "../plugins/link_batch.ts";
import { type NodeCache, type ReadSource, startNodeCache } from "../kube/node_cache.ts";
import { DEFAULT_DAEMON_SOCKET } from "../daemonclient/protocol.ts";
import { type ReportQueue, startReportQueue } from "../kube/report_queue.ts";
import { type NodeServer, serveNodeSocket } from "./node_server.ts";
import { useInProcessDaemon } from "../daemonclient/client.ts";
import { spoolDirOf } from "../kube/report_spool.ts";
import { heapSnapshotsOnSignal } from "../pkg/heap_snapshot.ts";
import { collectedFields, createIdleCollector, type IdleCollector } from "../pkg/idle_gc.ts";
import { createCniExecutor } from "./cni_exec.ts";
import { DEFAULT_META_CACHE_DIR } from "../engine/config.ts";
import { type DaemonHotplug, startDaemonHotplug } from "./node_hotplug.ts";
import { type Pod, podPath } from "../kube/objects.ts";

/** Where reports are spooled by default: under the meta-CNI's default cache dir. */
const DEFAULT_SPOOL_DIR = spoolDirOf(DEFAULT_META_CACHE_DIR);

/** containerd's CRI socket. */
const DEFAULT_CRI_SOCKET = "/run/containerd/containerd.sock";

/** Where the runtime's CNI confs are, unless `--cni-conf-dir` says. */
const DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d";
/** Where plugins that are not built in are, unless `--cni-bin-dir` says. */
const DEFAULT_CNI_BIN_DIR = "/opt/cni/bin";

/** The daemon's options. */
export interface DaemonOptions {
  kubeconfig?: string;
  nodeName: string;
  socket: string;
  /** Health and metrics; undefined to serve none. */
  listen?: ListenAddress;
  spoolDir: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logFile?: string;
  maxInFlight: number;
  maxConnections: number;
  reportWorkers: number;
  apiTimeoutMs: number;
  /** Where SIGUSR2 writes heap snapshots; none when unset. */
  heapSnapshotDir?: string;
  /** The node's CNI conf folders: where `daemonExec` invocations' confs are read. */
  cniConfDirs: string[];
  /** Folders of plugins that are not built in, for the invocations it runs. */
  cniBinDirs: string[];
  /** The uids whose connections are served. */
  allowUids: number[];
  /** Attach and detach networks of running pods as their selection changes. */
  hotplug: boolean;
  /** The meta-CNI's cache folder (its records). */
  cacheDir: string;
  /** The runtime's CRI socket. */
  criSocket: string;
}

/** The help text of `hydra daemon`. */
export const DAEMON_HELP = `Usage: hydra daemon [options]

Serves this node's pods and networks to the meta-CNI from watch caches and
writes their network status.

Options:
  --kubeconfig PATH      API access (default: the in-cluster ServiceAccount)
  --node-name NAME       this node (default: $NODE_NAME, else the host name)
  --socket PATH          unix socket the meta-CNI asks (default ${DEFAULT_DAEMON_SOCKET})
  --spool-dir DIR        unwritten status reports (default ${DEFAULT_SPOOL_DIR})
  --cni-conf-dir DIR     the node's CNI confs: a daemonExec invocation runs the conf
                         of its name found here, never one a caller sends; repeat
                         for more (default ${DEFAULT_CNI_CONF_DIR})
  --cni-bin-dir DIR      plugins that are not built in, for the invocations it runs;
                         repeat or separate with ":" (default ${DEFAULT_CNI_BIN_DIR})
  --allow-uid UID        serve connections of this user too (default: root only);
                         repeatable
  --max-in-flight N      socket requests worked on at once (default 64)
  --max-connections N    open socket connections at most (default 256)
  --report-workers N     concurrent status writes (default 4)
  --api-timeout SECONDS  deadline of each API request (default 5)
  --hotplug on|off       attach and detach networks of running pods that accept it
                         when their networks annotation changes (default
                         $HYDRA_HOTPLUG, else off)
  --cache-dir DIR        the meta-CNI's cacheDir, where its records are
                         (default ${DEFAULT_META_CACHE_DIR})
  --cri-socket PATH      the runtime's CRI socket, for the pods' sandboxes under
                         --hotplug (default ${DEFAULT_CRI_SOCKET})
${operationHelp(defaultHealthAddr("daemon"))}
  --heap-snapshot-dir DIR
                         on SIGUSR2, write a V8 heap snapshot here (for finding
                         where memory goes; off by default)
  -h, --help             show this help
`;

/** A bad command line. */
export class DaemonUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DaemonUsageError";
  }
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!(n > 0)) throw new DaemonUsageError(`--${name} must be a positive number, got "${value}"`);
  return n;
}

/** Parses the command line. */
export function parseDaemonArgs(args: string[], env = Deno.env): DaemonOptions {
  const { values, ops } = parseRoleArgs(
    args,
    {
      kubeconfig: { type: "string" },
      "node-name": { type: "string" },
      socket: { type: "string" },
      "spool-dir": { type: "string" },
      "max-in-flight": { type: "string" },
      "max-connections": { type: "string" },
      "cni-conf-dir": { type: "string", multiple: true },
      "cni-bin-dir": { type: "string", multiple: true },
      "allow-uid": { type: "string", multiple: true },
      "report-workers": { type: "string" },
      "api-timeout": { type: "string" },
      hotplug: { type: "string" },
      "cache-dir": { type: "string" },
      "cri-socket": { type: "string" },
      "heap-snapshot-dir": { type: "string" },
    },
    defaultHealthAddr("daemon"),
    (message) => new DaemonUsageError(message),
  );
  const nodeName = values["node-name"] || env.get("NODE_NAME") || Deno.hostname();
  const socket = values.socket ?? DEFAULT_DAEMON_SOCKET;
  if (!socket.startsWith("/")) throw new DaemonUsageError(`--socket must be an absolute path`);
  const dirs = (flag: string, given: string[] | undefined, fallback: string) =>
    (given ?? [fallback]).flatMap((v) => v.split(":")).filter((v) => v !== "").map((v) => {
      if (!v.startsWith("/")) throw new DaemonUsageError(`--${flag} must be an absolute path`);
      return v;
    });
  const allowUids = [
    0,
    ...(values["allow-uid"] ?? []).map((v) => {
      if (!/^\d+$/.test(v)) {
        throw new DaemonUsageError(`--allow-uid must be a numeric uid, got "${v}"`);
      }
      return Number(v);
    }),
  ];
  const hotplug = values.hotplug ?? env.get("HYDRA_HOTPLUG") ?? "off";
  if (!["on", "off", "true", "false"].includes(hotplug)) {
    throw new DaemonUsageError(`--hotplug must be on or off, got "${hotplug}"`);
  }
  for (const flag of ["cache-dir", "cri-socket"] as const) {
    if (values[flag] !== undefined && !values[flag]!.startsWith("/")) {
      throw new DaemonUsageError(`--${flag} must be an absolute path`);
    }
  }
  return {
    kubeconfig: values.kubeconfig,
    nodeName: nodeName.toLowerCase(),
    socket,
    listen: ops.healthAddr,
    spoolDir: values["spool-dir"] ?? DEFAULT_SPOOL_DIR,
    logLevel: ops.logLevel,
    logFormat: ops.logFormat,
    logFile: ops.logFile,
    maxInFlight: Math.floor(positive("max-in-flight", values["max-in-flight"], 64)),
    maxConnections: Math.floor(positive("max-connections", values["max-connections"], 256)),
    cniConfDirs: dirs("cni-conf-dir", values["cni-conf-dir"], DEFAULT_CNI_CONF_DIR),
    cniBinDirs: dirs("cni-bin-dir", values["cni-bin-dir"], DEFAULT_CNI_BIN_DIR),
    allowUids: [...new Set(allowUids)],
    reportWorkers: Math.floor(positive("report-workers", values["report-workers"], 4)),
    apiTimeoutMs: positive("api-timeout", values["api-timeout"], 5) * 1000,
    heapSnapshotDir: values["heap-snapshot-dir"] || undefined,
    hotplug: hotplug === "on" || hotplug === "true",
    cacheDir: values["cache-dir"] ?? DEFAULT_META_CACHE_DIR,
    criSocket: values["cri-socket"] ?? DEFAULT_CRI_SOCKET,
  };
}

/** The daemon's own metrics (the socket server and endpoint add theirs). */
function daemonMetrics(registry: Registry) {
  return {
    watchErrors: registry.counter(
      "hydra_daemon_watch_errors_total",
      "Failed list or watch attempts, by collection.",
      ["collection"],
    ),
    reads: registry.counter(
      "hydra_daemon_reads_total",
      "Object reads by where they were served from (cache or api): the socket's and those of " +
        "the invocations the daemon runs.",
      ["source"],
    ),
    reportsDone: registry.counter(
      "hydra_daemon_reports_total",
      "Pod status reports settled, by outcome.",
      ["outcome"],
    ),
    reportLatency: registry.histogram(
      "hydra_daemon_report_delay_seconds",
      "Time from ADD to the pod's status settled.",
      [],
      [...DURATION_BUCKETS, 30, 60, 300],
    ),
    cached: registry.gauge("hydra_daemon_cached_objects", "Objects in the watch caches.", [
      "kind",
    ]),
    pending: registry.gauge("hydra_daemon_reports_pending", "Status reports not written yet."),
    synced: registry.gauge("hydra_daemon_synced", "1 once every watch cache has listed."),
  };
}

/** What a running daemon is made of. */
interface Daemon {
  opts: DaemonOptions;
  log: Logger;
  client: KubeClient;
  registry: Registry;
  metrics: ReturnType<typeof daemonMetrics>;
  cache: NodeCache;
  reports: ReportQueue;
  /** Gives a burst's memory back once the requests go quiet. */
  idle: IdleCollector;
}

/** The API client of `--kubeconfig` (or the in-cluster account); undefined when there is none. */
async function apiClient(opts: DaemonOptions, log: Logger): Promise<KubeClient | undefined> {
  const conn = await resolveConnection(opts.kubeconfig).catch((err) => {
    log.error("cannot load API access", { error: err });
    return null;
  });
  if (!conn) {
    if (conn === undefined) log.error("no --kubeconfig and not running in a cluster");
    return undefined;
  }
  return createKubeClient(conn, { timeoutMs: opts.apiTimeoutMs, userAgent: "hydra-daemon" });
}

/** Starts the watch caches and the report queue. */
function startDaemon(opts: DaemonOptions, log: Logger, client: KubeClient): Daemon {
  const registry = createRegistry();
  addProcessMetrics(registry);
  const metrics = daemonMetrics(registry);
  const cache = startNodeCache(client, {
    nodeName: opts.nodeName,
    onError: (what, err) => {
      metrics.watchErrors.inc({ collection: what });
      log.warn("watch failed; retrying", { collection: what, error: err });
    },
  });
  const reports = startReportQueue(client, {
    log,
    spoolDir: opts.spoolDir,
    workers: opts.reportWorkers,
    attemptMs: opts.apiTimeoutMs,
    onDone: (outcome, seconds) => {
      metrics.reportsDone.inc({ outcome });
      metrics.reportLatency.observe({}, seconds);
    },
  });
  const idle = createIdleCollector({
    onCollected: (c) =>
      log.debug("heap collected after the requests went quiet", collectedFields(c)),
  });
  return { opts, log, client, registry, metrics, cache, reports, idle };
}

/** Makes this daemon the node's cluster-IPAM allocation host (one writer per network and node). */
async function hostPools(d: Daemon): Promise<void> {
  (await import("../ipam/pool/host.ts")).servePoolsHere({
    client: d.client,
    nodeName: d.opts.nodeName,
    metrics: d.registry,
    log: d.log.with({ component: "ipam" }),
    readPod: async (ns, name, uid, timeoutMs) =>
      (await d.cache.get(podPath(ns, name), { uid, timeoutMs })).body as Pod,
  });
}

/** Health, readiness and metrics of the daemon (gauges refreshed on each scrape). */
function healthEndpoint(d: Daemon, server: NodeServer): HealthEndpoint {
  const refreshGauges = () => {
    const sizes = d.cache.sizes();
    d.metrics.cached.set({ kind: "pods" }, sizes.pods);
    d.metrics.cached.set({ kind: "network-attachment-definitions" }, sizes.nads);
    d.metrics.pending.set({}, d.reports.pending());
    d.metrics.synced.set({}, d.cache.hasSynced() ? 1 : 0);
  };
  return {
    registry: {
      ...d.registry,
      render: () => {
        refreshGauges();
        return d.registry.render();
      },
    },
    healthz: () => ({ ok: true, detail: `${server.connections()} connections` }),
    readyz: () =>
      d.cache.hasSynced() ? { ok: true } : { ok: false, detail: "watch caches not synced yet" },
  };
}

/** The socket server and the endpoint; throws (having stopped neither half-way) when one cannot serve. */
async function serveDaemon(
  d: Daemon,
): Promise<{ server: NodeServer; health?: HealthServer }> {
  const onRead = (source: ReadSource) => d.metrics.reads.inc({ source });
  const server = await serveNodeSocket({
    socketPath: d.opts.socket,
    cache: d.cache,
    onRead,
    onAnswered: () => d.idle.touch(),
    reports: d.reports,
    client: d.client,
    log: d.log,
    registry: d.registry,
    nodeName: d.opts.nodeName,
    maxInFlight: d.opts.maxInFlight,
    maxConnections: d.opts.maxConnections,
    defaultTimeoutMs: d.opts.apiTimeoutMs,
    allowedUids: d.opts.allowUids,
    executeCni: createCniExecutor({
      confDirs: d.opts.cniConfDirs,
      binDirs: d.opts.cniBinDirs,
      log: d.log,
      kube: { cache: d.cache, reports: d.reports, client: d.client, onRead },
    }),
  });
  if (!d.opts.listen) return { server };
  try {
    return {
      server,
      health: await startHealthEndpoint(d.opts.listen, healthEndpoint(d, server), d.log),
    };
  } catch (err) {
    await server.shutdown();
    throw err;
  }
}

/** Queues what earlier runs or meta-CNIs spooled now, and every 30 s; returns the stopper. */
async function watchSpool(d: Daemon): Promise<() => void> {
  const loadSpool = () =>
    d.reports.loadSpool().then(
      (n) => n && d.log.info("spooled status reports queued", { count: n }),
      (err) => d.log.warn("cannot read the report spool", { error: err }),
    );
  await loadSpool();
  const timer = setInterval(loadSpool, 30_000);
  return () => clearInterval(timer);
}

/**
 * Keeps the daemon serving past a failure nothing awaited (a bug, not a
 * request: requests are checked and their failures answered): it is logged
 * and counted instead of ending every invocation in flight. Returns the
 * stopper.
 */
function survivingUnhandled(log: Logger, registry: Registry): () => void {
  const count = registry.counter(
    "hydra_daemon_internal_errors_total",
    "Failures nothing awaited, logged and survived.",
  );
  const onRejection = (e: PromiseRejectionEvent) => {
    e.preventDefault();
    count.inc();
    log.error("unhandled failure", { error: e.reason });
  };
  const onError = (e: ErrorEvent) => {
    e.preventDefault();
    count.inc();
    log.error("uncaught failure", { error: e.error ?? e.message });
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  return () => {
    globalThis.removeEventListener("unhandledrejection", onRejection);
    globalThis.removeEventListener("error", onError);
  };
}

/** Week-old damaged files are removed; temp files of killed writes are, after a minute. */
const QUARANTINE_KEEP_MS = 7 * 24 * 3600_000;

/**
 * Removes what killed writers left in the meta-CNI's state folders (its
 * `--cache-dir`, and the spool's parent when the spool is elsewhere):
 * temporary files, and files set aside as damaged more than a week ago.
 */
function sweepStateFolders(d: Daemon): void {
  const spoolParent = d.opts.spoolDir.replace(/\/+$/, "").replace(/\/[^/]*$/, "") || "/";
  for (const cacheDir of new Set([d.opts.cacheDir, spoolParent])) {
    const removed: string[] = [];
    for (const sub of ["attachments", "results", "networks", "reports"]) {
      try {
        removed.push(
          ...sweepLeftovers(`${cacheDir}/${sub}`, { quarantineAgeMs: QUARANTINE_KEEP_MS })
            .map((n) => `${sub}/${n}`),
        );
      } catch (err) {
        d.log.warn("cannot sweep a state folder", { folder: `${cacheDir}/${sub}`, error: err });
      }
    }
    if (removed.length) d.log.info("left-over state files removed", { cacheDir, files: removed });
  }
}

/** The hot-plug agent on the daemon's caches (see node_hotplug.ts). */
function startHotplug(d: Daemon, server: NodeServer): Promise<DaemonHotplug> {
  return startDaemonHotplug({
    cache: d.cache,
    connection: server.inProcessConnection(),
    client: d.client,
    log: d.log,
    registry: d.registry,
    nodeName: d.opts.nodeName,
    cacheDir: d.opts.cacheDir,
    criSocket: d.opts.criSocket,
    apiTimeoutMs: d.opts.apiTimeoutMs,
  });
}

/** Resolves with the name of the first SIGTERM or SIGINT. */
function untilStopSignal(): Promise<string> {
  return new Promise<string>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(sig, () => resolve(sig));
    }
  });
}

/** Stops the queue and the caches (reports left are spooled) and closes the client. */
async function stopDaemon(d: Daemon, reportsMs: number): Promise<void> {
  d.idle.stop();
  await d.reports.stop(reportsMs);
  await d.cache.stop();
  d.client.close();
}

/** Runs the daemon until SIGTERM or SIGINT; returns the exit status. */
export async function runDaemon(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(DAEMON_HELP);
    return 0;
  }
  let opts: DaemonOptions;
  try {
    opts = parseDaemonArgs(args);
  } catch (err) {
    console.error(`hydra daemon: ${(err as Error).message}\n\n${DAEMON_HELP}`);
    return 2;
  }
  const log = createLogger({
    level: opts.logLevel,
    format: opts.logFormat,
    file: opts.logFile,
  }).with({
    role: "daemon",
    node: opts.nodeName,
  });
  const client = await apiClient(opts, log);
  if (!client) return 1;
  // This process outlives the DELs it runs: the kernel's slow part of a pod's link
  // deletion need not hold up the runtime (see plugins/link_batch.ts).
  const stopDeferring = deferLinkDeletion((netns, error) =>
    log.warn("deleting a pod's links after its DEL failed", { netns, error })
  );
  const d = startDaemon(opts, log, client);
  const stopGuard = survivingUnhandled(log, d.registry);
  sweepStateFolders(d);
  await hostPools(d);
  let served;
  try {
    served = await serveDaemon(d);
  } catch (err) {
    log.error("cannot serve", { error: err, socket: opts.socket });
    stopGuard();
    stopDeferring();
    await stopDaemon(d, 0);
    return 1;
  }
  useInProcessDaemon(served.server.inProcessConnection());
  log.info("serving", { socket: opts.socket });
  d.cache.synced.then(() => {
    log.info("watch caches synced", d.cache.sizes());
    d.idle.touch(); // the lists' garbage
  }, () => {});
  const stopSpool = await watchSpool(d);
  const stopSnapshots = opts.heapSnapshotDir
    ? heapSnapshotsOnSignal(
      opts.heapSnapshotDir,
      "hydra-daemon",
      (path) => log.info("heap snapshot written", { path }),
      (error) => log.warn("cannot write a heap snapshot", { error }),
    )
    : () => {};
  const hotplug = opts.hotplug ? await startHotplug(d, served.server) : undefined;

  log.info("stopping", { signal: await untilStopSignal() });
  await hotplug?.stop();
  stopSpool();
  stopSnapshots();
  useInProcessDaemon(undefined);
  await served.server.shutdown();
  if (!await settleDeferredDeletions(5_000)) log.warn("pod links still being deleted at exit");
  stopDeferring();
  await stopDaemon(d, 5_000);
  await served.health?.shutdown();
  stopGuard();
  log.info("stopped");
  return 0;
}
