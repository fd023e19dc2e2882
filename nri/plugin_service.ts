/**
 * The `nri.pkg.api.v1alpha1.Plugin` service hydra serves on conn 1 for one
 * connection: Configure, Synchronize (split in chunks), Shutdown, the pod
 * lifecycle as dedicated RPCs (NRI v0.12) and as StateChange events (older
 * runtimes, and the v0.12 fallback). Every other method is left out of the
 * table, so the ttrpc server answers it with UNIMPLEMENTED.
 *
 * Each hook runs under a budget: the runtime's request timeout (from
 * Configure, default 2 s), capped by the request's own deadline, minus a
 * margin. A hook that has not settled by then gets an error answer before the
 * runtime gives up, because a late answer makes the runtime drop the plugin
 * and start the pod without it, while an error fails the pod so the kubelet
 * retries it.
 *
 * @module
 */

import { createKeyedQueue, type KeyedQueue, MAX_TIMER_MS, withTimeout } from "../pkg/async.ts";
import { StatusCode, TtrpcStatusError } from "./errors.ts";
import type { Logger } from "./log.ts";
import {
  ConfigureRequestSchema,
  ConfigureResponseSchema,
  decodeNri,
  EmptySchema,
  encodeNri,
  NriEvent,
  Plugin,
  PLUGIN_SERVICE,
  type PodSandbox,
  StateChangeEventSchema,
  SynchronizeRequestSchema,
  SynchronizeResponseSchema,
} from "./messages.ts";
import type { RequestContext, ServiceTable, UnaryHandler } from "./ttrpc_server.ts";

/** What the runtime said about itself in Configure. */
export interface RuntimeInfo {
  name: string;
  version: string;
  /** NRI version of the runtime (v0.12+ runtimes send it; else ""). */
  nriVersion: string;
  /** Plugin configuration (pre-launched plugins only; else ""). */
  config: string;
  /** Per-request timeout the runtime enforces, in ms (0: not announced). */
  requestTimeoutMs: number;
  /** Registration timeout the runtime enforces, in ms (0: not announced). */
  registrationTimeoutMs: number;
}

/** Passed to every hook. */
export interface HookContext {
  /**
   * Aborted when the runtime no longer waits for this answer: the budget is
   * spent (the runtime has been answered with an error) or the connection is
   * gone. Attach work should stop and roll back; release work should still
   * finish, since the runtime does not ask again.
   */
  signal: AbortSignal;
  /** `performance.now()` by which the hook must settle. */
  deadline: number;
  /** The runtime, as announced in Configure. */
  runtime: RuntimeInfo;
  /** The RPC that carried the event ("RunPodSandbox", "StateChange", ...). */
  rpc: string;
}

/**
 * What hydra does on NRI events. Each hook is optional; a thrown
 * `TtrpcStatusError` picks the status code, anything else is UNKNOWN.
 * Hooks for the same pod id never overlap and run in arrival order.
 */
export interface NriHooks {
  /** After Configure; throwing refuses the runtime (it drops the plugin). */
  onConfigure?(runtime: RuntimeInfo): void | Promise<void>;
  /**
   * Pods that exist when hydra (re)connects, all chunks joined. The runtime
   * is answered OK even when the hook fails or overruns its budget (then it
   * keeps running and may overlap with the per-pod hooks that follow): an
   * error would only make the runtime drop hydra, so pods created meanwhile
   * would miss their networks. The hook retries what it must by itself.
   */
  onSynchronize?(pods: PodSandbox[], context: HookContext): Promise<void>;
  /** A sandbox is being created (its netns exists, CNI has run). */
  onRunPodSandbox?(pod: PodSandbox, context: HookContext): Promise<void>;
  /** A sandbox stopped; runs before the runtime's own CNI teardown. */
  onStopPodSandbox?(pod: PodSandbox, context: HookContext): Promise<void>;
  /** A sandbox is removed; runs after the runtime released its network. */
  onRemovePodSandbox?(pod: PodSandbox, context: HookContext): Promise<void>;
  /** The runtime announced a shutdown. */
  onShutdown?(): void | Promise<void>;
}

/** Settings of the service for one connection. */
export interface PluginServiceOptions {
  hooks: NriHooks;
  /** Event mask answered to Configure. */
  events: number;
  /** Kept free before the runtime's deadline, in ms. */
  budgetMarginMs: number;
  /** Request timeout assumed when Configure announces none, in ms. */
  defaultRequestTimeoutMs: number;
  log: Logger;
  /** Aborted when the connection ends. */
  connection: AbortSignal;
  /**
   * Serve the v0.12 RunPodSandbox/StopPodSandbox/RemovePodSandbox RPCs
   * (default true). When false they are UNIMPLEMENTED and a v0.12 runtime
   * falls back to StateChange, the only path of older runtimes.
   */
  podSandboxRpcs?: boolean;
  /** Told when Configure was answered OK. */
  onConfigured?(runtime: RuntimeInfo): void;
  /** Told when the final Synchronize chunk was answered. */
  onSynchronized?(podCount: number): void;
}

