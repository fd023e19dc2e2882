/**
 * Running a network configuration list as a runtime does (spec section 3,
 * libcni's AddNetworkList and friends).
 *
 * - ADD runs the plugins in order, each getting the previous one's result as
 *   `prevResult` (none for the first), stops at the first error, and caches
 *   the final result (libcni's cache format, see cache.ts).
 * - DEL runs them in reverse with the cached result as `prevResult`
 *   (config >= 0.4.0), then drops the cache entry.
 * - CHECK (config >= 0.4.0; a no-op with `disableCheck`) runs them in order
 *   with the cached result.
 * - GC (a no-op with `disableGC`) DELs every cached attachment of the network
 *   not listed as valid, then (config >= 1.1.0) sends GC with
 *   `cni.dev/valid-attachments` to every plugin, collecting all errors.
 * - STATUS (config >= 1.1.0) asks each plugin, stopping at the first error.
 *
 * Each plugin's request is its plugin object plus the list's `cniVersion`
 * and `name`; for ADD/DEL/CHECK also `runtimeConfig` holding the capability
 * arguments the caller supplies for capabilities the plugin declares true,
 * with `capabilities` itself removed.
 *
 * @module
 */

import { type ArgPair, formatCniArgs } from "./args.ts";
import {
  DEFAULT_CACHE_DIR,
  deleteCacheEntry,
  listCacheEntries,
  quarantineCacheEntry,
  readCachedResult,
  unreadableCacheEntries,
  writeCacheEntry,
} from "./cache.ts";
import type { ConfList } from "./conf.ts";
import { convertResult } from "./convert.ts";
import { validateContainerId, validateInterfaceName, validateNetworkName } from "./env.ts";
import { CniError, ErrorCode, throwIfCancelled } from "./errors.ts";
import { invokePlugin } from "./invoke.ts";
import type { AnyResult, Attachment, Builtins, Command, NetConf } from "./types.ts";
import { normalizeVersion, versionAtLeast } from "./version.ts";

/** The per-attachment parameters of a list operation (libcni's RuntimeConf). */
export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifName: string;
  /** CNI_ARGS pairs. */
  args?: ArgPair[];
  /** Capability arguments, by capability name. */
  capabilityArgs?: Record<string, unknown>;
}

/** Where and how plugins run. */
export interface ListOptions {
  /** CNI_PATH. */
  path: readonly string[];
  /** Result cache folder; default /var/lib/cni. */
  cacheDir?: string;
  /** Per-plugin timeout in ms. */
  timeoutMs?: number;
  /** Environment the plugins inherit; default this process's. */
  baseEnv?: Readonly<Record<string, string>>;
  /** Plugins run in-process (see invoke.ts); default none: every plugin is exec'd. */
  builtins?: Builtins;
  /**
   * ADD and CHECK stop when it aborts (the caller gave up): no further plugin
   * starts, a running exec'd one is killed (see invoke.ts). DEL does not
   * take it: undoing always runs to the end.
   */
  signal?: AbortSignal;
  /** Told of a cached result that could not be read and was set aside (for the log). */
  onDamaged?: (network: string, movedTo: string, err: unknown) => void;
}

/** Builds one plugin's request config. */
export function buildPluginConfig(
  list: ConfList,
  plugin: NetConf,
  command: Command,
  prevResult?: AnyResult,
  capabilityArgs?: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion: list.cniVersion, name: list.name };
  const attachment = command === "ADD" || command === "DEL" || command === "CHECK";
  for (const [key, value] of Object.entries(plugin)) {
    if (key === "cniVersion" || key === "name" || key === "prevResult") continue;
    if (key.startsWith("cni.dev/")) continue;
    if (key === "capabilities" && attachment) continue;
    out[key] = value;
  }
  if (attachment) {
    const runtimeConfig: Record<string, unknown> = {};
    for (const [cap, enabled] of Object.entries(plugin.capabilities ?? {})) {
      if (enabled === true && capabilityArgs && Object.hasOwn(capabilityArgs, cap)) {
        runtimeConfig[cap] = capabilityArgs[cap];
      }
    }
    if (Object.keys(runtimeConfig).length) out.runtimeConfig = runtimeConfig;
  }
  if (prevResult) out.prevResult = prevResult;
  return out;
}

function describe(plugin: NetConf): string {
  return plugin.name ? `type="${plugin.type}" name="${plugin.name}"` : `type="${plugin.type}"`;
}

function wrap(err: unknown, plugin: NetConf, verb: string): CniError {
  const e = err instanceof CniError ? err : new CniError(ErrorCode.Internal, String(err));
  return new CniError(
    e.code,
    `plugin ${describe(plugin)} failed (${verb}): ${e.message}`,
    e.details,
  );
}

function cacheDirOf(opts: ListOptions): string {
  return opts.cacheDir ?? DEFAULT_CACHE_DIR;
}

