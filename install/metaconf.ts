/**
 * The meta-CNI conf: found the default network's conf in the conf dir (the
 * file the runtime would pick without hydra: first by name among
 * `.conf`/`.conflist`/`.json`), and wraps it as hydra's first delegate in a
 * conflist whose name sorts before it, so the runtime calls hydra instead.
 *
 * @module
 */

import { join } from "node:path";
import { SUPPORTED_VERSIONS } from "../cni/types.ts";
import { InstallError } from "./error.ts";

/** File extensions a CNI runtime loads from the conf dir (as libcni does). */
export const CONF_EXTENSIONS = [".conf", ".conflist", ".json"];

/** The spec version used when the default conf names none. */
const FALLBACK_CNI_VERSION = "1.0.0";

/** The default network's conf as found on disk. */
export interface DefaultConf {
  /** Absolute path of the file. */
  path: string;
  /** Its parsed content: a single plugin conf or a conflist. */
  conf: Record<string, unknown>;
}

/** What goes into the meta conf beside the delegate. */
export interface MetaConfOptions {
  /** The executable's directory (delegates not built in are exec'd from here). */
  binDir: string;
  /** Node kubeconfig on the host; omitted when hydra runs without Kubernetes. */
  kubeconfig?: string;
  /** Keys taken over from an unwrapped meta-plugin (install/multus.ts); `extra` wins over them. */
  unwrapped?: Record<string, unknown>;
  /** Networks after the default one, from an unwrapped meta-plugin's `delegates`. */
  moreDelegates?: Record<string, unknown>[];
  /** The spec version when there is no default conf to take it from. */
  cniVersion?: string;
  /** Further keys for hydra's plugin entry (`cacheDir`, `logFile`, ...). */
  extra?: Record<string, unknown>;
}

/** Names of the files in `dir` a runtime would consider, sorted as it sorts them. */
export async function confFileNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name.startsWith(".")) continue;
    if (!CONF_EXTENSIONS.some((ext) => entry.name.endsWith(ext))) continue;
    if (entry.isDirectory) continue;
    names.push(entry.name);
  }
  // Byte order, as Go's sort.Strings, not locale order.
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** True when a parsed conf is hydra's own (a leftover under another name). */
export function isHydraConf(conf: unknown): boolean {
  if (!isRecord(conf)) return false;
  if (conf.type === "hydra") return true;
  return Array.isArray(conf.plugins) && isRecord(conf.plugins[0]) &&
    conf.plugins[0].type === "hydra";
}

/**
 * Finds the default network's conf in `confDir`: `pinned` (a file name or
 * path) when given, else the first conf file by name that is not hydra's own
 * (`ownName`). Undefined when there is none yet; throws
 * {@link InstallError} when the file is not a usable CNI conf.
 */
export async function findDefaultConf(
  confDir: string,
  ownName: string,
  pinned?: string,
): Promise<DefaultConf | undefined> {
  if (pinned !== undefined) {
    const path = pinned.includes("/") ? pinned : join(confDir, pinned);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw new InstallError(`default CNI conf ${path} cannot be read: ${err}`, { path });
    }
    return { path, conf: parseDefaultConf(path, text) };
  }
  for (const name of await confFileNames(confDir)) {
    if (name === ownName) continue;
    const path = join(confDir, name);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      // Removed between listing and reading: look at the next one.
      if (err instanceof Deno.errors.NotFound) continue;
      throw new InstallError(`default CNI conf ${path} cannot be read: ${err}`, { path });
    }
    const conf = parseDefaultConf(path, text);
    if (isHydraConf(conf)) continue;
    return { path, conf };
  }
  return undefined;
}

