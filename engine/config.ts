/**
 * The meta-CNI's configuration (conf `"type": "hydra"`) and how it resolves
 * into the attachments to make.
 *
 * ```json
 * {
 *   "cniVersion": "1.1.0", "name": "pods", "type": "hydra",
 *   "delegates": [ {conf or conflist}, {…, "ifname": "data0"} ],
 *   "delegatesFromConfDir": "/etc/cni/hydra.d",
 *   "cacheDir": "/var/lib/cni/hydra", "binDir": "/opt/cni/bin",
 *   "logFile": "/var/log/hydra.log", "logLevel": "info", "delegateTimeout": 60,
 *   "chrootDir": "/host"
 * }
 * ```
 *
 * - Exactly one of `delegates` (inline configs, each a single plugin config
 *   or a conflist) and `delegatesFromConfDir` (every `.conf`, `.conflist` and
 *   `.json` in that folder, lexical order; networks using type "hydra" are
 *   skipped) gives the attachments.
 * - The first delegate is the default network: it gets CNI_IFNAME and its
 *   result is hydra's. The others get `net1`, `net2`, … by position, unless
 *   they carry a top-level `ifname` (removed before the delegate runs).
 * - A delegate without `cniVersion`/`cniVersions` takes hydra's cniVersion.
 * - `cacheDir` (default /var/lib/cni/hydra) holds the delegates' libcni
 *   result cache (`results/`) and hydra's record of each container's
 *   attachments (`attachments/`). `binDir` is put before CNI_PATH.
 *   `delegateTimeout` (seconds) bounds every delegate. Unset, exec'd
 *   delegates are stopped after 60 s and built-ins run in-process are not
 *   raced against a timer (arming one costs a hydra process about 10 ms of
 *   CPU; the runtime's own CNI timeout still bounds the call).
 * - `chrootDir`: the host's root as mounted in hydra's container (Multus
 *   thick's key): delegates that are exec'd run chrooted into it, so they
 *   find the host's tools (iptables for portmap and firewall, …). Their
 *   files must be at the same paths in the container and on the host, as
 *   CNI_PATH and the namespace paths are.
 * - `cniDir` (Multus's key): Multus's delegate cache; a DEL without a hydra
 *   record deletes from it what Multus attached (engine/multus_cache.ts).
 * - `logLevel`: debug, info, warn (default), error or off; Multus's
 *   `verbose` reads as debug and `panic` as error. `logToStderr` (Multus's
 *   key): with a `logFile`, true also logs to stderr, false never does.
 * - The conf is checked against its shape (engine/meta_schema.ts): a key of
 *   the wrong type fails ADD and CHECK with code 6 naming it (DEL goes on:
 *   it works from the record); unknown keys are logged as warnings.
 *
 * @module
 */

import { type ConfList, loadConfDir, parseNetworkConfig } from "../cni/conf.ts";
import { validateInterfaceName } from "../cni/env.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { type Fields, fields } from "../pkg/fields.ts";
import { isLogLevel, type LogLevel } from "../pkg/log.ts";
import { enforceShape } from "../pkg/schema.ts";
import type { Command, NetConf } from "../cni/types.ts";
import { META_SHAPE, MULTUS_LOG_LEVELS } from "./meta_schema.ts";

/** hydra's default cache folder for its delegates. */
export const DEFAULT_META_CACHE_DIR = "/var/lib/cni/hydra";

/** Per-delegate timeout of exec'd delegates when `delegateTimeout` is unset, seconds. */
export const DEFAULT_DELEGATE_TIMEOUT_S = 60;

/** The meta-CNI's own options. */
export interface MetaOptions {
  cniVersion: string;
  name: string;
  cacheDir: string;
  binDir?: string;
  logFile?: string;
  logLevel: LogLevel;
  /** `logToStderr`: see the module doc; undefined when unset. */
  logToStderr?: boolean;
  /** `chrootDir`: exec'd delegates run chrooted into it. */
  chrootDir?: string;
  /** `cniDir`: Multus's delegate cache, for DEL of pods Multus attached (engine/multus_cache.ts). */
  multusCacheDir?: string;
  /** From `delegateTimeout`; undefined when unset (see the module doc). */
  delegateTimeoutMs?: number;
}

/** One attachment to make: a network and the interface it gets. */
export interface Delegate {
  ifName: string;
  list: ConfList;
}

type Json = Record<string, unknown>;

function invalid(msg: string, details?: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
}

function typeError(field: string, expected: string): CniError {
  return new CniError(ErrorCode.DecodingFailure, `"${field}" must be ${expected}`);
}

/** The conf's fields: a wrong type is CNI code 6 naming the field. */
function confFields(conf: Json): Fields {
  return fields(conf, { fail: (p) => typeError(p.path, p.expected) });
}

function absolutePath(conf: Json, field: string): string | undefined {
  const v = confFields(conf).string(field);
  if (v === "") throw invalid(`"${field}" is empty`);
  if (v !== undefined && !v.startsWith("/")) {
    throw invalid(`"${field}" must be an absolute path, got "${v}"`);
  }
  return v;
}

/** The configured log level, Multus's names read as hydra's. */
function logLevelOf(c: Json): LogLevel {
  const raw = c.logLevel ?? "warn";
  const level = typeof raw === "string" && Object.hasOwn(MULTUS_LOG_LEVELS, raw)
    ? MULTUS_LOG_LEVELS[raw]
    : raw;
  if (!isLogLevel(level)) {
    throw invalid(
      `"logLevel" must be one of debug, info, warn, error, off (or Multus's verbose, panic); ` +
        `got ${JSON.stringify(raw)}`,
    );
  }
  return level;
}

