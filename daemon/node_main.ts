/**
 * `hydra daemon`: the node daemon. Keeps watch caches of this node's pods,
 * every NetworkAttachmentDefinition and this node's Node object, serves
 * them to the exec'd meta-CNI and `kube-node` IPAM over a unix socket, and
 * writes the pods' network status for them (retrying, spooling what is
 * left when it stops). Health and Prometheus metrics on `--listen`; JSON
 * log lines; SIGTERM stops it cleanly.
 *
 * Without it everything still works: the meta-CNI then asks the API server
 * itself, paying a TLS handshake per pod.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createLogger, isLogLevel, type LogLevel } from "../pkg/log.ts";
import { createKubeClient } from "../kube/client.ts";
import { resolveConnection } from "../kube/kubeconfig.ts";
import {
  formatListenAddress,
  type HealthServer,
  type ListenAddress,
  parseListenAddress,
  serveHealth,
} from "../pkg/http.ts";
import { createRegistry, DURATION_BUCKETS } from "../pkg/metrics.ts";
import { startNodeCache } from "./node_cache.ts";
import { DEFAULT_DAEMON_SOCKET } from "../daemonclient/protocol.ts";
import { startReportQueue } from "./node_reports.ts";
import { serveNodeSocket } from "./node_server.ts";
import { useInProcessDaemon } from "../daemonclient/client.ts";
import { spoolDirOf } from "../kube/report_spool.ts";
import { type Pod, podPath } from "../kube/objects.ts";

/** Where reports are spooled by default: under the meta-CNI's default cache dir. */
const DEFAULT_SPOOL_DIR = spoolDirOf("/var/lib/cni/hydra");

/** The daemon's options. */
export interface DaemonOptions {
  kubeconfig?: string;
  nodeName: string;
  socket: string;
  /** Health and metrics; undefined to serve none. */
  listen?: ListenAddress;
  spoolDir: string;
  logLevel: LogLevel;
  logFile?: string;
  maxInFlight: number;
  reportWorkers: number;
  apiTimeoutMs: number;
}

