/**
 * Invoking a plugin by its `type`: in-process when the request's
 * {@link Builtins} (the seam, handed in by whoever started the process) has
 * it, else by exec of the first regular file of that name on CNI_PATH, as
 * libcni does.
 *
 * An exec gets the inherited environment plus the CNI_* variables of the
 * request (later values win), its config on stdin, and a timeout after which
 * it is killed. A non-zero exit is read as the plugin's error JSON on stdout
 * and its code passed through; with nothing on stdout the error quotes
 * stderr (plugin_output.ts). stderr is forwarded to ours either way. A "text file busy" exec
 * (the binary being replaced right now) is retried up to 5 times, 1 s apart.
 *
 * @module
 */

import { cancelledError, CniError, ErrorCode, throwIfCancelled } from "./errors.ts";
import { parseResult } from "./convert.ts";
import { outputDocument, pluginError } from "./plugin_output.ts";
import { invokeInProcess } from "./skel.ts";
import { joinChunks } from "./stdio.ts";
import type { AnyResult, Builtins, Command, Plugin } from "./types.ts";
import { CURRENT_VERSION, EXEC_ONLY } from "./types.ts";
import type { VersionInfo } from "./version.ts";
import { delay, MAX_TIMER_MS, withTimeout } from "../pkg/async.ts";

/** Default time a plugin may run before it is killed. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** Retries on "text file busy", as libcni does. */
const BUSY_RETRIES = 5;
const BUSY_WAIT_MS = 1_000;

/** One invocation of a plugin. */
export interface PluginRequest {
  command: Command;
  /** The plugin's `type`: a built-in name or a file name on `path`. */
  type: string;
  /** stdin: the config bytes, or an object to serialize. */
  config: Uint8Array | Record<string, unknown>;
  containerId?: string;
  netns?: string;
  ifName?: string;
  /** CNI_ARGS, already joined ("K=V;K2=V2"). */
  args?: string;
  /** CNI_PATH directories, searched in order. */
  path: readonly string[];
  /**
   * Kill an exec'd plugin after this long; default {@link DEFAULT_TIMEOUT_MS}.
   * A built-in run in-process is raced against it only when it is given:
   * the first timer a Deno process arms costs it about 10 ms of CPU, too
   * much to pay on every plugin exec for a limit the runtime enforces anyway.
   */
  timeoutMs?: number;
  /** The environment to inherit; default this process's. */
  baseEnv?: Readonly<Record<string, string>>;
  /** Plugins run in-process, passed on to them; default {@link EXEC_ONLY}. */
  builtins?: Builtins;
  /**
   * The caller gave up: an exec'd plugin is killed, a built-in gets it as its
   * arguments' `signal` and stops at its next safe point (it is waited for:
   * its work must be over before anyone undoes it).
   */
  signal?: AbortSignal;
}

/** What a plugin printed and how it exited. */
export interface RawOutput {
  stdout: Uint8Array;
  stderr: Uint8Array;
  code: number;
}

const decoder = new TextDecoder();

/**
 * Finds `type` on `paths`: the first regular file named so, directory by
 * directory. Throws CniError 7 for a bad name or when nothing is found.
 */
