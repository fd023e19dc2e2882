/**
 * Network configuration files: single plugin configs (`.conf`, `.json`) and
 * configuration lists (`.conflist`), loaded and validated the way libcni
 * does, with errors that name the file and the field.
 *
 * - A list's version is the highest of `cniVersion` and `cniVersions`
 *   (see {@link selectVersion}); `disableCheck`, `disableGC` and
 *   `loadOnlyInlinedPlugins` accept booleans or "true"/"false" strings.
 * - Unless `loadOnlyInlinedPlugins` is true, a `.conflist` loaded from a file
 *   also gets the plugins in `<dir>/<name>/*.conf`, in lexical order.
 * - A single plugin config (must have `type`) is wrapped into a list of one:
 *   `{name, cniVersion, plugins: [conf]}`.
 *
 * Codes: JSON syntax or a field of the wrong JSON type is 6, a missing or
 * invalid value 7, a version hydra does not speak 1.
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import { fields } from "../pkg/fields.ts";
import { validateNetworkName, validatePluginType } from "./env.ts";
import type { NetConf } from "./types.ts";
import { isSupportedVersion, parseVersion, selectVersion } from "./version.ts";

/** A loaded network configuration list, ready to run. */
export interface ConfList {
  name: string;
  /** The selected version; "" when the config gives none (means 0.1.0). */
  cniVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  loadOnlyInlinedPlugins: boolean;
  /** The plugin objects, as written. */
  plugins: NetConf[];
  /** The configuration's bytes as loaded (what the result cache stores). */
  bytes: Uint8Array;
  /** The file it came from, if any. */
  source?: string;
}

/** File extensions of configuration lists and single plugin configs. */
export const LIST_EXTENSIONS = [".conflist"];
export const SINGLE_EXTENSIONS = [".conf", ".json"];

type Json = Record<string, unknown>;

const encoder = new TextEncoder();

function prefix(where: string | undefined): string {
  return where ? `${where}: ` : "";
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function decodeJson(bytes: Uint8Array, where?: string): Json {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `${prefix(where)}error parsing configuration: ${(err as Error).message}`,
    );
  }
  if (!isObject(raw)) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `${prefix(where)}error parsing configuration: not a JSON object`,
    );
  }
  return raw;
}

function typeError(where: string | undefined, field: string, expected: string, got: unknown) {
  const kind = Array.isArray(got) ? "list" : got === null ? "null" : typeof got;
  return new CniError(
    ErrorCode.DecodingFailure,
    `${prefix(where)}"${field}" must be ${expected}, got ${kind}`,
  );
}

function invalid(where: string | undefined, msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, `${prefix(where)}${msg}`);
}

function withWhere<T>(where: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CniError && where) {
      throw new CniError(err.code, `${where}: ${err.message}`, err.details);
    }
    throw err;
  }
}

/** A string field; only absence is "not set" (a null is the wrong type, as libcni has it). */
function optString(obj: Json, field: string, where?: string): string | undefined {
  return fields(obj, {
    nullIsWrong: true,
    fail: (p) => typeError(where, p.key, p.expected, p.value),
  }).string(field);
}

function readBool(obj: Json, field: string, where?: string): boolean {
  const v = obj[field];
  if (v === undefined) return false;
  if (typeof v === "boolean") return v;
  if (typeof v === "string") {
    const s = v.toLowerCase();
    if (s === "true") return true;
    if (s === "false") return false;
    throw invalid(where, `invalid value "${v}" for "${field}": expected true or false`);
  }
  throw typeError(where, field, "a boolean", v);
}

function checkVersion(version: string, where?: string): void {
  if (version !== "" && !isSupportedVersion(version)) {
    throw new CniError(
      ErrorCode.IncompatibleCniVersion,
      `${prefix(where)}unsupported cniVersion "${version}"`,
      "hydra speaks 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0",
    );
  }
}

/** Validates one plugin object (of a list or a single conf file). */
export function validatePluginObject(raw: unknown, where?: string): NetConf {
  if (!isObject(raw)) throw typeError(where, "plugin", "an object", raw);
  const type = raw.type;
  if (type === undefined || type === "") throw invalid(where, `missing 'type'`);
  if (typeof type !== "string") throw typeError(where, "type", "a string", type);
  withWhere(where, () => validatePluginType(type));
  const caps = raw.capabilities;
  if (caps !== undefined && caps !== null) {
    if (!isObject(caps) || Object.values(caps).some((b) => typeof b !== "boolean")) {
      throw typeError(where, "capabilities", "an object of booleans", caps);
    }
  }
  for (const field of ["name", "cniVersion"]) optString(raw, field, where);
  if (raw.ipam !== undefined && raw.ipam !== null && !isObject(raw.ipam)) {
    throw typeError(where, "ipam", "an object", raw.ipam);
  }
  return raw as NetConf;
}

/**
 * Parses a single plugin config (`.conf` content). It must have a `type`
 * and a valid `name`.
 */
export function parsePluginConf(bytes: Uint8Array, where?: string): NetConf {
  const raw = decodeJson(bytes, where);
  const conf = validatePluginObject(raw, where);
  withWhere(where, () => validateNetworkName(conf.name ?? ""));
  withWhere(where, () => checkVersion(conf.cniVersion ?? "", undefined));
  return conf;
}

/** Wraps a single plugin config into a list of one, as libcni does. */
export function confListFromConf(conf: NetConf, where?: string): ConfList {
  const wrapped = { cniVersion: conf.cniVersion ?? "", name: conf.name ?? "", plugins: [conf] };
  return parseConfList(encoder.encode(JSON.stringify(wrapped)), where);
}

