/**
 * Handing a whole meta-CNI invocation to the node daemon (`daemonExec`),
 * the one way hydra does it: the exec'd process calls this before anything
 * else is loaded, and the meta-CNI calls it again when it runs anyway. When
 * the meta-CNI conf on stdin asks for it and `hydra daemon` answers on its
 * socket, only the invocation's arguments are forwarded (command,
 * container, namespace, interface, CNI_ARGS, the runtime's capability
 * arguments) with the name and digest of the conf the runtime handed over:
 * the daemon runs the node's own copy of that conf, found in its conf
 * folder, and what its run printed is printed here. It loads this module,
 * the socket client and the CNI error type; the plugin path (skel,
 * meta-CNI, netlink, FFI) is left unloaded.
 *
 * It declines (undefined) whenever the plugin path must decide: a command
 * other than ADD, DEL or CHECK (GC in particular never reaches the
 * daemon), a config that is not a JSON object asking for `daemonExec`,
 * CNI_NETNS_OVERRIDE set (the daemon is never told of it), no daemon
 * listening, or a daemon that will not run this invocation (it does not
 * serve this caller, has no conf of that name or another one, or finds
 * the request malformed: see RUN_LOCALLY_REASONS). The meta-CNI then runs
 * here (and offers the invocation once more, which costs a failed connect),
 * exactly as without this shim.
 *
 * Answers keep what the plugin path printed: the daemon's result as it
 * printed it, its failure as the same error JSON (code, msg, details,
 * tagged with the config's cniVersion; read as cni/plugin_output.ts reads
 * any plugin's) and exit status 1; a daemon that breaks off or stalls
 * mid-invocation is CNI code 11.
 *
 * @module
 */

import { asCniError, CniError, ErrorCode } from "../cni/errors.ts";
import { outputDocument, pluginError } from "../cni/plugin_output.ts";
import { errorVersion } from "../cni/version.ts";
import { connectNodeDaemon, DaemonUnavailableError } from "./client.ts";
import {
  type CniCommand,
  type CniRequest,
  confDigest,
  DEFAULT_CNI_EXEC_TIMEOUT_S,
  DEFAULT_DAEMON_SOCKET,
  POOL_PLUGIN,
  RUN_LOCALLY_REASONS,
  STANDALONE_PLUGINS,
} from "./protocol.ts";

/** What the exec prints on stdout and the status it exits with. */
export interface ShimOutput {
  stdout: string;
  code: number;
}

/** Reads one environment variable (undefined when unset). */
export type EnvLookup = (name: string) => string | undefined;

/** Commands the meta-CNI hands to the daemon; VERSION, STATUS and GC it answers itself. */
const FORWARDED: ReadonlySet<string> = new Set(["ADD", "DEL", "CHECK"]);

/** Where and how long to forward an invocation. */
export interface DaemonExecTarget {
  command: CniCommand;
  socket: string;
  timeoutMs: number;
  /** The parsed stdin config. */
  config: Record<string, unknown>;
}

/** True for a CNI_COMMAND this shim may forward (checked before stdin is read). */
export function isForwardedCommand(command: string | undefined): boolean {
  return command !== undefined && FORWARDED.has(command);
}

/**
 * Where to forward this invocation, or undefined when the plugin path must
 * run it: same rule as the meta-CNI's (`daemonExec: true`, `daemonSocket`
 * not ""), on a config that is a JSON object.
 */
export function daemonExecTarget(env: EnvLookup, stdin: Uint8Array): DaemonExecTarget | undefined {
  const command = env("CNI_COMMAND");
  if (!isForwardedCommand(command)) return undefined;
  // The daemon is not told of the override; the plugin path checks it here.
  if (env("CNI_NETNS_OVERRIDE") !== undefined) return undefined;
  let config: unknown;
  try {
    config = JSON.parse(new TextDecoder().decode(stdin));
  } catch {
    return undefined;
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) return undefined;
  const c = config as Record<string, unknown>;
  if (c.daemonExec !== true || c.daemonSocket === "") return undefined;
  const seconds = typeof c.daemonExecTimeout === "number" && c.daemonExecTimeout > 0
    ? c.daemonExecTimeout
    : DEFAULT_CNI_EXEC_TIMEOUT_S;
  return {
    command: command as CniCommand,
    socket: typeof c.daemonSocket === "string" ? c.daemonSocket : DEFAULT_DAEMON_SOCKET,
    timeoutMs: seconds * 1000,
    config: c,
  };
}

function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 4) + "\n";
}

function failure(err: unknown, config: unknown): ShimOutput {
  return { stdout: formatJson(asCniError(err).toJson(errorVersion(config))), code: 1 };
}