function attachmentRequest(rt: RuntimeConf) {
  return {
    containerId: rt.containerId,
    netns: rt.netns,
    ifName: rt.ifName,
    args: formatCniArgs(rt.args ?? []),
  };
}

/** Runs ADD over the list; returns the final result in the list's version and caches it. */
export async function addNetworkList(
  list: ConfList,
  rt: RuntimeConf,
  opts: ListOptions,
): Promise<AnyResult> {
  validateContainerId(rt.containerId);
  validateNetworkName(list.name);
  validateInterfaceName(rt.ifName);
  const version = normalizeVersion(list.cniVersion);
  let result: AnyResult | undefined;
  for (const plugin of list.plugins) {
    try {
      throwIfCancelled(opts.signal);
      const out = await invokePlugin({
        command: "ADD",
        type: plugin.type,
        config: buildPluginConfig(list, plugin, "ADD", result, rt.capabilityArgs),
        path: opts.path,
        timeoutMs: opts.timeoutMs,
        baseEnv: opts.baseEnv,
        builtins: opts.builtins,
        signal: opts.signal,
        ...attachmentRequest(rt),
      });
      result = convertResult(out!, version);
    } catch (err) {
      throw wrap(err, plugin, "add");
    }
  }
  if (!result) throw new CniError(ErrorCode.InvalidNetworkConfig, `no plugins in "${list.name}"`);
  try {
    await writeCacheEntry(cacheDirOf(opts), {
      kind: "cniCacheV1",
      containerId: rt.containerId,
      config: list.bytes,
      ifName: rt.ifName,
      networkName: list.name,
      netns: rt.netns,
      cniArgs: rt.args,
      capabilityArgs: rt.capabilityArgs,
      result: result as unknown as Record<string, unknown>,
    });
  } catch (err) {
    throw new CniError(
      ErrorCode.IoFailure,
      `failed to set network "${list.name}" cached result: ${(err as Error).message}`,
    );
  }
  return result;
}

/** The cached ADD result of an attachment of `list`, in the list's version. */
export async function getCachedResult(
  list: ConfList,
  rt: RuntimeConf,
  opts: ListOptions,
): Promise<AnyResult | undefined> {
  return await readCachedResult(
    cacheDirOf(opts),
    list.name,
    normalizeVersion(list.cniVersion),
    rt.containerId,
    rt.ifName,
  );
}

/**
 * The cached result for DEL and CHECK: one that cannot be read (a crash
 * truncated or zeroed it) is set aside and counts as missing, as libcni
 * treats a missing one: the plugins run without `prevResult`.
 */
async function usableCachedResult(
  list: ConfList,
  rt: RuntimeConf,
  opts: ListOptions,
): Promise<AnyResult | undefined> {
  try {
    return await getCachedResult(list, rt, opts);
  } catch (err) {
    if (!(err instanceof CniError) || err.code !== ErrorCode.DecodingFailure) throw err;
    const cacheDir = cacheDirOf(opts);
    const movedTo = await quarantineCacheEntry(cacheDir, list.name, rt.containerId, rt.ifName)
      .catch(async () => {
        await deleteCacheEntry(cacheDir, list.name, rt.containerId, rt.ifName).catch(() => {});
        return "";
      });
    opts.onDamaged?.(list.name, movedTo, err);
    return undefined;
  }
}

/** Runs DEL over the list in reverse; removes the cache entry when all succeed. */
export async function delNetworkList(
  list: ConfList,
  rt: RuntimeConf,
  opts: ListOptions,
): Promise<void> {
  const cacheDir = cacheDirOf(opts);
  let cached: AnyResult | undefined;
  if (versionAtLeast(normalizeVersion(list.cniVersion), "0.4.0")) {
    cached = await usableCachedResult(list, rt, opts).catch(() => undefined);
  }
  for (const plugin of [...list.plugins].reverse()) {
    try {
      await invokePlugin({
        command: "DEL",
        type: plugin.type,
        config: buildPluginConfig(list, plugin, "DEL", cached, rt.capabilityArgs),
        path: opts.path,
        timeoutMs: opts.timeoutMs,
        baseEnv: opts.baseEnv,
        builtins: opts.builtins,
        ...attachmentRequest(rt),
      });
    } catch (err) {
      throw wrap(err, plugin, "delete");
    }
  }
  await deleteCacheEntry(cacheDir, list.name, rt.containerId, rt.ifName).catch(() => {});
}