/**
 * Reads and checks hydra's own options from its config. `command` is the
 * invocation's: on DEL keys of the wrong type that DEL does not read are
 * let through.
 */
export function parseMetaOptions(conf: NetConf, command?: Command): MetaOptions {
  const c = conf as Json;
  enforceShape(c, META_SHAPE, {
    fail: (p) => typeError(p.path, `${p.expected}, got ${p.got}`),
    types: command !== "DEL",
  });
  const logLevel = logLevelOf(c);
  const timeout = fields(c, {
    fail: (p) => typeError(p.key, "a number of seconds"),
  }).number("delegateTimeout");
  if (timeout !== undefined && !(timeout > 0)) {
    throw invalid(`"delegateTimeout" must be more than 0 seconds`);
  }
  return {
    cniVersion: conf.cniVersion ?? "",
    name: conf.name ?? "",
    cacheDir: absolutePath(c, "cacheDir") ?? DEFAULT_META_CACHE_DIR,
    binDir: absolutePath(c, "binDir"),
    logFile: absolutePath(c, "logFile"),
    logLevel,
    logToStderr: confFields(c).boolean("logToStderr"),
    chrootDir: absolutePath(c, "chrootDir"),
    multusCacheDir: absolutePath(c, "cniDir"),
    delegateTimeoutMs: timeout === undefined ? undefined : timeout * 1000,
  };
}

function usesHydra(list: ConfList): boolean {
  return list.plugins.some((p) => p.type === "hydra");
}

/** Prepares an inline delegate: takes out `ifname`, fills in the version. */
function inlineDelegate(raw: unknown, index: number, hydraVersion: string) {
  const where = `delegates[${index}]`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw typeError(where, "an object (a plugin config or a conflist)");
  }
  const conf = { ...(raw as Json) };
  const ifName = conf.ifname;
  delete conf.ifname;
  if (ifName !== undefined && typeof ifName !== "string") {
    throw typeError(`${where}.ifname`, "a string");
  }
  if (conf.cniVersion === undefined && conf.cniVersions === undefined && hydraVersion) {
    conf.cniVersion = hydraVersion;
  }
  const list = parseNetworkConfig(new TextEncoder().encode(JSON.stringify(conf)), where);
  return { list, ifName: ifName as string | undefined, where };
}

/** The `ifname` a conf file names at its top level (for a .conf: its plugin's). */
function fileIfName(list: ConfList): string | undefined {
  const first = list.plugins[0] as Json;
  let top: Json = {};
  try {
    top = JSON.parse(new TextDecoder().decode(list.bytes));
  } catch {
    // bytes were parsed on load; cannot fail here
  }
  const v = list.source?.endsWith(".conflist") ? top.ifname : first.ifname;
  if (v !== undefined && typeof v !== "string") {
    throw typeError(`${list.source}: ifname`, "a string");
  }
  return v as string | undefined;
}

/** A conf-dir network as a delegate: `ifname` taken out, hydra's version if it has none. */
function fileDelegate(list: ConfList, hydraVersion: string): ConfList {
  const plugins = list.plugins.map((p) => {
    const copy = { ...p };
    delete copy.ifname;
    return copy;
  });
  return { ...list, plugins, cniVersion: list.cniVersion || hydraVersion };
}

/** Assigns interface names and checks they are valid and distinct. */
function nameInterfaces(
  found: { list: ConfList; ifName?: string; where: string }[],
  containerIfName: string,
): Delegate[] {
  const used = new Map<string, string>();
  return found.map((d, i) => {
    if (i === 0 && d.ifName !== undefined && d.ifName !== containerIfName) {
      throw invalid(
        `${d.where}: the first delegate is the default network and always gets CNI_IFNAME ` +
          `("${containerIfName}"); remove its "ifname" ("${d.ifName}")`,
      );
    }
    const ifName = i === 0 ? containerIfName : d.ifName ?? `net${i}`;
    validateInterfaceName(ifName, `${d.where}.ifname`, ErrorCode.InvalidNetworkConfig);
    const other = used.get(ifName);
    if (other) {
      throw invalid(`${d.where}: interface "${ifName}" is already used by ${other}`);
    }
    used.set(ifName, d.where);
    return { ifName, list: d.list };
  });
}

/**
 * Resolves hydra's config into its delegates, in order, with their
 * interface names. Throws CniError (6/7/1) naming the field or file.
 */
export async function resolveDelegates(
  conf: NetConf,
  options: MetaOptions,
  containerIfName: string,
): Promise<Delegate[]> {
  const c = conf as Json;
  const inline = c.delegates;
  const dir = absolutePath(c, "delegatesFromConfDir");
  if (inline !== undefined && dir !== undefined) {
    throw invalid(`set either "delegates" or "delegatesFromConfDir", not both`);
  }
  const found: { list: ConfList; ifName?: string; where: string }[] = [];
  if (dir !== undefined) {
    for (const list of await loadConfDir(dir, usesHydra)) {
      const where = list.source ?? list.name;
      found.push({ list: fileDelegate(list, options.cniVersion), ifName: fileIfName(list), where });
    }
    if (found.length === 0) throw invalid(`no network configurations found in ${dir}`);
  } else {
    if (inline === undefined) {
      throw invalid(`missing "delegates" (or "delegatesFromConfDir"): hydra has nothing to attach`);
    }
    if (!Array.isArray(inline)) throw typeError("delegates", "a list");
    if (inline.length === 0) throw invalid(`"delegates" is empty`);
    inline.forEach((raw, i) => found.push(inlineDelegate(raw, i, options.cniVersion)));
  }
  for (const d of found) {
    if (usesHydra(d.list)) {
      throw invalid(`${d.where}: a delegate cannot be hydra itself (type "hydra")`);
    }
  }
  return nameInterfaces(found, containerIfName);
}
