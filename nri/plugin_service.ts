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

import { StatusCode, TtrpcStatusError } from "./errors.ts";
import type { Logger } from "./log.ts";
import {
  decodeConfigureRequest,
  decodeEmpty,
  decodePodSandboxRequest,
  decodeStateChangeEvent,
  decodeSynchronizeRequest,
  encodeConfigureResponse,
  encodeEmpty,
  encodeSynchronizeResponse,
  NriEvent,
  PLUGIN_SERVICE,
  type PodSandbox,
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

const HOOK_BY_EVENT: Record<number, PodHook> = {
  [NriEvent.RUN_POD_SANDBOX]: "onRunPodSandbox",
  [NriEvent.STOP_POD_SANDBOX]: "onStopPodSandbox",
  [NriEvent.REMOVE_POD_SANDBOX]: "onRemovePodSandbox",
};

/** Builds the Plugin service for one connection. */
export function createPluginService(options: PluginServiceOptions): ServiceTable {
  const { hooks, log } = options;
  let runtime: RuntimeInfo = {
    name: "",
    version: "",
    nriVersion: "",
    config: "",
    requestTimeoutMs: 0,
    registrationTimeoutMs: 0,
  };
  let syncPods: PodSandbox[] | undefined; // chunks collected so far
  let syncStartedAt = 0;
  const podTails = new Map<string, Promise<void>>();

  /** When the answer must be sent, for a request that started at `anchor`. */
  function budgetDeadline(request: RequestContext, anchor: number): number {
    const timeout = runtime.requestTimeoutMs > 0
      ? runtime.requestTimeoutMs
      : options.defaultRequestTimeoutMs;
    let end = anchor + timeout;
    if (request.deadline !== undefined) end = Math.min(end, request.deadline);
    // Never let the margin eat more than half of what is left.
    const window = Math.max(0, end - request.receivedAt);
    return end - Math.min(options.budgetMarginMs, window / 2);
  }

  /** Runs `task` after earlier tasks of the same pod have settled. */
  function inPodOrder(podId: string, task: () => Promise<void>): Promise<void> {
    const previous = podTails.get(podId) ?? Promise.resolve();
    const run = previous.then(task);
    const tail = run.then(() => {}, () => {});
    podTails.set(podId, tail);
    tail.then(() => {
      if (podTails.get(podId) === tail) podTails.delete(podId);
    });
    return run;
  }

  /** Aborts `controller` if the connection ends before `until` settles. */
  function abortOnConnectionEnd(controller: AbortController, until: Promise<unknown>): void {
    const abort = () => controller.abort(options.connection.reason);
    if (options.connection.aborted) return abort();
    options.connection.addEventListener("abort", abort, { once: true });
    const unlink = () => options.connection.removeEventListener("abort", abort);
    until.then(unlink, unlink);
  }

  /**
   * Races `work` against the budget. Resolves when the work is done in time,
   * rejects with DEADLINE_EXCEEDED when the budget runs out first (the work
   * goes on; its late outcome is logged), or with the work's own error.
   */
  async function withBudget(
    what: string,
    deadline: number,
    work: Promise<void>,
    onExpired: (err: TtrpcStatusError) => void,
  ): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let late = false;
    // Timers overflow past 2^31-1 ms and would fire at once.
    const budgetMs = Math.min(2 ** 31 - 1, Math.max(0, Math.round(deadline - performance.now())));
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        late = true;
        const err = new TtrpcStatusError(
          StatusCode.DEADLINE_EXCEEDED,
          `hydra: ${what} did not finish within its ${budgetMs} ms budget`,
        );
        onExpired(err);
        reject(err);
      }, budgetMs);
    });
    work.then(
      () => late && log("warn", `${what} finished after its budget`),
      (err) => late && log("warn", `${what} failed after its budget`, { error: String(err) }),
    );
    try {
      await Promise.race([work, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  function podLabel(pod: PodSandbox): string {
    return `${pod.namespace}/${pod.name} (${pod.id.slice(0, 12)})`;
  }

  async function dispatchPod(
    hookName: PodHook,
    pod: PodSandbox | undefined,
    rpc: string,
    request: RequestContext,
  ): Promise<void> {
    if (!pod) throw new TtrpcStatusError(StatusCode.INVALID_ARGUMENT, `${rpc} without a pod`);
    const hook = hooks[hookName];
    const what = `${rpc} for pod ${podLabel(pod)}`;
    log("debug", `${what} received`, { pod: pod.id, rpc });
    if (!hook) return;
    const deadline = budgetDeadline(request, request.receivedAt);
    const controller = new AbortController();
    const context: HookContext = { signal: controller.signal, deadline, runtime, rpc };
    // A run whose answer is no longer awaited is not started; releases always
    // run, since the runtime will not ask for them again.
    const mustRun = hookName !== "onRunPodSandbox";
    const work = inPodOrder(pod.id, () => {
      if (controller.signal.aborted && !mustRun) return Promise.resolve();
      return hook.call(hooks, pod, context);
    });
    abortOnConnectionEnd(controller, work);
    try {
      await withBudget(what, deadline, work, (err) => controller.abort(err));
    } catch (err) {
      log("error", `${what} failed`, { pod: pod.id, rpc, error: String(err) });
      if (err instanceof TtrpcStatusError) throw err;
      const reason = err instanceof Error ? err.message : String(err);
      throw new TtrpcStatusError(StatusCode.UNKNOWN, `hydra: ${what}: ${reason}`, { cause: err });
    }
  }

  const configure: UnaryHandler = async (payload) => {
    const req = decodeConfigureRequest(payload);
    runtime = {
      name: req.runtimeName,
      version: req.runtimeVersion,
      nriVersion: req.nriVersion,
      config: req.config,
      requestTimeoutMs: req.requestTimeoutMs,
      registrationTimeoutMs: req.registrationTimeoutMs,
    };
    log("info", "configured by runtime", { runtime: { ...runtime, config: undefined } });
    await hooks.onConfigure?.(runtime);
    options.onConfigured?.(runtime);
    return encodeConfigureResponse({ events: options.events });
  };

  const synchronize: UnaryHandler = async (payload, request) => {
    const req = decodeSynchronizeRequest(payload);
    if (syncPods === undefined) {
      syncPods = [];
      syncStartedAt = request.receivedAt; // all chunks share one deadline
    }
    syncPods.push(...req.pods);
    if (req.more) return encodeSynchronizeResponse({ update: [], more: true });
    const pods = syncPods;
    syncPods = undefined;
    log("info", "synchronizing", { pods: pods.length });
    if (hooks.onSynchronize) {
      const deadline = budgetDeadline(request, syncStartedAt);
      const controller = new AbortController();
      const context: HookContext = {
        signal: controller.signal,
        deadline,
        runtime,
        rpc: "Synchronize",
      };
      const work = hooks.onSynchronize(pods, context);
      // Only a lost connection cuts the sync work short, not its budget.
      abortOnConnectionEnd(controller, work);
      let expired = false;
      try {
        await withBudget("Synchronize", deadline, work, () => expired = true);
      } catch (err) {
        if (expired) {
          log("warn", "Synchronize goes on after its budget; answered OK", { pods: pods.length });
        } else {
          log("error", "Synchronize failed; answered OK", { error: String(err) });
        }
      }
    }
    options.onSynchronized?.(pods.length);
    return encodeSynchronizeResponse({ update: [], more: false });
  };

  const shutdown: UnaryHandler = async (payload) => {
    decodeEmpty(payload);
    log("info", "runtime announced shutdown");
    await hooks.onShutdown?.();
    return encodeEmpty();
  };

  const stateChange: UnaryHandler = async (payload, request) => {
    const evt = decodeStateChangeEvent(payload);
    const hookName = HOOK_BY_EVENT[evt.event];
    if (hookName) await dispatchPod(hookName, evt.pod, "StateChange", request);
    else log("debug", "ignoring state change", { event: evt.event });
    return encodeEmpty();
  };

  function podRpc(hookName: PodHook, rpc: string): UnaryHandler {
    return async (payload, request) => {
      await dispatchPod(hookName, decodePodSandboxRequest(payload).pod, rpc, request);
      return encodeEmpty();
    };
  }

  const methods = new Map<string, UnaryHandler>([
    ["Configure", configure],
    ["Synchronize", synchronize],
    ["Shutdown", shutdown],
    ["StateChange", stateChange],
  ]);
  if (options.podSandboxRpcs ?? true) {
    methods.set("RunPodSandbox", podRpc("onRunPodSandbox", "RunPodSandbox"));
    methods.set("StopPodSandbox", podRpc("onStopPodSandbox", "StopPodSandbox"));
    methods.set("RemovePodSandbox", podRpc("onRemovePodSandbox", "RemovePodSandbox"));
  }
  return new Map([[PLUGIN_SERVICE, methods]]);
}