/** Runs CHECK over the list in order with the cached result. */
export async function checkNetworkList(
  list: ConfList,
  rt: RuntimeConf,
  opts: ListOptions,
): Promise<void> {
  const version = normalizeVersion(list.cniVersion);
  if (!versionAtLeast(version, "0.4.0")) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      `configuration version "${version}" of network "${list.name}" does not support the CHECK command`,
    );
  }
  if (list.disableCheck) return;
  let cached: AnyResult | undefined;
  try {
    cached = await usableCachedResult(list, rt, opts);
  } catch (err) {
    const e = err instanceof CniError ? err : new CniError(ErrorCode.IoFailure, String(err));
    throw new CniError(
      e.code,
      `failed to get network "${list.name}" cached result: ${e.message}`,
      e.details,
    );
  }
  for (const plugin of list.plugins) {
    try {
      throwIfCancelled(opts.signal);
      await invokePlugin({
        command: "CHECK",
        type: plugin.type,
        config: buildPluginConfig(list, plugin, "CHECK", cached, rt.capabilityArgs),
        path: opts.path,
        timeoutMs: opts.timeoutMs,
        baseEnv: opts.baseEnv,
        builtins: opts.builtins,
        signal: opts.signal,
        ...attachmentRequest(rt),
      });
    } catch (err) {
      throw wrap(err, plugin, "check");
    }
  }
}

/** Joins several errors into one, keeping the first one's code. */
export function joinErrors(errors: readonly CniError[]): CniError | undefined {
  if (errors.length === 0) return undefined;
  if (errors.length === 1) return errors[0];
  return new CniError(errors[0].code, errors.map((e) => e.message).join("; "));
}

/**
 * The cached attachments of `list` not in `keep` ("<containerID>\0<ifName>"),
 * those whose cache entry cannot be read included (told by file name: the
 * DEL then sets the entry aside).
 */
async function staleAttachments(
  list: ConfList,
  keep: ReadonlySet<string>,
  opts: ListOptions,
): Promise<RuntimeConf[]> {
  const cacheDir = cacheDirOf(opts);
  const out: RuntimeConf[] = [];
  for (const entry of await listCacheEntries(cacheDir)) {
    if (entry.networkName !== list.name) continue;
    if (keep.has(`${entry.containerId}\0${entry.ifName}`)) continue;
    out.push({
      containerId: entry.containerId,
      netns: entry.netns ?? "",
      ifName: entry.ifName,
      args: entry.cniArgs,
      capabilityArgs: entry.capabilityArgs,
    });
  }
  for (const a of await unreadableCacheEntries(cacheDir, list.name)) {
    if (!keep.has(`${a.containerId}\0${a.ifName}`)) out.push({ ...a, netns: "" });
  }
  return out;
}

/**
 * Garbage-collects the network: DELs every cached attachment of `list` that
 * `valid` does not name (all of them when `valid` is undefined, as libcni),
 * then sends GC to each plugin (>= 1.1.0). Throws the collected errors.
 */
export async function gcNetworkList(
  list: ConfList,
  valid: readonly Attachment[] | undefined,
  opts: ListOptions,
): Promise<void> {
  if (list.disableGC) return;
  const errors: CniError[] = [];
  const keep = new Set((valid ?? []).map((a) => `${a.containerID}\0${a.ifname}`));
  let stale: RuntimeConf[] = [];
  try {
    stale = await staleAttachments(list, keep, opts);
  } catch (err) {
    errors.push(new CniError(ErrorCode.IoFailure, `cannot list cached attachments: ${err}`));
  }
  for (const rt of stale) {
    try {
      await delNetworkList(list, rt, opts);
    } catch (err) {
      const e = err instanceof CniError ? err : new CniError(ErrorCode.Internal, String(err));
      errors.push(
        new CniError(
          e.code,
          `failed to delete stale attachment ${rt.containerId} ${rt.ifName}: ${e.message}`,
        ),
      );
    }
  }
  if (versionAtLeast(normalizeVersion(list.cniVersion), "1.1.0")) {
    for (const plugin of list.plugins) {
      const config = buildPluginConfig(list, plugin, "GC");
      if (valid) {
        config["cni.dev/valid-attachments"] = valid;
        // Older plugins read the key under the name an earlier spec draft used.
        config["cni.dev/attachments"] = valid;
      }
      try {
        await invokePlugin({
          command: "GC",
          type: plugin.type,
          config,
          path: opts.path,
          timeoutMs: opts.timeoutMs,
          baseEnv: opts.baseEnv,
          builtins: opts.builtins,
        });
      } catch (err) {
        const e = err instanceof CniError ? err : new CniError(ErrorCode.Internal, String(err));
        errors.push(new CniError(e.code, `failed to GC plugin ${plugin.type}: ${e.message}`));
      }
    }
  }
  const joined = joinErrors(errors);
  if (joined) throw joined;
}

/** Asks each plugin for STATUS (>= 1.1.0; a no-op before); throws the first error. */
export async function statusNetworkList(list: ConfList, opts: ListOptions): Promise<void> {
  if (!versionAtLeast(normalizeVersion(list.cniVersion), "1.1.0")) return;
  for (const plugin of list.plugins) {
    await invokePlugin({
      command: "STATUS",
      type: plugin.type,
      config: buildPluginConfig(list, plugin, "STATUS"),
      path: opts.path,
      timeoutMs: opts.timeoutMs,
      baseEnv: opts.baseEnv,
      builtins: opts.builtins,
    });
  }
}