/**
 * Parses a configuration list. `requirePlugins` false allows a list
 * without `plugins` (its plugins then come from `<dir>/<name>/`).
 */
export function parseConfList(bytes: Uint8Array, where?: string, requirePlugins = true): ConfList {
  const raw = decodeJson(bytes, where);
  const name = raw.name;
  if (name === undefined) throw invalid(where, `error parsing configuration list: no name`);
  if (typeof name !== "string") throw typeError(where, "name", "a string", name);
  withWhere(where, () => validateNetworkName(name));
  const cniVersion = optString(raw, "cniVersion", where);
  let cniVersions: string[] | undefined;
  if (raw.cniVersions !== undefined) {
    const list = raw.cniVersions;
    if (!Array.isArray(list) || list.some((v) => typeof v !== "string")) {
      throw typeError(where, "cniVersions", "a list of strings", list);
    }
    cniVersions = list as string[];
  }
  const version = withWhere(where, () => {
    for (const v of [...(cniVersions ?? []), ...(cniVersion ? [cniVersion] : [])]) parseVersion(v);
    return selectVersion(cniVersion, cniVersions);
  });
  checkVersion(version, where);
  const list: ConfList = {
    name,
    cniVersion: version,
    disableCheck: readBool(raw, "disableCheck", where),
    disableGC: readBool(raw, "disableGC", where),
    loadOnlyInlinedPlugins: readBool(raw, "loadOnlyInlinedPlugins", where),
    plugins: [],
    bytes,
  };
  if (where) list.source = where;
  const plugins = raw.plugins;
  if (plugins === undefined) {
    if (list.loadOnlyInlinedPlugins) {
      throw invalid(where, `"loadOnlyInlinedPlugins" is true, and there is no "plugins" key`);
    }
    if (requirePlugins) throw invalid(where, `no "plugins" in configuration list "${name}"`);
    return list;
  }
  if (!Array.isArray(plugins)) throw typeError(where, "plugins", "a list", plugins);
  if (plugins.length === 0) throw invalid(where, `no plugins in configuration list "${name}"`);
  list.plugins = plugins.map((p, i) => validatePluginObject(p, `${prefix(where)}plugins[${i}]`));
  return list;
}

/**
 * Parses configuration bytes of either form: an object with `plugins` is a
 * list, anything else a single plugin config wrapped into a list.
 */
export function parseNetworkConfig(bytes: Uint8Array, where?: string): ConfList {
  const raw = decodeJson(bytes, where);
  if (raw.plugins !== undefined) return parseConfList(bytes, where);
  return confListFromConf(parsePluginConf(bytes, where), where);
}

/** The files in `dir` (one level) with one of `extensions`, sorted; [] if `dir` is missing. */
export async function confFiles(dir: string, extensions: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) continue;
      const dot = entry.name.lastIndexOf(".");
      const ext = dot >= 0 ? entry.name.slice(dot) : "";
      if (extensions.includes(ext)) out.push(`${dir.replace(/\/+$/, "")}/${entry.name}`);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw new CniError(ErrorCode.IoFailure, `cannot read ${dir}: ${(err as Error).message}`);
  }
  return out.sort();
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    throw new CniError(ErrorCode.IoFailure, `error reading ${path}: ${(err as Error).message}`);
  }
}

/** Loads one file by its extension: `.conflist` as a list, `.conf`/`.json` as one plugin. */
export async function loadConfFile(path: string): Promise<ConfList> {
  const bytes = await readBytes(path);
  if (!path.endsWith(".conflist")) {
    return confListFromConf(parsePluginConf(bytes, path), path);
  }
  const list = parseConfList(bytes, path, false);
  if (!list.loadOnlyInlinedPlugins) {
    const dir = path.slice(0, path.lastIndexOf("/") + 1) || "./";
    for (const file of await confFiles(`${dir}${list.name}`, [".conf"])) {
      const raw = decodeJson(await readBytes(file), file);
      list.plugins.push(validatePluginObject(raw, file));
    }
  }
  if (list.plugins.length === 0) throw invalid(path, "no plugin configs found");
  return list;
}

/**
 * Finds network `name` in `dir` as libcni does: the first `.conflist` (in
 * lexical order) with that name, else the first `.conf`/`.json` with that
 * name, wrapped. A file that fails to parse on the way is an error.
 */
export async function loadNetworkConf(dir: string, name: string): Promise<ConfList> {
  const lists = await confFiles(dir, LIST_EXTENSIONS);
  for (const file of lists) {
    const list = await loadConfFile(file);
    if (list.name === name) return list;
  }
  const singles = await confFiles(dir, SINGLE_EXTENSIONS);
  if (lists.length === 0 && singles.length === 0) {
    throw invalid(undefined, `no net configurations found in ${dir}`);
  }
  for (const file of singles) {
    const list = await loadConfFile(file);
    if (list.name === name) return list;
  }
  throw invalid(undefined, `no net configuration with name "${name}" in ${dir}`);
}

/**
 * Loads every network in `dir`: all `.conf`, `.conflist` and `.json` files
 * in lexical order of their names. Networks for which `skip` is true are
 * left out. Two files defining one network name are an error.
 */
export async function loadConfDir(
  dir: string,
  skip: (list: ConfList) => boolean = () => false,
): Promise<ConfList[]> {
  const files = await confFiles(dir, [...LIST_EXTENSIONS, ...SINGLE_EXTENSIONS]);
  const out: ConfList[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    const list = await loadConfFile(file);
    if (skip(list)) continue;
    const first = seen.get(list.name);
    if (first) {
      throw invalid(undefined, `network "${list.name}" is defined twice: ${first} and ${file}`);
    }
    seen.set(list.name, file);
    out.push(list);
  }
  return out;
}
