/**
 * `hydra nri serve`: the NRI plugin role. Wires the NRI stub (connection,
 * budgets, reconnects), the attachment engine (the meta-CNI run in
 * process), the background reconciler, metrics, health and signals.
 *
 * - RunPodSandbox: attach the pod's extra networks. With `--on-failure
 *   fail` a failure is answered with an error status, so the runtime fails
 *   the sandbox, rolls it back and the kubelet retries; an attach that
 *   outlives the runtime's budget is undone (the stub has answered
 *   DEADLINE_EXCEEDED). With `log`, the pod starts without the network and
 *   the failure is logged and counted; an attach still running when the
 *   budget ends is answered OK and completes in the background.
 *   In Kubernetes mode the failure is also a Warning Event on the pod.
 * - Stop/RemovePodSandbox: release; a failure is retried in the background
 *   (the runtime only logs errors of these events).
 * - Synchronize: answered at once; the reconciler attaches what is missing
 *   and releases what belongs to sandboxes that are gone.
 *
 * Attachments stay in place when hydra stops: pods keep their networks, and
 * the records on disk let the next run release them.
 *
 * @module
 */

import { loadConfDir } from "../cni/conf.ts";
import { settlesWithin } from "../pkg/async.ts";
import { createLogger, type Logger } from "../pkg/log.ts";
import { type HealthEndpoint, type HealthServer, startHealthEndpoint } from "../pkg/http.ts";
import { type Attacher, createAttacher } from "./attach.ts";
import { WARMABLE_PLUGINS, warmAttachPath, warmIpam, warmKernelPath } from "./warm.ts";
import { StatusCode, TtrpcStatusError } from "./errors.ts";
import { nriLogger } from "./log.ts";
import { createNriMetrics, type NriMetrics } from "./metrics.ts";
import {
  type FailurePolicy,
  nriServeHelp,
  type NriServeOptions,
  parseNriServeArgs,
  UsageError,
} from "./options.ts";
import { createReconciler, type Reconciler } from "./reconcile.ts";
import { confDirSource, kubeSource, type NetworkSource } from "./source.ts";
import { createDraHook, type DraHook, type SandboxRef } from "../drasandbox/hook.ts";
import { listPodStateIds, sweepPodStateDir } from "./state.ts";
import type { NriHotplug } from "./hotplug.ts";
import { builtinNames, loadBuiltin } from "../engine/builtins.ts";
import type { NodeAgentKube } from "../engine/kube_source.ts";
import {
  type HookContext,
  netnsPathOf,
  type NriHooks,
  type PluginStatus,
  type PodSandbox,
  runNriPlugin,
} from "./stub.ts";

/** How long a stopping plugin waits for running attach/release work, ms. */
const DRAIN_MS = 10_000;
/**
 * Seconds the API work of one pod may take in Kubernetes mode: well inside
 * the runtime's 2 s per request, leaving room for the plugins themselves.
 */
const KUBE_API_BUDGET_S = 1;

/**
 * Longest wait of an attach for the pod watch to deliver its pod, ms: the
 * kubelet runs a sandbox moments after the scheduler binds it, and the
 * watch is usually there first. Short, so an uncached pod is still read
 * from the API server within {@link KUBE_API_BUDGET_S}.
 */
const POD_WATCH_WAIT_MS = 300;

/** Budget of one status write from the queue, ms (off the runtime's path, so longer). */
const KUBE_WRITE_ATTEMPT_MS = 5_000;

/** How long a stopping plugin keeps writing queued status reports before spooling them, ms. */
const REPORTS_DRAIN_MS = 3_000;

/** Under `--on-failure log`, the answer is sent this long before the budget ends, ms. */
const LOG_POLICY_EARLY_MS = 50;

/** Everything the hooks share. */
interface Deps {
  attacher: Attacher;
  reconciler: Reconciler;
  metrics: NriMetrics;
  log: Logger;
  policy: FailurePolicy;
  cacheDir: string;
  /** Where a failure under `--on-failure log` is told to the pod's owners. */
  source: NetworkSource;
  /** Under `--hotplug on`: told which sandboxes run. */
  hotplug?: NriHotplug;
  /** The pod's DRA devices (claims `hydra dra serve` prepared). */
  dra?: DraHook;
}

