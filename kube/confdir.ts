/**
 * Network configurations from disk, found the way Multus finds them: by
 * network name in a conf directory (a NAD with an empty spec, or a cluster
 * network given by name), the first file of a directory, or a file path
 * (a conflist may pull further plugins from `<dir>/<name>/*.conf`).
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";

/** A network configuration read from disk or a NAD, parsed, with where it came from. */
export interface LoadedConf {
  /** A plugin conf (has `type`) or a conflist (has `plugins`). */
  conf: Record<string, unknown>;
  /** True for a conflist. */
  isList: boolean;
  /** The file it came from, when it came from a file. */
  file?: string;
}

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg);
}

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/**
 * Parses CNI conf text and checks its shape: an object that has a `type`
 * (plugin conf) or a non-empty `plugins` list whose first entry has a `type`.
 *
 * @param where names the source in errors, e.g. `NetworkAttachmentDefinition ns/x spec.config`
 */
export function parseConf(text: string, where: string): LoadedConf {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalid(`${where}: not valid JSON: ${err instanceof Error ? err.message : err}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw invalid(`${where}: must be a JSON object`);
  }
  const conf = doc as Record<string, unknown>;
  if (typeof conf.type === "string" && conf.type !== "") return { conf, isList: false };
  if (conf.type !== undefined && typeof conf.type !== "string") {
    throw invalid(`${where}: "type" must be a string`);
  }
  if (!Array.isArray(conf.plugins)) {
    throw invalid(`${where}: has neither "type" (a plugin conf) nor "plugins" (a conflist)`);
  }
  const first = conf.plugins[0] as Record<string, unknown> | undefined;
  if (!first || typeof first !== "object" || typeof first.type !== "string" || first.type === "") {
    throw invalid(`${where}: "plugins"[0] must be an object with a "type"`);
  }
  for (const [i, p] of conf.plugins.entries()) {
    if (typeof p !== "object" || p === null || Array.isArray(p)) {
      throw invalid(`${where}: "plugins"[${i}] must be an object`);
    }
  }
  return { conf, isList: true };
}

/** The conf files of a directory with the given extensions, sorted by name. */
async function confFiles(dir: string, exts: string[]): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if ((e.isFile || e.isSymlink) && exts.some((x) => e.name.endsWith(x))) names.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw new CniError(ErrorCode.IoFailure, `cannot read conf directory ${dir}: ${err}`);
  }
  return names.sort().map((n) => join(dir, n));
}

async function readConf(file: string): Promise<LoadedConf> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw new CniError(ErrorCode.IoFailure, `cannot read CNI config file ${file}: ${err}`);
  }
  const loaded = parseConf(text, `CNI config file ${file}`);
  if (file.endsWith(".conflist") !== loaded.isList) {
    throw invalid(
      `CNI config file ${file}: ${
        loaded.isList ? "a conflist in a .conf file" : "a plugin conf in a .conflist file"
      }`,
    );
  }
  return { ...loaded, file };
}

/**
 * The first conf in `dir` (`.conf`, `.json`, `.conflist`, by file name)
 * whose `name` is `name`, or the first one at all when `name` is "".
 * Returns undefined when none matches.
 */
export async function findConfByName(name: string, dir: string): Promise<LoadedConf | undefined> {
  for (const file of await confFiles(dir, [".conf", ".json", ".conflist"])) {
    const loaded = await readConf(file);
    if (name === "" || loaded.conf.name === name) return loaded;
  }
  return undefined;
}

/**
 * Loads a network given as a path: a directory (its first conf) or a file.
 * A conflist without `loadOnlyInlinedPlugins` also gets the `.conf` plugins
 * found in `<its dir>/<its name>/`, in file-name order.
 */
export async function loadConfPath(path: string): Promise<LoadedConf> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw invalid(`network ${path}: ${err instanceof Error ? err.message : err}`);
  }
  if (info.isDirectory) {
    const found = await findConfByName("", path);
    if (!found) throw invalid(`network ${path}: no CNI config file in that directory`);
    return found;
  }
  const loaded = await readConf(path);
  if (!loaded.isList || loaded.conf.loadOnlyInlinedPlugins === true) return loaded;
  const name = loaded.conf.name;
  if (typeof name !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) {
    throw invalid(`CNI config file ${path}: invalid network name ${JSON.stringify(name)}`);
  }
  const dir = path.slice(0, path.lastIndexOf("/") + 1) + name;
  const extra: unknown[] = [];
  for (const file of await confFiles(dir, [".conf"])) extra.push((await readConf(file)).conf);
  if (extra.length === 0) return loaded;
  const plugins = [...(loaded.conf.plugins as unknown[]), ...extra];
  return { ...loaded, conf: { ...loaded.conf, plugins } };
}