/**
 * The daemon's `{stdout, code}` as this exec's output: a success prints the
 * ADD result as the daemon printed it (nothing for DEL and CHECK); a failure
 * prints the daemon's error again, tagged with this config's cniVersion.
 */
export function answerOutput(body: unknown, target: DaemonExecTarget): ShimOutput {
  const out = body as { stdout?: unknown; code?: unknown } | undefined;
  if (typeof out?.stdout !== "string" || typeof out.code !== "number") {
    return failure(
      new CniError(ErrorCode.Internal, `node daemon gave no outcome of the ${target.command}`),
      target.config,
    );
  }
  const printed = { stdout: out.stdout, code: out.code };
  try {
    if (printed.code !== 0) throw pluginError(printed);
    if (target.command === "ADD") outputDocument(printed, "node daemon");
  } catch (err) {
    return failure(err, target.config);
  }
  return { stdout: target.command === "ADD" ? printed.stdout : "", code: 0 };
}

/**
 * The request for the daemon: the invocation's arguments and which conf it
 * was for; for `plugin` "hydra-pool" the config itself (no node conf names
 * an IPAM plugin's config: its interface plugin hands it over).
 */
export async function cniRequest(
  env: EnvLookup,
  target: DaemonExecTarget,
  plugin?: string,
): Promise<CniRequest> {
  const c = target.config;
  const req: CniRequest = {
    op: "cni",
    command: target.command,
    containerId: env("CNI_CONTAINERID") ?? "",
    netns: env("CNI_NETNS") ?? "",
    ifName: env("CNI_IFNAME") ?? "",
    cniArgs: env("CNI_ARGS") ?? "",
    // Not strings: the daemon refuses the request, and the plugin path says what is wrong.
    network: typeof c.name === "string" ? c.name : "",
    plugin: plugin ?? (typeof c.type === "string" ? c.type : ""),
    timeoutMs: target.timeoutMs,
  };
  if (plugin === POOL_PLUGIN) {
    req.config = c;
    return req;
  }
  req.confDigest = await confDigest(c);
  const rc = c.runtimeConfig;
  if (typeof rc === "object" && rc !== null && !Array.isArray(rc)) {
    req.runtimeConfig = rc as Record<string, unknown>;
  }
  return req;
}

/**
 * Hands the invocation to the daemon and returns what to print, or
 * undefined when it is not to be forwarded, no daemon listens, or the
 * daemon will not run it (the caller runs the plugin path on the same
 * stdin).
 */
export async function execViaDaemon(
  env: EnvLookup,
  stdin: Uint8Array,
): Promise<ShimOutput | undefined> {
  const target = daemonExecTarget(env, stdin);
  if (!target) return undefined;
  return await forwardInvocation(env, target);
}

/**
 * {@link execViaDaemon} for a built-in interface plugin exec'd on its own
 * (`name`, one of STANDALONE_PLUGINS, whose conf asks for `daemonExec`):
 * an ADD without `prevResult` or a DEL is handed over; a CHECK, a chained
 * ADD, or a conf of another type runs here.
 */
export async function standaloneViaDaemon(
  env: EnvLookup,
  stdin: Uint8Array,
  name: string,
): Promise<ShimOutput | undefined> {
  if (!STANDALONE_PLUGINS.has(name)) return undefined;
  const target = daemonExecTarget(env, stdin);
  if (!target || target.config.type !== name || target.command === "CHECK") return undefined;
  if (target.command === "ADD" && target.config.prevResult !== undefined) return undefined;
  return await forwardInvocation(env, target, name);
}

/**
 * Sends one invocation to the daemon at `target.socket` to be run by the
 * built-in `plugin` (the meta-CNI when absent); undefined when no daemon
 * listens there or it will not run it (see RUN_LOCALLY_REASONS).
 */
export async function forwardInvocation(
  env: EnvLookup,
  target: DaemonExecTarget,
  plugin?: string,
): Promise<ShimOutput | undefined> {
  const conn = await connectNodeDaemon(target.socket).catch(() => undefined);
  if (!conn) return undefined;
  try {
    const res = await conn.call(await cniRequest(env, target, plugin), target.timeoutMs);
    if (!res.ok) {
      if (res.reason && RUN_LOCALLY_REASONS.has(res.reason)) return undefined;
      throw new CniError(
        ErrorCode.TryAgainLater,
        `node daemon at ${target.socket}: ${res.message}`,
      );
    }
    return answerOutput(res.body, target);
  } catch (err) {
    if (err instanceof DaemonUnavailableError) {
      return failure(
        new CniError(
          ErrorCode.TryAgainLater,
          `node daemon did not finish the ${target.command}: ${err.message}`,
        ),
        target.config,
      );
    }
    return failure(err, target.config);
  } finally {
    conn.close();
  }
}
