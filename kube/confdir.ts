/**
 * Network configurations for Kubernetes mode, found the way Multus finds
 * them: by network name in a conf directory (a NAD with an empty spec, or a
 * cluster network given by name; `.conf`, `.json` and `.conflist` files in
 * file-name order, first match wins), the first file of a directory, a file
 * path, or JSON text from a NAD (its `name` filled in when missing).
 * Parsing and validation are `cni/conf.ts`'s.
 *
 * @module
 */

import {
  confFiles,
  type ConfList,
  LIST_EXTENSIONS,
  loadConfFile,
  parseNetworkConfig,
  SINGLE_EXTENSIONS,
} from "../cni/conf.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";

const encoder = new TextEncoder();

/**
 * The first conf in `dir` whose network name is `name`, or the first one at
 * all when `name` is "". Undefined when none matches. A file that does not
 * parse on the way is an error, as in Multus.
 */
export async function findConfByName(name: string, dir: string): Promise<ConfList | undefined> {
  for (const file of await confFiles(dir, [...SINGLE_EXTENSIONS, ...LIST_EXTENSIONS])) {
    const list = await loadConfFile(file);
    if (name === "" || list.name === name) return list;
  }
  return undefined;
}

/** Loads a network given as a path: a directory (its first conf) or a file. */
export async function loadConfPath(path: string): Promise<ConfList> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `network ${path}: ${err instanceof Error ? err.message : err}`,
    );
  }
  if (!info.isDirectory) return await loadConfFile(path);
  const found = await findConfByName("", path);
  if (!found) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `network ${path}: no CNI config in it`);
  }
  return found;
}

/** Parses conf JSON bytes as JSON; throws CNI code 6 naming `where`. */
function decode(text: string, where: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `${where}: not valid JSON: ${err instanceof Error ? err.message : err}`,
    );
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: must be a JSON object`);
  }
  return doc as Record<string, unknown>;
}

/**
 * A network from JSON text held by an object (a NAD's `spec.config`):
 * a plugin conf or conflist, its `name` set to `name` when missing or empty.
 *
 * @param where names the object and field in errors
 */
export function confFromText(text: string, name: string, where: string): ConfList {
  const doc = decode(text, where);
  if (typeof doc.name === "string" && doc.name !== "") {
    return parseNetworkConfig(encoder.encode(text), where);
  }
  return confFromObject({ ...doc, name }, where);
}

/** A network from a conf object built in memory. */
export function confFromObject(conf: Record<string, unknown>, where: string): ConfList {
  return parseNetworkConfig(encoder.encode(JSON.stringify(conf)), where);
}

/**
 * The same network with each plugin changed by `edit`; `bytes` are rewritten
 * to match so the result cache stores what ran.
 */
export function mapPlugins(
  list: ConfList,
  edit: (plugin: Record<string, unknown>) => Record<string, unknown>,
): ConfList {
  const plugins = list.plugins.map((p) => edit(p as Record<string, unknown>));
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(new TextDecoder().decode(list.bytes));
  } catch {
    raw = { cniVersion: list.cniVersion, name: list.name };
  }
  return {
    ...list,
    plugins: plugins as ConfList["plugins"],
    bytes: encoder.encode(JSON.stringify({ ...raw, plugins })),
  };
}