/** The help text of `hydra daemon`. */
export const DAEMON_HELP = `Usage: hydra daemon [options]

Serves this node's pods and networks to the meta-CNI from watch caches and
writes their network status.

Options:
  --kubeconfig PATH      API access (default: the in-cluster ServiceAccount)
  --node-name NAME       this node (default: $NODE_NAME, else the host name)
  --socket PATH          unix socket the meta-CNI asks (default ${DEFAULT_DAEMON_SOCKET})
  --listen ADDR          health and metrics, HOST:PORT or unix:PATH; "" for none
                         (default 127.0.0.1:9713)
  --spool-dir DIR        unwritten status reports (default ${DEFAULT_SPOOL_DIR})
  --max-in-flight N      socket requests worked on at once (default 64)
  --report-workers N     concurrent status writes (default 4)
  --api-timeout SECONDS  deadline of each API request (default 5)
  --log-level LEVEL      debug, info, warn, error, off (default info)
  --log-file PATH        append JSON log lines here instead of stderr
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
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        kubeconfig: { type: "string" },
        "node-name": { type: "string" },
        socket: { type: "string" },
        listen: { type: "string" },
        "spool-dir": { type: "string" },
        "max-in-flight": { type: "string" },
        "report-workers": { type: "string" },
        "api-timeout": { type: "string" },
        "log-level": { type: "string" },
        "log-file": { type: "string" },
      },
    }));
  } catch (err) {
    throw new DaemonUsageError((err as Error).message);
  }
  const logLevel = values["log-level"] ?? "info";
  if (!isLogLevel(logLevel)) throw new DaemonUsageError(`--log-level: unknown level "${logLevel}"`);
  const nodeName = values["node-name"] || env.get("NODE_NAME") || Deno.hostname();
  const listenText = values.listen ?? "127.0.0.1:9713";
  let listen: ListenAddress | undefined;
  try {
    listen = listenText === "" ? undefined : parseListenAddress(listenText);
  } catch (err) {
    throw new DaemonUsageError(`--listen: ${(err as Error).message}`);
  }
  const socket = values.socket ?? DEFAULT_DAEMON_SOCKET;
  if (!socket.startsWith("/")) throw new DaemonUsageError(`--socket must be an absolute path`);
  return {
    kubeconfig: values.kubeconfig,
    nodeName: nodeName.toLowerCase(),
    socket,
    listen,
    spoolDir: values["spool-dir"] ?? DEFAULT_SPOOL_DIR,
    logLevel,
    logFile: values["log-file"],
    maxInFlight: Math.floor(positive("max-in-flight", values["max-in-flight"], 64)),
    reportWorkers: Math.floor(positive("report-workers", values["report-workers"], 4)),
    apiTimeoutMs: positive("api-timeout", values["api-timeout"], 5) * 1000,
  };
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
  const log = createLogger({ level: opts.logLevel, file: opts.logFile }).with({
    role: "daemon",
    node: opts.nodeName,
  });
  const conn = await resolveConnection(opts.kubeconfig).catch((err) => {
    log.error("cannot load API access", { error: err });
    return null;
  });
  if (!conn) {
    if (conn === undefined) log.error("no --kubeconfig and not running in a cluster");
    return 1;
  }
  const client = createKubeClient(conn, {
    timeoutMs: opts.apiTimeoutMs,
    userAgent: "hydra-daemon",
  });
  const registry = createRegistry();
  const apiErrors = registry.counter(
    "hydra_daemon_watch_errors_total",
    "Failed list or watch attempts, by collection.",
    ["collection"],
  );
  const reportsDone = registry.counter(
    "hydra_daemon_reports_total",
    "Pod status reports settled, by outcome.",
    ["outcome"],
  );
  const reportLatency = registry.histogram(
    "hydra_daemon_report_delay_seconds",
    "Time from ADD to the pod's status settled.",
    [],
    [...DURATION_BUCKETS, 30, 60, 300],
  );
  const cache = startNodeCache(client, {
    nodeName: opts.nodeName,
    onError: (what, err) => {
      apiErrors.inc({ collection: what });
      log.warn("watch failed; retrying", { collection: what, error: err });
    },
  });
  const reports = startReportQueue(client, {
    log,
    spoolDir: opts.spoolDir,
    workers: opts.reportWorkers,
    attemptMs: opts.apiTimeoutMs,
    onDone: (outcome, seconds) => {
      reportsDone.inc({ outcome });
      reportLatency.observe({}, seconds);
    },
  });
  const cached = registry.gauge("hydra_daemon_cached_objects", "Objects in the watch caches.", [
    "kind",
  ]);
  const pending = registry.gauge("hydra_daemon_reports_pending", "Status reports not written yet.");
  const synced = registry.gauge("hydra_daemon_synced", "1 once every watch cache has listed.");
  const refreshGauges = () => {
    const sizes = cache.sizes();
    cached.set({ kind: "pods" }, sizes.pods);
    cached.set({ kind: "network-attachment-definitions" }, sizes.nads);
    pending.set({}, reports.pending());
    synced.set({}, cache.hasSynced() ? 1 : 0);
  };

  /** Set once the first `cni` request has made this process defer link deletions. */
  let settleLinkDeletions: ((timeoutMs: number) => Promise<boolean>) | undefined;
  /** Runs a meta-CNI invocation handed over by an exec'd shim (`daemonExec`). */
  const executeCni = async (env: Record<string, string>, stdin: string, plugin = "hydra") => {
    if (plugin === "hydra-pool") {
      // An exec'd cluster-IPAM plugin hands its allocation to the node's allocation host.
      const [{ invokeInProcess }, { BUILTINS, loadBuiltin }] = await Promise.all([
        import("../cni/skel.ts"),
        import("../engine/builtins.ts"),
      ]);
      const pool = await loadBuiltin(plugin)!;
      return await invokeInProcess(pool, env, new TextEncoder().encode(stdin), BUILTINS);
    }
    if (plugin !== "hydra") {
      const msg = `the node daemon runs only hydra and hydra-pool, not "${plugin}"`;
      return { stdout: JSON.stringify({ cniVersion: "1.1.0", code: 999, msg }), code: 1 };
    }
    const [{ invokeInProcess }, { BUILTINS }, { createMetaPlugin }, batches] = await Promise.all([
      import("../cni/skel.ts"),
      import("../engine/builtins.ts"),
      import("../engine/meta.ts"),
      import("../plugins/link_batch.ts"),
    ]);
    if (!settleLinkDeletions) {
      // This process outlives the DEL: the kernel's slow part of it need not hold up the runtime.
      batches.deferLinkDeletion((netns, error) =>
        log.warn("deleting a pod's links after its DEL failed", { netns, error })
      );
      settleLinkDeletions = batches.settleDeferredDeletions;
    }
    // The daemon runs what it is handed itself: its meta-CNI never forwards.
    const meta = createMetaPlugin({ forward: false });
    return await invokeInProcess(meta, env, new TextEncoder().encode(stdin), BUILTINS);
  };

  // This daemon runs the node's cluster-IPAM allocations (one writer per network and node).
  (await import("../ipam/pool/host.ts")).servePoolsHere({
    client,
    nodeName: opts.nodeName,
    metrics: registry,
    log: log.with({ component: "ipam" }),
    readPod: async (ns, name, uid, timeoutMs) =>
      (await cache.get(podPath(ns, name), { uid, timeoutMs })).body as Pod,
  });
  let server;
  let health: HealthServer | undefined;
  try {
    server = await serveNodeSocket({
      socketPath: opts.socket,
      cache,
      reports,
      client,
      log,
      registry,
      nodeName: opts.nodeName,
      maxInFlight: opts.maxInFlight,
      defaultTimeoutMs: opts.apiTimeoutMs,
      executeCni,
    });
    if (opts.listen) {
      health = await serveHealth(opts.listen, {
        registry: {
          ...registry,
          render: () => {
            refreshGauges();
            return registry.render();
          },
        },
        healthz: () => ({ ok: true, detail: `${server!.connections()} connections` }),
        readyz: () =>
          cache.hasSynced() ? { ok: true } : { ok: false, detail: "watch caches not synced yet" },
      });
    }
  } catch (err) {
    log.error("cannot serve", { error: err, socket: opts.socket });
    await reports.stop(0);
    await cache.stop();
    client.close();
    return 1;
  }
  useInProcessDaemon(server.inProcessConnection());
  log.info("serving", {
    socket: opts.socket,
    listen: opts.listen ? formatListenAddress(health!.address) : undefined,
  });
  cache.synced.then(() => log.info("watch caches synced", cache.sizes()), () => {});

  // The spool: what earlier runs or meta-CNIs could not write, looked at now and then.
  const loadSpool = () =>
    reports.loadSpool().then(
      (n) => n && log.info("spooled status reports queued", { count: n }),
      (err) => log.warn("cannot read the report spool", { error: err }),
    );
  await loadSpool();
  const spoolTimer = setInterval(loadSpool, 30_000);

  const stopped = new Promise<string>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(sig, () => resolve(sig));
    }
  });
  const signal = await stopped;
  log.info("stopping", { signal });
  clearInterval(spoolTimer);
  useInProcessDaemon(undefined);
  await server.shutdown();
  if (settleLinkDeletions && !await settleLinkDeletions(5_000)) {
    log.warn("pod links still being deleted at exit");
  }
  await reports.stop(5_000);
  await cache.stop();
  await health?.shutdown();
  client.close();
  log.info("stopped");
  return 0;
}
