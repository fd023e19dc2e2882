/**
 * `hydra route sync`: the router role. Wires the node source (a node list
 * file or the API server), the engine, the health endpoint and signals
 * together; `--once` syncs a single time for scripts.
 *
 * @module
 */

import { heapSnapshotsOnSignal } from "../pkg/heap_snapshot.ts";
import { withTimeout } from "../pkg/async.ts";
import { collectedFields, createIdleCollector } from "../pkg/idle_gc.ts";
import { createLogger, type Logger } from "../pkg/log.ts";
import { type HealthServer, startHealthEndpoint } from "../pkg/http.ts";
import { closeHandle, type Handle, openHandle } from "../netlink/mod.ts";
import {
  checkNetworks,
  ConfigError,
  loadRouterConfig,
  type NetworkConfig,
  type RouterConfig,
} from "./config.ts";
import { createRouterMetrics, type RouterMetrics } from "./metrics.ts";
import { parseRouteArgs, routeHelp, type RouteOptions, UsageError } from "./options.ts";
import { createRouter, type Router, type SyncSummary } from "./router.ts";
import type { Problem } from "./desired.ts";
import type { KubeClient } from "../kube/client.ts";
import type { createNodeEvent } from "../kube/objects.ts";
import { sha256Hex } from "../pkg/sha256.ts";
import { readNodeFile, watchNodeFile } from "./source_file.ts";
import { type KubeSource, watchKubeNodes } from "./source_kube.ts";

/** A started node source, whichever kind. */
interface Source {
  kind: "file" | "kube";
  /** Resolves when the first complete node set is in. */
  ready: Promise<void>;
  stop(): Promise<void>;
}

/** Where problems about a node go beyond the log and metrics: Events on the Node, in a cluster. */
interface ProblemSink {
  notify?: (p: Problem) => void;
}

/**
 * Reports a refused CIDR as a Warning Event on the Node that claimed it.
 * Named after the node, network and message, so the routers of every node
 * reporting the same claim make one Event between them.
 */
function nodeEventReporter(
  client: KubeClient,
  createEvent: typeof createNodeEvent,
  opts: RouteOptions,
  log: Logger,
) {
  return (p: Problem) => {
    if (p.kind !== "cidr_not_allowed" || !p.node) return;
    const digest = sha256Hex(`${p.network}|${p.message}`);
    const name = `${p.node}.hydra-route.${digest.slice(0, 16)}`;
    createEvent(client, p.node, name, {
      type: "Warning",
      reason: "CIDRNotAllowed",
      message: p.message,
      component: "hydra-route",
      host: opts.nodeName,
    }).catch((err) => log.warn("cannot record an Event on the node", { node: p.node, error: err }));
  };
}

/** Reports node source failures: the first, then at most one line every 30 s while it lasts. */
function sourceReporter(log: Logger, m: RouterMetrics) {
  let down = false;
  let lastLogged = 0;
  let suppressed = 0;
  return {
    failed(err: unknown) {
      m.errors.inc({ kind: "source" });
      m.sourceUp.set({}, 0);
      const now = Date.now();
      if (!down || now - lastLogged >= 30_000) {
        log.error(
          down
            ? "node source still failing; routes are kept as they are"
            : "node source failed; routes are kept as they are, retrying",
          { error: err, suppressed },
        );
        lastLogged = now;
        suppressed = 0;
      } else suppressed++;
      down = true;
    },
    recovered() {
      m.sourceUp.set({}, 1);
      if (down) log.info("node source answers again; resyncing");
      down = false;
    },
  };
}

async function startSource(
  opts: RouteOptions,
  networks: NetworkConfig[],
  router: Router,
  log: Logger,
  m: RouterMetrics,
  sink: ProblemSink,
): Promise<Source> {
  const rep = sourceReporter(log, m);
  if (opts.nodesFile) {
    const path = opts.nodesFile;
    let first = true;
    const src = watchNodeFile(path, {
      onNodes(nodes) {
        rep.recovered();
        log.info("node list read", { file: path, nodes: nodes.length });
        router.replaceNodes(nodes);
        if (first) {
          first = false;
          router.markSourceSynced();
        }
      },
      onError: (err) => rep.failed(err),
    }, opts.pollIntervalMs);
    return { kind: "file", ready: src.ready, stop: () => src.stop() };
  }
  const { resolveConnection } = await import("../kube/kubeconfig.ts");
  const { createKubeClient } = await import("../kube/client.ts");
  const conn = await resolveConnection(opts.kubeconfig);
  if (!conn) {
    throw new UsageError(
      "no node source: pass --nodes-file, or --kubeconfig (or run in a cluster)",
    );
  }
  const client = createKubeClient(conn, { userAgent: "hydra-route" });
  const { createNodeEvent } = await import("../kube/objects.ts");
  sink.notify = nodeEventReporter(client, createNodeEvent, opts, log);
  const annotationKeys = new Set(
    networks.flatMap((n) => [n.cidrAnnotation, n.addressAnnotation]).filter((k) => k !== ""),
  );
  const src: KubeSource = watchKubeNodes(client, {
    upsert: (n) => router.upsertNode(n),
    remove: (name) => router.deleteNode(name),
    synced() {
      rep.recovered();
      log.info("node objects listed", { server: conn.server });
      router.markSourceSynced();
    },
    onError: (err) => rep.failed(err),
    onRecovered: () => rep.recovered(),
  }, { annotationKeys });
  return {
    kind: "kube",
    ready: src.synced,
    async stop() {
      sink.notify = undefined;
      await src.stop();
      client.close();
    },
  };
}

async function loadConfig(opts: RouteOptions): Promise<RouterConfig> {
  if (opts.config) return await loadRouterConfig(opts.config);
  return checkNetworks([opts.flagNetwork!]);
}