/** Parses and checks a default conf; throws {@link InstallError} with the file named. */
export function parseDefaultConf(path: string, text: string): Record<string, unknown> {
  let conf: unknown;
  try {
    conf = JSON.parse(text);
  } catch (err) {
    throw new InstallError(
      `default CNI conf ${path} is not valid JSON (${
        err instanceof Error ? err.message : err
      }); fix or remove it, hydra wrote nothing`,
      { path },
    );
  }
  const bad = (why: string) =>
    new InstallError(`default CNI conf ${path} is not a CNI network configuration: ${why}`, {
      path,
    });
  if (!isRecord(conf)) throw bad("not a JSON object");
  if (typeof conf.name !== "string" || conf.name === "") throw bad('no "name"');
  if (Array.isArray(conf.plugins)) {
    if (conf.plugins.length === 0) throw bad('"plugins" is empty');
    conf.plugins.forEach((p: unknown, i: number) => {
      if (!isRecord(p) || typeof p.type !== "string" || p.type === "") {
        throw bad(`plugins[${i}] has no "type"`);
      }
    });
  } else if (typeof conf.type !== "string" || conf.type === "") {
    throw bad('neither "type" nor "plugins"');
  }
  const version = conf.cniVersion;
  if (version !== undefined && !(SUPPORTED_VERSIONS as readonly unknown[]).includes(version)) {
    throw bad(`cniVersion ${JSON.stringify(version)} is not one hydra speaks`);
  }
  return conf;
}

/**
 * Capabilities the delegate's plugins declare: the runtime passes
 * runtimeConfig only for capabilities the conf it loaded declares, so the
 * meta conf must declare them all for the delegate to receive them.
 */
export function delegateCapabilities(conf: Record<string, unknown>): Record<string, boolean> {
  const plugins = Array.isArray(conf.plugins) ? conf.plugins : [conf];
  const caps: Record<string, boolean> = {};
  for (const p of plugins) {
    if (!isRecord(p) || !isRecord(p.capabilities)) continue;
    for (const [name, on] of Object.entries(p.capabilities)) if (on === true) caps[name] = true;
  }
  return Object.fromEntries(Object.keys(caps).sort().map((k) => [k, true]));
}

/** Capabilities of the delegates and those an unwrapped meta-plugin declared, sorted. */
function allCapabilities(
  def: DefaultConf | undefined,
  opts: MetaConfOptions,
): Record<string, boolean> {
  const caps: Record<string, boolean> = {};
  for (const conf of [def?.conf, ...(opts.moreDelegates ?? [])]) {
    if (conf) Object.assign(caps, delegateCapabilities(conf));
  }
  const declared = opts.unwrapped?.capabilities;
  if (isRecord(declared)) {
    for (const [name, on] of Object.entries(declared)) if (on === true) caps[name] = true;
  }
  return Object.fromEntries(Object.keys(caps).sort().map((k) => [k, true]));
}

/**
 * hydra's plugin entry of the meta conf: type, capabilities, binDir and
 * kubeconfig, an unwrapped meta-plugin's keys, then `extra` (which wins),
 * then the delegates (the default conf first).
 */
export function metaPluginEntry(
  def: DefaultConf | undefined,
  opts: MetaConfOptions,
): Record<string, unknown> {
  const plugin: Record<string, unknown> = { type: "hydra" };
  const caps = allCapabilities(def, opts);
  if (Object.keys(caps).length > 0) plugin.capabilities = caps;
  plugin.binDir = opts.binDir;
  if (opts.kubeconfig !== undefined) plugin.kubeconfig = opts.kubeconfig;
  for (const [k, v] of Object.entries(opts.unwrapped ?? {})) {
    if (k !== "type" && k !== "delegates" && k !== "capabilities") plugin[k] = v;
  }
  for (const [k, v] of Object.entries(opts.extra ?? {})) {
    if (k !== "type" && k !== "delegates") plugin[k] = v;
  }
  const delegates = [...(def ? [def.conf] : []), ...(opts.moreDelegates ?? [])];
  if (delegates.length > 0) plugin.delegates = delegates;
  return plugin;
}

/** The meta-CNI conflist wrapping the default conf; deterministic bytes. */
export function renderMetaConf(def: DefaultConf | undefined, opts: MetaConfOptions): Uint8Array {
  const fromDefault = def?.conf.cniVersion;
  const cniVersion = typeof fromDefault === "string"
    ? fromDefault
    : opts.cniVersion ?? FALLBACK_CNI_VERSION;
  const list = { cniVersion, name: "hydra", plugins: [metaPluginEntry(def, opts)] };
  return new TextEncoder().encode(JSON.stringify(list, null, 2) + "\n");
}

/**
 * Conf files that would sort before hydra's `ownName`, making the runtime
 * ignore it; empty when hydra's conf is first.
 */
export async function confsBefore(confDir: string, ownName: string): Promise<string[]> {
  return (await confFileNames(confDir)).filter((n) => n < ownName);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