type PodHook = "onRunPodSandbox" | "onStopPodSandbox" | "onRemovePodSandbox";

/** The Run/Stop/RemovePodSandbox methods of the Plugin service. */
type PodMethod = (typeof Plugin.method)["runPodSandbox" | "stopPodSandbox" | "removePodSandbox"];

const HOOK_BY_EVENT: Record<number, PodHook> = {
  [NriEvent.RUN_POD_SANDBOX]: "onRunPodSandbox",
  [NriEvent.STOP_POD_SANDBOX]: "onStopPodSandbox",
  [NriEvent.REMOVE_POD_SANDBOX]: "onRemovePodSandbox",
};

/** One connection's service: its settings and what it learned so far. */
interface Service {
  options: PluginServiceOptions;
  hooks: NriHooks;
  log: Logger;
  runtime: RuntimeInfo;
  /** Synchronize chunks collected so far. */
  syncPods?: PodSandbox[];
  syncStartedAt: number;
  /** Hooks of one pod run one after the other, in arrival order. */
  pods: KeyedQueue;
}

/** When the answer must be sent, for a request that started at `anchor`. */
function budgetDeadline(s: Service, request: RequestContext, anchor: number): number {
  const timeout = s.runtime.requestTimeoutMs > 0
    ? s.runtime.requestTimeoutMs
    : s.options.defaultRequestTimeoutMs;
  let end = anchor + timeout;
  if (request.deadline !== undefined) end = Math.min(end, request.deadline);
  // Never let the margin eat more than half of what is left.
  const window = Math.max(0, end - request.receivedAt);
  return end - Math.min(s.options.budgetMarginMs, window / 2);
}

/** Aborts `controller` if the connection ends before `until` settles. */
function abortOnConnectionEnd(
  connection: AbortSignal,
  controller: AbortController,
  until: Promise<unknown>,
): void {
  const abort = () => controller.abort(connection.reason);
  if (connection.aborted) return abort();
  connection.addEventListener("abort", abort, { once: true });
  const unlink = () => connection.removeEventListener("abort", abort);
  until.then(unlink, unlink);
}

/**
 * Races `work` against the budget. Resolves when the work is done in time,
 * rejects with DEADLINE_EXCEEDED when the budget runs out first (the work
 * goes on; its late outcome is logged), or with the work's own error.
 */
async function withBudget(
  s: Service,
  what: string,
  deadline: number,
  work: Promise<void>,
  onExpired: (err: TtrpcStatusError) => void,
): Promise<void> {
  let late = false;
  const budgetMs = Math.min(MAX_TIMER_MS, Math.max(0, Math.round(deadline - performance.now())));
  work.then(
    () => late && s.log("warn", `${what} finished after its budget`),
    (err) => late && s.log("warn", `${what} failed after its budget`, { error: String(err) }),
  );
  await withTimeout(work, budgetMs, () => {
    late = true;
    const err = new TtrpcStatusError(
      StatusCode.DEADLINE_EXCEEDED,
      `hydra: ${what} did not finish within its ${budgetMs} ms budget`,
    );
    onExpired(err);
    return err;
  });
}

function podLabel(pod: PodSandbox): string {
  return `${pod.namespace}/${pod.name} (${pod.id.slice(0, 12)})`;
}