/**
 * `--once`: exit 0 when every configured network was synced without a kernel
 * failure; 1 when a change failed or a network was left out by the config.
 * Bad node input is logged and counted but does not fail the run.
 */
async function runOnce(
  opts: RouteOptions,
  config: RouterConfig,
  router: Router,
  log: Logger,
  m: RouterMetrics,
  sink: ProblemSink,
): Promise<number> {
  let summary: SyncSummary;
  if (opts.nodesFile) {
    const nodes = await readNodeFile(opts.nodesFile);
    router.replaceNodes(nodes);
    router.markSourceSynced();
    summary = router.syncNow(true);
  } else {
    const src = await startSource(opts, config.networks, router, log, m, sink);
    try {
      await withTimeout(
        src.ready,
        opts.timeoutMs,
        () => new Error(`the API server did not answer within ${opts.timeoutMs / 1000} s`),
      );
      summary = router.syncNow(true);
    } finally {
      await src.stop();
    }
  }
  console.log(JSON.stringify(summary));
  return summary.ok && config.problems.length === 0 ? 0 : 1;
}

async function runDaemon(
  opts: RouteOptions,
  config: RouterConfig,
  router: Router,
  log: Logger,
  m: RouterMetrics,
  sink: ProblemSink,
): Promise<number> {
  const stop = Promise.withResolvers<string>();
  const onSignal = (sig: Deno.Signal) => () => stop.resolve(sig);
  const signals: [Deno.Signal, () => void][] = [
    ["SIGTERM", onSignal("SIGTERM")],
    ["SIGINT", onSignal("SIGINT")],
  ];
  for (const [sig, fn] of signals) Deno.addSignalListener(sig, fn);
  const stopSnapshots = opts.heapSnapshotDir
    ? heapSnapshotsOnSignal(
      opts.heapSnapshotDir,
      "hydra-route",
      (path) => log.info("heap snapshot written", { path }),
      (error) => log.warn("cannot write a heap snapshot", { error }),
    )
    : () => {};
  let server: HealthServer | undefined;
  let source: Source | undefined;
  try {
    if (opts.healthAddr) {
      const status = router.status;
      server = await startHealthEndpoint(opts.healthAddr, {
        registry: m.registry,
        healthz: () => ({ ok: true, detail: `${status.nodes} nodes, ${status.routes} routes` }),
        readyz: () => {
          if (!status.sourceSynced) return { ok: false, detail: "waiting for the node source" };
          if (!status.passes) return { ok: false, detail: "first sync pending" };
          if (!status.lastPassOk) {
            return { ok: false, detail: "last sync had kernel errors (retrying)" };
          }
          return { ok: true };
        },
      }, log);
    }
    source = await startSource(opts, config.networks, router, log, m, sink);
    const sig = await stop.promise;
    log.info(`${sig}: stopping; routes stay in place`);
    return 0;
  } finally {
    for (const [sig, fn] of signals) Deno.removeSignalListener(sig, fn);
    stopSnapshots();
    router.stop();
    await source?.stop().catch(() => {});
    await server?.shutdown().catch(() => {});
  }
}

/** Runs `hydra route <subcommand> …`; returns the exit status. */
export async function runRoute(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help" || sub === "help") {
    console.log(routeHelp());
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "sync") {
    console.error(`hydra route: unknown subcommand "${sub}"\n\n${routeHelp()}`);
    return 2;
  }
  let opts: RouteOptions;
  try {
    opts = parseRouteArgs(rest);
  } catch (err) {
    console.error(`hydra route sync: ${(err as Error).message}\n\nRun "hydra route sync --help".`);
    return 2;
  }
  if (opts.help) {
    console.log(routeHelp());
    return 0;
  }
  const log = createLogger({
    level: opts.logLevel,
    format: opts.logFormat,
    file: opts.logFile,
    fields: { role: "route", node: opts.nodeName },
  });
  let config: RouterConfig;
  try {
    config = await loadConfig(opts);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.error(err.message);
    console.error(`hydra route sync: ${err.message}`);
    return 1;
  }
  log.info("starting", {
    networks: config.networks.map((n) =>
      `${n.name}:${n.mode}:proto ${n.protocol}:table ${n.table}`
    ),
    source: opts.nodesFile ? `file ${opts.nodesFile}` : "kubernetes",
    once: opts.once,
  });
  const m = createRouterMetrics();
  let h: Handle | undefined;
  let router: Router | undefined;
  const sink: ProblemSink = {};
  // A burst of node updates leaves the heap at its high-water mark until V8
  // decides to give memory back; collect once the updates have gone quiet.
  const idle = createIdleCollector({
    onCollected: (c) =>
      log.debug("heap collected after the updates went quiet", collectedFields(c)),
  });
  try {
    h = openHandle();
    router = createRouter({
      handle: h,
      networks: config.networks,
      configProblems: config.problems,
      nodeName: opts.nodeName,
      logger: log,
      metrics: m,
      debounceMs: opts.debounceMs,
      resyncIntervalMs: opts.once ? 0 : opts.resyncIntervalMs,
      addressCheckMs: opts.once ? 0 : 2000,
      onNewProblem: (p) => sink.notify?.(p),
      onPass: () => idle.touch(),
    });
    return opts.once
      ? await runOnce(opts, config, router, log, m, sink)
      : await runDaemon(opts, config, router, log, m, sink);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`hydra route sync: ${err.message}`);
      return 2;
    }
    log.error("router failed", { error: err });
    console.error(`hydra route sync: ${(err as Error).message}`);
    return 1;
  } finally {
    router?.stop();
    idle.stop();
    if (h) closeHandle(h);
  }
}