export async function findInPath(type: string, paths: readonly string[]): Promise<string> {
  if (type === "") throw new CniError(ErrorCode.InvalidNetworkConfig, "no plugin name provided");
  if (type.includes("/") || type.includes("\\")) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid plugin name: ${type}`);
  }
  if (paths.length === 0) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `failed to find plugin "${type}": no paths provided (CNI_PATH is empty)`,
    );
  }
  for (const dir of paths) {
    const full = `${dir.replace(/\/+$/, "")}/${type}`;
    try {
      if ((await Deno.stat(full)).isFile) return full;
    } catch {
      // not here; keep looking
    }
  }
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `failed to find plugin "${type}" in path [${paths.join(" ")}]`,
  );
}

/**
 * Where `type` would run from: "builtin" for a plugin `builtins` runs
 * in-process, else its file on `paths`. Throws like {@link findInPath}.
 */
export async function locatePlugin(
  type: string,
  paths: readonly string[],
  builtins: Builtins = EXEC_ONLY,
): Promise<string> {
  if (builtins.has(type)) return "builtin";
  return await findInPath(type, paths);
}

/** The environment a plugin runs with: inherited + CNI_* of the request, last wins. */
export function pluginEnv(req: PluginRequest): Record<string, string> {
  return {
    ...(req.baseEnv ?? Deno.env.toObject()),
    CNI_COMMAND: req.command,
    CNI_CONTAINERID: req.containerId ?? "",
    CNI_NETNS: req.netns ?? "",
    CNI_ARGS: req.args ?? "",
    CNI_IFNAME: req.ifName ?? "",
    CNI_PATH: req.path.join(":"),
  };
}

function configBytes(config: PluginRequest["config"]): Uint8Array {
  return config instanceof Uint8Array ? config : new TextEncoder().encode(JSON.stringify(config));
}

function configVersion(stdin: Uint8Array): string {
  try {
    const v = JSON.parse(decoder.decode(stdin))?.cniVersion;
    return typeof v === "string" ? v : "";
  } catch {
    return "";
  }
}

function timeoutError(type: string, ms: number): CniError {
  return new CniError(
    ErrorCode.Internal,
    `plugin "${type}" timed out after ${ms / 1000}s and was stopped`,
  );
}

function isTextBusy(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === "ETXTBSY" || /text file busy/i.test(e?.message ?? "");
}

async function spawnWithRetry(
  path: string,
  env: Record<string, string>,
  via: readonly string[] = [],
): Promise<Deno.ChildProcess> {
  const [program, ...args] = via.length > 0 ? [...via, path] : [path];
  for (let attempt = 0;; attempt++) {
    try {
      return new Deno.Command(program, {
        args,
        env,
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (err) {
      if (!isTextBusy(err) || attempt >= BUSY_RETRIES) {
        throw new CniError(
          ErrorCode.Internal,
          `failed to run plugin ${path}: ${(err as Error).message}`,
        );
      }
      await delay(BUSY_WAIT_MS);
    }
  }
}

/** Bytes read at a time from a plugin's stdout or stderr. */
const READ_CHUNK = 8 * 1024;

/**
 * All of `stream`, read into one small buffer reused from read to read.
 * `ChildProcess.output()` reads each pipe in large chunks of its own: with
 * a burst of pods a node agent runs tens of plugins at once, and those
 * chunks came to about 0.8 MiB of resident memory per pipe, kept after the
 * burst.
 */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const reader = stream.getReader({ mode: "byob" });
  const chunks: Uint8Array[] = [];
  let size = 0;
  let buf = new Uint8Array(READ_CHUNK);
  try {
    for (;;) {
      const { value, done } = await reader.read(buf);
      if (done || !value) break;
      chunks.push(value.slice());
      size += value.length;
      buf = new Uint8Array(value.buffer);
    }
  } finally {
    reader.releaseLock();
  }
  return joinChunks(chunks, size);
}

/**
 * Execs the plugin file at `path` with `stdin` and `env` (through `via`,
 * see {@link Builtins.execVia}); kills it after `timeoutMs` (clamped to
 * what a timer holds, about 24.8 days: a longer wait would fire at once)
 * or when `signal` aborts.
 */
export async function execPlugin(
  path: string,
  stdin: Uint8Array,
  env: Record<string, string>,
  timeoutMs: number = DEFAULT_TIMEOUT_MS,
  { signal, via }: { signal?: AbortSignal; via?: readonly string[] } = {},
): Promise<RawOutput> {
  throwIfCancelled(signal);
  const child = await spawnWithRetry(path, env, via);
  let timedOut = false;
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, Math.min(Math.max(0, timeoutMs), MAX_TIMER_MS));
  signal?.addEventListener("abort", kill, { once: true });
  try {
    // Collect output while writing stdin, so a plugin that prints before
    // reading cannot fill a pipe and stall both sides.
    const output = Promise.all([readAll(child.stdout), readAll(child.stderr), child.status]);
    const writer = child.stdin.getWriter();
    // A plugin may exit without reading its stdin: a broken pipe is not our failure.
    await writer.write(stdin).catch(() => {});
    await writer.close().catch(() => {});
    const [stdout, stderr, status] = await output;
    if (timedOut) throw timeoutError(path, timeoutMs);
    if (signal?.aborted) throw cancelledError(signal);
    return { stdout, stderr, code: status.code };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", kill);
  }
}

/** Runs a built-in in this process; raced against `timeoutMs` only when one is given. */
async function runInProcess(
  type: string,
  loading: Promise<Plugin>,
  stdin: Uint8Array,
  env: Record<string, string>,
  req: PluginRequest,
): Promise<RawOutput> {
  const plugin = await loading;
  const timeoutMs = req.timeoutMs;
  throwIfCancelled(req.signal);
  const run = invokeInProcess(plugin, env, stdin, req.builtins, req.signal);
  const out = timeoutMs === undefined
    ? await run
    : await withTimeout(run, timeoutMs, () => timeoutError(type, timeoutMs));
  return {
    stdout: new TextEncoder().encode(out.stdout),
    stderr: new Uint8Array(),
    code: out.code,
  };
}

/**
 * Runs a plugin and returns its raw output, in-process when the request's
 * builtins have `type`, else by exec on `path`. Throws the plugin's error
 * (its code kept) when it fails.
 */
export async function runPlugin(req: PluginRequest): Promise<RawOutput> {
  const stdin = configBytes(req.config);
  const env = pluginEnv(req);
  let out: RawOutput;
  const builtin = (req.builtins ?? EXEC_ONLY).load(req.type);
  if (builtin) {
    out = await runInProcess(req.type, builtin, stdin, env, req);
  } else {
    const path = await findInPath(req.type, req.path);
    out = await execPlugin(path, stdin, env, req.timeoutMs ?? DEFAULT_TIMEOUT_MS, {
      signal: req.signal,
      via: req.builtins?.execVia,
    });
    if (out.stderr.length) {
      try {
        Deno.stderr.writeSync(out.stderr);
      } catch {
        // stderr is informational only
      }
    }
  }
  if (out.code !== 0) throw pluginError(out);
  return out;
}

/**
 * Invokes a plugin for `req.command`. ADD returns the plugin's result
 * (a result without cniVersion takes the config's); the other commands
 * return undefined. Failures throw CniError with the plugin's code.
 */
export async function invokePlugin(req: PluginRequest): Promise<AnyResult | undefined> {
  const out = await runPlugin(req);
  if (req.command !== "ADD") return undefined;
  const raw = outputDocument(out, `plugin "${req.type}"`);
  return parseResult(raw, configVersion(configBytes(req.config)));
}

/**
 * Asks a plugin which spec versions it speaks (libcni's probe). A plugin
 * that does not know VERSION speaks 0.1.0.
 */
export async function getVersionInfo(
  type: string,
  path: readonly string[],
  timeoutMs?: number,
  builtins?: Builtins,
): Promise<VersionInfo> {
  let out: RawOutput;
  try {
    out = await runPlugin({
      command: "VERSION",
      type,
      config: { cniVersion: CURRENT_VERSION },
      netns: "dummy",
      ifName: "dummy",
      path: path.length ? path : ["dummy"],
      timeoutMs,
      builtins,
    });
  } catch (err) {
    if (err instanceof CniError && err.message === "unknown CNI_COMMAND: VERSION") {
      return { cniVersion: "0.1.0", supportedVersions: ["0.1.0"] };
    }
    throw err;
  }
  let info: Partial<VersionInfo>;
  try {
    info = JSON.parse(decoder.decode(out.stdout));
  } catch (err) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `decoding version info: ${(err as Error).message}`,
    );
  }
  if (typeof info?.cniVersion !== "string" || info.cniVersion === "") {
    throw new CniError(
      ErrorCode.DecodingFailure,
      "decoding version info: missing field cniVersion",
    );
  }
  if (!Array.isArray(info.supportedVersions) || info.supportedVersions.length === 0) {
    if (info.cniVersion === "0.2.0") {
      return { cniVersion: "0.2.0", supportedVersions: ["0.1.0", "0.2.0"] };
    }
    throw new CniError(
      ErrorCode.DecodingFailure,
      "decoding version info: missing field supportedVersions",
    );
  }
  return { cniVersion: info.cniVersion, supportedVersions: info.supportedVersions.map(String) };
}