/** Runs a pod hook for `rpc` in the pod's order and within the budget. */
async function dispatchPod(
  s: Service,
  hookName: PodHook,
  pod: PodSandbox | undefined,
  rpc: string,
  request: RequestContext,
): Promise<void> {
  if (!pod) throw new TtrpcStatusError(StatusCode.INVALID_ARGUMENT, `${rpc} without a pod`);
  const hook = s.hooks[hookName];
  const what = `${rpc} for pod ${podLabel(pod)}`;
  s.log("debug", `${what} received`, { pod: pod.id, rpc });
  if (!hook) return;
  const deadline = budgetDeadline(s, request, request.receivedAt);
  const controller = new AbortController();
  const context: HookContext = { signal: controller.signal, deadline, runtime: s.runtime, rpc };
  // A run whose answer is no longer awaited is not started; releases always
  // run, since the runtime will not ask for them again.
  const mustRun = hookName !== "onRunPodSandbox";
  const work = s.pods.run(pod.id, () => {
    if (controller.signal.aborted && !mustRun) return Promise.resolve();
    return hook.call(s.hooks, pod, context);
  });
  abortOnConnectionEnd(s.options.connection, controller, work);
  try {
    await withBudget(s, what, deadline, work, (err) => controller.abort(err));
  } catch (err) {
    s.log("error", `${what} failed`, { pod: pod.id, rpc, error: String(err) });
    if (err instanceof TtrpcStatusError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new TtrpcStatusError(StatusCode.UNKNOWN, `hydra: ${what}: ${reason}`, { cause: err });
  }
}

function configureHandler(s: Service): UnaryHandler {
  return async (payload) => {
    const req = decodeNri(ConfigureRequestSchema, payload);
    s.runtime = {
      name: req.runtimeName,
      version: req.runtimeVersion,
      nriVersion: req.NRIVersion,
      config: req.config,
      requestTimeoutMs: Number(req.requestTimeout),
      registrationTimeoutMs: Number(req.registrationTimeout),
    };
    s.log("info", "configured by runtime", { runtime: { ...s.runtime, config: undefined } });
    await s.hooks.onConfigure?.(s.runtime);
    s.options.onConfigured?.(s.runtime);
    return encodeNri(ConfigureResponseSchema, { events: s.options.events });
  };
}

/** Runs the Synchronize hook within the budget; its failure or overrun is only logged. */
async function runSynchronize(
  s: Service,
  hook: NonNullable<NriHooks["onSynchronize"]>,
  pods: PodSandbox[],
  request: RequestContext,
): Promise<void> {
  const deadline = budgetDeadline(s, request, s.syncStartedAt);
  const controller = new AbortController();
  const context: HookContext = {
    signal: controller.signal,
    deadline,
    runtime: s.runtime,
    rpc: "Synchronize",
  };
  const work = hook.call(s.hooks, pods, context);
  // Only a lost connection cuts the sync work short, not its budget.
  abortOnConnectionEnd(s.options.connection, controller, work);
  let expired = false;
  try {
    await withBudget(s, "Synchronize", deadline, work, () => expired = true);
  } catch (err) {
    if (expired) {
      s.log("warn", "Synchronize goes on after its budget; answered OK", { pods: pods.length });
    } else {
      s.log("error", "Synchronize failed; answered OK", { error: String(err) });
    }
  }
}

function synchronizeHandler(s: Service): UnaryHandler {
  return async (payload, request) => {
    const req = decodeNri(SynchronizeRequestSchema, payload);
    if (s.syncPods === undefined) {
      s.syncPods = [];
      s.syncStartedAt = request.receivedAt; // all chunks share one deadline
    }
    s.syncPods.push(...req.pods);
    if (req.more) return encodeNri(SynchronizeResponseSchema, { more: true });
    const pods = s.syncPods;
    s.syncPods = undefined;
    s.log("info", "synchronizing", { pods: pods.length });
    if (s.hooks.onSynchronize) await runSynchronize(s, s.hooks.onSynchronize, pods, request);
    s.options.onSynchronized?.(pods.length);
    return encodeNri(SynchronizeResponseSchema);
  };
}

function shutdownHandler(s: Service): UnaryHandler {
  return async (payload) => {
    decodeNri(EmptySchema, payload);
    s.log("info", "runtime announced shutdown");
    await s.hooks.onShutdown?.();
    return encodeNri(EmptySchema);
  };
}

function stateChangeHandler(s: Service): UnaryHandler {
  return async (payload, request) => {
    const evt = decodeNri(StateChangeEventSchema, payload);
    const hookName = HOOK_BY_EVENT[evt.event];
    if (hookName) await dispatchPod(s, hookName, evt.pod, "StateChange", request);
    else s.log("debug", "ignoring state change", { event: evt.event });
    return encodeNri(EmptySchema);
  };
}

/** A v0.12 pod RPC: its request carries the pod, its response is empty. */
function podRpc(s: Service, hookName: PodHook, method: PodMethod): [string, UnaryHandler] {
  const handler: UnaryHandler = async (payload, request) => {
    const { pod } = decodeNri(method.input, payload);
    await dispatchPod(s, hookName, pod, method.name, request);
    return encodeNri(method.output);
  };
  return [method.name, handler];
}

/** Builds the Plugin service for one connection. */
export function createPluginService(options: PluginServiceOptions): ServiceTable {
  const s: Service = {
    options,
    hooks: options.hooks,
    log: options.log,
    runtime: {
      name: "",
      version: "",
      nriVersion: "",
      config: "",
      requestTimeoutMs: 0,
      registrationTimeoutMs: 0,
    },
    syncStartedAt: 0,
    pods: createKeyedQueue(),
  };
  const rpc = Plugin.method;
  const methods = new Map<string, UnaryHandler>([
    [rpc.configure.name, configureHandler(s)],
    [rpc.synchronize.name, synchronizeHandler(s)],
    [rpc.shutdown.name, shutdownHandler(s)],
    [rpc.stateChange.name, stateChangeHandler(s)],
  ]);
  if (options.podSandboxRpcs ?? true) {
    methods.set(...podRpc(s, "onRunPodSandbox", rpc.runPodSandbox));
    methods.set(...podRpc(s, "onStopPodSandbox", rpc.stopPodSandbox));
    methods.set(...podRpc(s, "onRemovePodSandbox", rpc.removePodSandbox));
  }
  return new Map([[PLUGIN_SERVICE, methods]]);
}
