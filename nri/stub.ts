/**
 * hydra's NRI plugin stub: connects to the runtime, registers, serves the
 * Plugin service (see `plugin_service.ts`) and reconnects with capped
 * exponential backoff whenever the connection ends, e.g. when containerd
 * restarts. Each new connection registers, is configured and synchronized
 * again, so pods created while hydra was away reach `onSynchronize`.
 *
 * Started by the runtime itself (`NRI_PLUGIN_SOCKET` names an inherited,
 * connected socket), the stub serves that one connection and returns when it
 * ends: the runtime relaunches its plugins on restart.
 *
 * @module
 */

import { ConnectionClosedError } from "./errors.ts";
import { jsonStderrLogger, type Logger } from "./log.ts";
import {
  encodeNri,
  netnsPathOf,
  POD_NETWORK_EVENTS,
  RegisterPluginRequestSchema,
  Runtime,
  RUNTIME_SERVICE,
} from "./messages.ts";
import { createPluginService, type NriHooks, type RuntimeInfo } from "./plugin_service.ts";
import { adoptSocketFd, type ByteTransport, dialUnix } from "./transport.ts";
import { openTrunk, type TrunkEnd } from "./trunk.ts";

export { netnsPathOf };
export type { HookContext, NriHooks, RuntimeInfo } from "./plugin_service.ts";
export type { PodSandbox } from "./messages.ts";

/** Where external plugins find the runtime (containerd's `socket_path`). */
export const DEFAULT_SOCKET_PATH = "/var/run/nri/nri.sock";
/** hydra's plugin name unless configured otherwise. */
export const DEFAULT_PLUGIN_NAME = "hydra";
/** hydra's plugin index (2 digits; plugins run in ascending index order). */
export const DEFAULT_PLUGIN_INDEX = "10";
/** The NRI API version this implementation follows, sent at registration. */
export const NRI_API_VERSION = "v0.12.0";