function podRef(pod: PodSandbox): string {
  return `${pod.namespace}/${pod.name}`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Whether the runtime was answered with an error because the budget ran out. */
function budgetSpent(ctx: HookContext): boolean {
  return ctx.signal.aborted && ctx.signal.reason instanceof TtrpcStatusError;
}

function refreshAttachedGauge(d: Deps): void {
  try {
    d.metrics.attachedPods.set({}, listPodStateIds(d.cacheDir).length);
  } catch {
    // the gauge stays as it was
  }
}

async function onRun(d: Deps, pod: PodSandbox, ctx: HookContext): Promise<void> {
  d.reconciler.started(pod.id);
  const t0 = performance.now();
  const keep = () => !budgetSpent(ctx) && !d.reconciler.isStopped(pod.id);
  const work = d.attacher.attach(pod, keep);
  // Hot plug acts on a sandbox once its attach at creation is over, whatever its outcome.
  work.then(() => d.hotplug?.started(pod), () => d.hotplug?.started(pod));
  const observe = (result: "ok" | "error") =>
    d.metrics.attachDuration.observe({ trigger: "run", result }, (performance.now() - t0) / 1000);
  const succeeded = work.then((out) => {
    observe("ok");
    if (out.status !== "none") {
      d.log.info("networks attached", {
        sandbox: pod.id,
        pod: podRef(pod),
        networks: out.networks.map((n) => `${n.name}@${n.ifName}`),
        ms: Math.round((performance.now() - t0) * 10) / 10,
      });
    }
    refreshAttachedGauge(d);
  }, (err) => {
    observe("error");
    d.metrics.failures.inc({ op: "attach", trigger: "run" });
    d.log.error("cannot attach networks", {
      sandbox: pod.id,
      pod: podRef(pod),
      policy: d.policy,
      error: message(err),
    });
    throw err;
  });
  if (d.policy === "log") {
    // The pod starts in any case; answer before the budget so the runtime keeps hydra.
    const inTime = await settlesWithin(
      succeeded,
      ctx.deadline - LOG_POLICY_EARLY_MS - performance.now(),
    );
    if (!inTime) {
      d.log.warn("attach goes on after the answer", { sandbox: pod.id, pod: podRef(pod) });
    }
    succeeded.catch((err) =>
      d.source.reportFailure?.(pod, `hydra: extra networks not attached: ${message(err)}`)
        .catch((e) =>
          d.log.warn("cannot record the failure on the pod", {
            pod: podRef(pod),
            error: message(e),
          })
        )
    );
    d.metrics.events.inc({ event: "run", result: "ok" });
    return;
  }
  try {
    await succeeded;
    d.metrics.events.inc({ event: "run", result: "ok" });
  } catch (err) {
    d.metrics.events.inc({ event: "run", result: "error" });
    throw new TtrpcStatusError(
      StatusCode.UNKNOWN,
      `hydra: attaching the networks of pod ${podRef(pod)}: ${message(err)}`,
      { cause: err },
    );
  }
}

async function onRelease(
  d: Deps,
  event: "stop" | "remove",
  pod: PodSandbox,
): Promise<void> {
  d.reconciler.stopped(pod.id);
  d.hotplug?.stopped(pod.id);
  const t0 = performance.now();
  const netns = netnsPathOf(pod);
  try {
    const out = await d.attacher.release(pod.id, netns);
    if (out.records) {
      d.metrics.releaseDuration.observe({ result: "ok" }, (performance.now() - t0) / 1000);
      d.log.info("networks released", { sandbox: pod.id, pod: podRef(pod), event });
    }
    d.metrics.events.inc({ event, result: "ok" });
  } catch (err) {
    d.metrics.releaseDuration.observe({ result: "error" }, (performance.now() - t0) / 1000);
    d.metrics.failures.inc({ op: "release", trigger: event });
    d.metrics.events.inc({ event, result: "error" });
    d.log.error("cannot release networks; retrying in the background", {
      sandbox: pod.id,
      pod: podRef(pod),
      error: message(err),
    });
    d.reconciler.retryRelease(pod.id, netns);
  }
  refreshAttachedGauge(d);
}

/**
 * Sets up the pod's DRA devices. Always fails closed: a pod never starts
 * without a device it claimed, whatever `--on-failure` says of networks.
 */
/** A sandbox as the DRA hook knows it. */
function sandboxRef(pod: PodSandbox): SandboxRef {
  return {
    id: pod.id,
    namespace: pod.namespace,
    name: pod.name,
    uid: pod.uid,
    netns: netnsPathOf(pod),
  };
}

async function onRunDra(dra: DraHook, d: Deps, pod: PodSandbox, ctx: HookContext): Promise<void> {
  const t0 = performance.now();
  try {
    const keep = () => !budgetSpent(ctx) && !d.reconciler.isStopped(pod.id);
    const out = await dra.run(sandboxRef(pod), keep);
    if (out.status === "attached") {
      d.log.info("claimed devices set up", {
        sandbox: pod.id,
        pod: podRef(pod),
        devices: out.devices.map((x) => `${x.device}@${x.ifName}`),
        ms: Math.round((performance.now() - t0) * 10) / 10,
      });
    }
  } catch (err) {
    d.metrics.failures.inc({ op: "attach", trigger: "run" });
    d.log.error("cannot set up claimed devices", {
      sandbox: pod.id,
      pod: podRef(pod),
      error: message(err),
    });
    throw new TtrpcStatusError(
      StatusCode.UNKNOWN,
      `hydra: setting up the claimed devices of pod ${podRef(pod)}: ${message(err)}`,
      { cause: err },
    );
  }
}

/** The NRI hooks of the plugin. */
function nriHooks(d: Deps): NriHooks {
  const dra = d.dra;
  return {
    onSynchronize(pods) {
      d.metrics.events.inc({ event: "synchronize", result: "ok" });
      dra?.synchronize(pods.map(sandboxRef)).catch((err) =>
        d.log.error("synchronizing claimed devices failed", { error: message(err) })
      );
      // Answered at once; the pass runs on (and retries) by itself.
      d.reconciler.synchronize(pods).then(
        () => refreshAttachedGauge(d),
        (err) => d.log.error("synchronize pass failed", { error: message(err) }),
      ).finally(() => d.hotplug?.listed(pods)); // hot plug once the pass's first tries are over
      return Promise.resolve();
    },
    onRunPodSandbox: async (pod, ctx) => {
      if (dra) await onRunDra(dra, d, pod, ctx);
      await onRun(d, pod, ctx);
    },
    onStopPodSandbox: async (pod) => {
      await onRelease(d, "stop", pod);
      await dra?.release(pod.id, netnsPathOf(pod));
    },
    onRemovePodSandbox: async (pod) => {
      await onRelease(d, "remove", pod);
      await dra?.release(pod.id, netnsPathOf(pod));
    },
    onShutdown() {
      d.metrics.events.inc({ event: "shutdown", result: "ok" });
      d.log.info("runtime is shutting down; attachments stay in place");
    },
  };
}

/** Picks the network source of the options. */
function networkSource(opts: NriServeOptions): NetworkSource {
  if (opts.kubeconfig !== undefined || opts.inCluster) {
    return kubeSource({
      kubeconfig: opts.kubeconfig,
      defaultNetworks: opts.defaultNetworks,
      apiTimeoutS: KUBE_API_BUDGET_S,
      confDir: opts.confDir,
      podResourcesSocket: opts.podResourcesSocket,
      namespaces: opts.namespaces,
      nadPathRoots: opts.nadPathRoots,
    });
  }
  return confDirSource(opts.confDir, opts.namespaces);
}

/**
 * Loads the built-in plugins the conf folder's networks use (their types
 * and IPAM types) now rather than on the first pod, so the first
 * RunPodSandbox after a start does not pay for compiling them inside its
 * budget. Plugins no network names stay unloaded (memory); a network added
 * later loads its plugins on first use. Returns the built-ins loaded.
 */
async function preloadPlugins(confDir: string, log: Logger): Promise<string[]> {
  const t0 = performance.now();
  const types = new Set<string>();
  try {
    const lists = await loadConfDir(confDir);
    log.info("networks pods can select", { dir: confDir, networks: lists.map((l) => l.name) });
    for (const list of lists) {
      for (const plugin of list.plugins) {
        types.add(plugin.type);
        const ipam = (plugin as { ipam?: { type?: unknown } }).ipam;
        if (typeof ipam?.type === "string") types.add(ipam.type);
      }
    }
  } catch (err) {
    // A broken file fails the pods that select it, with its own message.
    log.warn("cannot read the networks in the conf folder", { dir: confDir, error: message(err) });
  }
  const builtins = [...types].filter((t) => builtinNames().includes(t));
  await Promise.all(builtins.map((t) => loadBuiltin(t)));
  log.debug("built-in plugins loaded", {
    plugins: builtins,
    ms: Math.round(performance.now() - t0),
  });
  return builtins;
}

/** Loads and warms what the first pods will need, before anything connects. */
async function warmUp(opts: NriServeOptions, source: NetworkSource, log: Logger): Promise<void> {
  const builtins = await preloadPlugins(opts.confDir, log);
  if (builtins.some((b) => WARMABLE_PLUGINS.includes(b))) {
    // First, while nothing else opens sockets: it enters namespaces of its own for a moment,
    // and runs the kernel path warmKernelPath would.
    await warmAttachPath(log, builtins);
  } else {
    warmKernelPath(log);
    if (builtins.includes("hydra-ipam")) await warmIpam(log);
  }
  await source.warm?.();
}

/** The attacher, the reconciler and what the hooks share. */
function createDeps(
  opts: NriServeOptions,
  source: NetworkSource,
  log: Logger,
  metrics: NriMetrics,
  kube?: NodeAgentKube,
): Deps {
  const attacher = createAttacher({
    cacheDir: opts.cacheDir,
    cniPath: opts.cniBinDirs,
    source,
    log,
    metaLogLevel: opts.logLevel,
    metaLogFile: opts.logFile,
    ...(opts.chrootDir ? { chrootDir: opts.chrootDir } : {}),
    ...(kube ? { kube } : {}),
  });
  const reconciler = createReconciler({
    attacher,
    cacheDir: opts.cacheDir,
    log,
    metrics,
    concurrency: opts.concurrency,
  });
  const deps: Deps = {
    attacher,
    reconciler,
    metrics,
    log,
    policy: opts.onFailure,
    cacheDir: opts.cacheDir,
    source,
  };
  if (opts.draStateDir) {
    deps.dra = createDraHook({
      stateDir: opts.draStateDir,
      cniPath: opts.cniBinDirs,
      log: log.with({ component: "dra" }),
      engineLogLevel: opts.logLevel,
      engineLogFile: opts.logFile,
    });
  }
  return deps;
}

/** The connection's state as the endpoint reports it, kept current by {@link runNriPlugin}. */
function connectionStatus(metrics: NriMetrics) {
  const tracker = {
    status: { phase: "connecting", disconnects: 0 } as PluginStatus,
    onStatus(next: PluginStatus) {
      if (next.disconnects > tracker.status.disconnects) {
        metrics.disconnects.inc({}, next.disconnects - tracker.status.disconnects);
      }
      tracker.status = next;
      metrics.connected.set({}, next.phase === "synchronized" ? 1 : 0);
    },
  };
  return tracker;
}

/** Health: alive unless stopped; ready while connected to the runtime. */
function healthEndpoint(
  metrics: NriMetrics,
  tracker: ReturnType<typeof connectionStatus>,
): HealthEndpoint {
  return {
    registry: metrics.registry,
    healthz: () => {
      const status = tracker.status;
      return status.phase === "stopped"
        ? { ok: false, detail: "stopped" }
        : { ok: true, detail: status.phase };
    },
    readyz: () => {
      const status = tracker.status;
      return status.phase === "synchronized"
        ? { ok: true, detail: `connected to ${status.runtime?.name ?? "the runtime"}` }
        : {
          ok: false,
          detail: `not connected to the runtime (${status.phase}${
            status.lastError ? `: ${status.lastError}` : ""
          })`,
        };
    },
  };
}

/** An abort signal raised by SIGTERM or SIGINT; `dispose` removes the listeners. */
function stopOnSignals(log: Logger): { signal: AbortSignal; dispose: () => void } {
  const stop = new AbortController();
  const signals: [Deno.Signal, () => void][] = (["SIGTERM", "SIGINT"] as const).map((sig) => [
    sig,
    () => {
      if (!stop.signal.aborted) log.info(`${sig}: stopping; attachments stay in place`);
      stop.abort();
    },
  ]);
  for (const [sig, fn] of signals) Deno.addSignalListener(sig, fn);
  return {
    signal: stop.signal,
    dispose: () => {
      for (const [sig, fn] of signals) Deno.removeSignalListener(sig, fn);
    },
  };
}

async function serve(opts: NriServeOptions, log: Logger): Promise<number> {
  const source = networkSource(opts);
  await Deno.mkdir(opts.cacheDir, { recursive: true, mode: 0o700 });
  const swept = sweepPodStateDir(opts.cacheDir);
  if (swept.length) log.info("left-over pod state temp files removed", { files: swept });
  await warmUp(opts, source, log);
  const metrics = createNriMetrics();
  const caches = source.kind === "kubernetes"
    ? await (await import("./kube_cache.ts")).startKubeCaches({
      kubeconfig: opts.kubeconfig,
      nodeName: opts.nodeName,
      cacheDir: opts.cacheDir,
      attemptMs: KUBE_WRITE_ATTEMPT_MS,
      podWaitMs: POD_WATCH_WAIT_MS,
      log,
      registry: metrics.registry,
    })
    : undefined;
  const deps = createDeps(opts, source, log, metrics, caches?.kube);
  if (opts.hotplug) {
    const { startNriHotplug } = await import("./hotplug.ts");
    deps.hotplug = startNriHotplug(opts, log, deps.metrics.registry, caches?.kube);
  }
  refreshAttachedGauge(deps);
  const tracker = connectionStatus(deps.metrics);
  const stop = stopOnSignals(log);
  let server: HealthServer | undefined;
  try {
    if (opts.healthAddr) {
      server = await startHealthEndpoint(
        opts.healthAddr,
        healthEndpoint(deps.metrics, tracker),
        log,
      );
    }
    log.info("starting", {
      socket: opts.socketPath,
      plugin: `${opts.pluginIndex}-${opts.pluginName}`,
      source: `${source.kind} ${opts.confDir}`,
      cacheDir: opts.cacheDir,
      onFailure: opts.onFailure,
    });
    await runNriPlugin(nriHooks(deps), {
      socketPath: opts.socketPath,
      pluginName: opts.pluginName,
      pluginIndex: opts.pluginIndex,
      signal: stop.signal,
      log: nriLogger(log.with({ component: "nri" })),
      onStatus: tracker.onStatus,
    });
    await deps.hotplug?.stop();
    await deps.reconciler.stop();
    await settlesWithin(deps.attacher.idle(), DRAIN_MS);
    await settlesWithin(deps.dra?.close() ?? Promise.resolve(), DRAIN_MS);
    await caches?.stop(REPORTS_DRAIN_MS);
    return 0;
  } finally {
    stop.dispose();
    await server?.shutdown().catch(() => {});
  }
}

/** Runs `hydra nri <subcommand> …`; returns the exit status. */
export async function runNri(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help" || sub === "help") {
    console.log(nriServeHelp());
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "serve") {
    console.error(`hydra nri: unknown subcommand "${sub}"\n\n${nriServeHelp()}`);
    return 2;
  }
  let opts: NriServeOptions;
  try {
    opts = parseNriServeArgs(rest);
  } catch (err) {
    console.error(`hydra nri serve: ${message(err)}\n\nRun "hydra nri serve --help".`);
    return 2;
  }
  if (opts.help) {
    console.log(nriServeHelp());
    return 0;
  }
  const log = createLogger({
    level: opts.logLevel,
    format: opts.logFormat,
    file: opts.logFile,
    fields: { role: "nri" },
  });
  try {
    return await serve(opts, log);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`hydra nri serve: ${err.message}`);
      return 2;
    }
    log.error("NRI plugin failed", { error: message(err) });
    console.error(`hydra nri serve: ${message(err)}`);
    return 1;
  }
}