/** Settings of the stub; every field is optional. */
export interface NriPluginOptions {
  /** Runtime socket to dial; default `DEFAULT_SOCKET_PATH`. */
  socketPath?: string;
  /** Plugin name ([A-Za-z0-9_.+-]+); default `NRI_PLUGIN_NAME`, else "hydra". */
  pluginName?: string;
  /** Two-digit index; default `NRI_PLUGIN_IDX`, else "10". */
  pluginIndex?: string;
  /**
   * Inherited connected socket to serve instead of dialling. Default: the fd
   * named by `NRI_PLUGIN_SOCKET`; `null` never adopts one.
   */
  inheritedSocketFd?: number | null;
  /** Event mask answered to Configure; default RUN|STOP|REMOVE_POD_SANDBOX. */
  events?: number;
  /**
   * Serve the NRI v0.12 pod sandbox RPCs (default true); false leaves pod
   * events to StateChange, as on runtimes before NRI v0.12.
   */
  podSandboxRpcs?: boolean;
  /** Time kept free before the runtime's deadline, in ms; default 300. */
  budgetMarginMs?: number;
  /** Request timeout assumed when Configure names none, in ms; default 2000. */
  defaultRequestTimeoutMs?: number;
  /** Budget for RegisterPlugin and for the Configure that follows; default 5000. */
  registrationTimeoutMs?: number;
  /** First reconnect delay in ms; default 250. */
  reconnectInitialMs?: number;
  /** Longest reconnect delay in ms; default 10000. */
  reconnectMaxMs?: number;
  /** NRI version sent at registration; default `NRI_API_VERSION`. */
  nriVersion?: string;
  /** Stops the stub: the connection is closed and `runNriPlugin` returns. */
  signal?: AbortSignal;
  /** Log sink; default JSON lines on stderr. */
  log?: Logger;
  /** Told about every phase change (for health and metrics). */
  onStatus?: (status: PluginStatus) => void;
  /** Largest inbound mux frame payload; see `createDemux`. */
  maxInboundPayload?: number;
  /** Environment lookup; default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
}

/** Where the stub stands. */
export type PluginPhase =
  | "connecting"
  | "registering"
  | "configured"
  | "synchronized"
  | "disconnected"
  | "stopped";

/** A snapshot for health reporting. */
export interface PluginStatus {
  /** The current phase. */
  phase: PluginPhase;
  /** The runtime of the current connection, once configured. */
  runtime?: RuntimeInfo;
  /** Connections that ended so far. */
  disconnects: number;
  /** Why the last connection ended or failed. */
  lastError?: string;
}

/** How one connection went. */
export interface ConnectionOutcome {
  /** The runtime accepted RegisterPlugin. */
  registered: boolean;
  /** Configure was answered OK. */
  configured: boolean;
  /** The final Synchronize chunk was answered. */
  synchronized: boolean;
  /** How the connection ended. */
  end: TrunkEnd;
}

interface Settings {
  socketPath: string;
  podSandboxRpcs: boolean;
  pluginName: string;
  pluginIndex: string;
  inheritedFd?: number;
  events: number;
  budgetMarginMs: number;
  defaultRequestTimeoutMs: number;
  registrationTimeoutMs: number;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  nriVersion: string;
  log: Logger;
  maxInboundPayload?: number;
}

/** Fills in defaults and checks name and index the way runtimes do. */
function settle(options: NriPluginOptions): Settings {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  const pluginName = options.pluginName ?? env("NRI_PLUGIN_NAME") ?? DEFAULT_PLUGIN_NAME;
  const pluginIndex = options.pluginIndex ?? env("NRI_PLUGIN_IDX") ?? DEFAULT_PLUGIN_INDEX;
  if (!/^[A-Za-z0-9_.+-]+$/.test(pluginName)) {
    throw new RangeError(`invalid NRI plugin name "${pluginName}"`);
  }
  if (!/^[0-9]{2}$/.test(pluginIndex)) {
    throw new RangeError(`invalid NRI plugin index "${pluginIndex}": must be two digits`);
  }
  let inheritedFd: number | undefined;
  if (options.inheritedSocketFd !== undefined) {
    inheritedFd = options.inheritedSocketFd ?? undefined;
  } else {
    const fromEnv = env("NRI_PLUGIN_SOCKET");
    if (fromEnv !== undefined && fromEnv !== "") {
      inheritedFd = Number(fromEnv);
      if (!Number.isInteger(inheritedFd) || inheritedFd < 0) {
        throw new RangeError(`invalid NRI_PLUGIN_SOCKET "${fromEnv}"`);
      }
    }
  }
  return {
    socketPath: options.socketPath ?? DEFAULT_SOCKET_PATH,
    podSandboxRpcs: options.podSandboxRpcs ?? true,
    pluginName,
    pluginIndex,
    inheritedFd,
    events: options.events ?? POD_NETWORK_EVENTS,
    budgetMarginMs: options.budgetMarginMs ?? 300,
    defaultRequestTimeoutMs: options.defaultRequestTimeoutMs ?? 2000,
    registrationTimeoutMs: options.registrationTimeoutMs ?? 5000,
    reconnectInitialMs: options.reconnectInitialMs ?? 250,
    reconnectMaxMs: options.reconnectMaxMs ?? 10_000,
    nriVersion: options.nriVersion ?? NRI_API_VERSION,
    log: options.log ?? jsonStderrLogger(),
    maxInboundPayload: options.maxInboundPayload,
  };
}

/** Resolves after `ms`, or early when `signal` aborts; leaves no timer behind. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Serves one established connection: registers, waits to be configured,
 * then serves until the connection ends (or `options.signal` aborts).
 */
export async function serveNriConnection(
  transport: ByteTransport,
  hooks: NriHooks,
  options: NriPluginOptions = {},
): Promise<ConnectionOutcome> {
  const s = settle(options);
  const report = options.onStatus ?? (() => {});
  const connection = new AbortController();
  const outcome = { registered: false, configured: false, synchronized: false };
  let runtime: RuntimeInfo | undefined;
  let configuredNow: () => void = () => {};
  const configured = new Promise<void>((resolve) => configuredNow = resolve);

  const services = createPluginService({
    hooks,
    events: s.events,
    podSandboxRpcs: s.podSandboxRpcs,
    budgetMarginMs: s.budgetMarginMs,
    defaultRequestTimeoutMs: s.defaultRequestTimeoutMs,
    log: s.log,
    connection: connection.signal,
    onConfigured(info) {
      runtime = info;
      outcome.configured = true;
      report({ phase: "configured", runtime, disconnects: 0 });
      configuredNow();
    },
    onSynchronized(pods) {
      outcome.synchronized = true;
      s.log("info", "synchronized with runtime", { pods });
      report({ phase: "synchronized", runtime, disconnects: 0 });
    },
  });
  const trunk = openTrunk(transport, services, {
    maxInboundPayload: s.maxInboundPayload,
    server: {
      onErrorStatus: (status, request) =>
        s.log("debug", "answered with error status", {
          code: status.code,
          message: status.message,
          method: request.method,
          stream: request.streamId,
        }),
    },
  });
  const stop = () => trunk.close(new ConnectionClosedError("plugin stopping"));
  options.signal?.addEventListener("abort", stop, { once: true });
  if (options.signal?.aborted) stop();
  trunk.ended.then((end) => connection.abort(end.error ?? new ConnectionClosedError(end.kind)));

  try {
    report({ phase: "registering", disconnects: 0 });
    try {
      await trunk.client.call(
        RUNTIME_SERVICE,
        Runtime.method.registerPlugin.name,
        encodeNri(RegisterPluginRequestSchema, {
          pluginName: s.pluginName,
          pluginIdx: s.pluginIndex,
          NRIVersion: s.nriVersion,
        }),
        { timeoutMs: s.registrationTimeoutMs },
      );
      outcome.registered = true;
      s.log("info", "registered with runtime", { name: s.pluginName, index: s.pluginIndex });
    } catch (err) {
      s.log("error", "registration failed", { error: String(err) });
      trunk.close(err instanceof Error ? err : new Error(String(err)));
    }
    if (outcome.registered) {
      // Configure follows registration at once; a runtime that never sends it
      // is not going to use this connection.
      const cancelWatchdog = new AbortController();
      const watchdog = sleep(s.registrationTimeoutMs, cancelWatchdog.signal);
      await Promise.race([configured, watchdog, trunk.ended]);
      cancelWatchdog.abort();
      if (!outcome.configured && !trunk.isEnded) {
        s.log("error", "runtime did not configure the plugin in time");
        trunk.close(new ConnectionClosedError("not configured in time"));
      }
    }
    const end = await trunk.ended;
    return { ...outcome, end };
  } finally {
    options.signal?.removeEventListener("abort", stop);
    connection.abort(new ConnectionClosedError("connection done"));
  }
}

/** The delay before reconnect attempt `failures` (1, 2, ...), with jitter. */
export function reconnectDelay(failures: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

/**
 * Runs the plugin until `options.signal` aborts: dials the runtime, serves
 * the connection, and after it ends dials again with capped exponential
 * backoff (reset once a connection got as far as Synchronize). With an
 * inherited socket, serves that connection only and returns when it ends.
 */
export async function runNriPlugin(hooks: NriHooks, options: NriPluginOptions = {}): Promise<void> {
  const s = settle(options);
  const report = options.onStatus ?? (() => {});
  let disconnects = 0;
  const relay = (status: PluginStatus) => report({ ...status, disconnects });
  const perConnection: NriPluginOptions = { ...options, onStatus: relay, log: s.log };

  if (s.inheritedFd !== undefined) {
    s.log("info", "serving inherited runtime connection", { fd: s.inheritedFd });
    const outcome = await serveNriConnection(adoptSocketFd(s.inheritedFd), hooks, perConnection);
    report({ phase: "stopped", disconnects: 1, lastError: outcome.end.error?.message });
    return;
  }

  let failures = 0;
  let lastError: string | undefined;
  while (!options.signal?.aborted) {
    report({ phase: "connecting", disconnects, lastError });
    let transport: ByteTransport | undefined;
    try {
      transport = await dialUnix(s.socketPath);
    } catch (err) {
      lastError = `dial ${s.socketPath}: ${err instanceof Error ? err.message : err}`;
      s.log(failures === 0 ? "warn" : "debug", "cannot reach runtime", { error: lastError });
    }
    if (transport) {
      s.log("info", "connected to runtime", { socket: s.socketPath });
      const outcome = await serveNriConnection(transport, hooks, perConnection);
      disconnects++;
      lastError = outcome.end.error?.message ?? outcome.end.kind;
      if (outcome.synchronized) failures = 0;
      if (options.signal?.aborted) break;
      s.log("warn", "runtime connection ended", { reason: lastError, kind: outcome.end.kind });
      report({ phase: "disconnected", disconnects, lastError });
    }
    failures++;
    await sleep(reconnectDelay(failures, s.reconnectInitialMs, s.reconnectMaxMs), options.signal);
  }
  report({ phase: "stopped", disconnects, lastError });
}
