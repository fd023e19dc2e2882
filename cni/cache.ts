/**
 * libcni's result cache, byte-compatible: after a successful ADD of a
 * network the runtime stores what DEL, CHECK and GC will need in
 * `<cacheDir>/results/<network>-<containerID>-<ifName>`:
 *
 * ```json
 * {"kind":"cniCacheV1","containerId":"...","config":"<base64 of the conf bytes>",
 *  "ifName":"eth0","networkName":"...","netns":"/run/netns/x",
 *  "cniArgs":[["K","V"]],"capabilityArgs":{...},"result":{...}}
 * ```
 *
 * `netns`, `cniArgs`, `capabilityArgs` and `result` are left out when empty.
 * The folder is 0700, files 0600, written atomically. A file of another kind
 * is an old-style cache holding a bare result; it is still read. A file
 * that cannot be read at all (truncated or zeroed by a crash) is set aside
 * as `.damaged-<name>` by whoever finds it (see list.ts) and then counts as
 * missing: it never blocks a DEL, CHECK or GC.
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import type { ArgPair } from "./args.ts";
import { convertResult, parseResult } from "./convert.ts";
import {
  ensureDir,
  listFileNames,
  quarantineFile,
  readTextIfExists,
  removeIfExists,
  writeFileAtomic,
} from "../pkg/fsutil.ts";
import type { AnyResult } from "./types.ts";

/** libcni's default cache folder. */
export const DEFAULT_CACHE_DIR = "/var/lib/cni";

/** The `kind` of a current cache file. */
export const CACHE_KIND = "cniCacheV1";

/** One cached attachment. */
export interface CacheEntry {
  kind: typeof CACHE_KIND;
  containerId: string;
  /** The network configuration bytes exactly as loaded. */
  config: Uint8Array;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: ArgPair[];
  capabilityArgs?: Record<string, unknown>;
  /** The final ADD result, as JSON. */
  result?: Record<string, unknown>;
}

/** Base64 (standard alphabet, padded) of bytes, as Go encodes []byte. */
export function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** Decodes standard base64. */
export function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The results folder under a cache folder. */
export function resultsDir(cacheDir: string): string {
  return `${cacheDir.replace(/\/+$/, "")}/results`;
}

/** The cache file of one attachment. Throws when a part is empty, as libcni does. */
export function cacheFilePath(
  cacheDir: string,
  networkName: string,
  containerId: string,
  ifName: string,
): string {
  if (!networkName || !containerId || !ifName) {
    throw new CniError(
      ErrorCode.Internal,
      `cache file path requires network name ("${networkName}"), container ID ("${containerId}"), ` +
        `and interface name ("${ifName}")`,
    );
  }
  return `${resultsDir(cacheDir)}/${networkName}-${containerId}-${ifName}`;
}

/** Serializes an entry with libcni's field order and omissions. */
export function encodeCacheEntry(entry: CacheEntry): string {
  const out: Record<string, unknown> = {
    kind: entry.kind,
    containerId: entry.containerId,
    config: toBase64(entry.config),
    ifName: entry.ifName,
    networkName: entry.networkName,
  };
  if (entry.netns) out.netns = entry.netns;
  if (entry.cniArgs?.length) out.cniArgs = entry.cniArgs;
  if (entry.capabilityArgs && Object.keys(entry.capabilityArgs).length) {
    out.capabilityArgs = entry.capabilityArgs;
  }
  if (entry.result && Object.keys(entry.result).length) out.result = entry.result;
  return JSON.stringify(out);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses a cache file's text. Returns undefined for a file of another kind
 * (an old-style bare result). Throws on malformed JSON.
 */
export function decodeCacheEntry(text: string): CacheEntry | undefined {
  const raw = JSON.parse(text);
  if (!isObject(raw) || raw.kind !== CACHE_KIND) return undefined;
  const str = (k: string) => (typeof raw[k] === "string" ? raw[k] as string : "");
  const entry: CacheEntry = {
    kind: CACHE_KIND,
    containerId: str("containerId"),
    config: typeof raw.config === "string" ? fromBase64(raw.config) : new Uint8Array(),
    ifName: str("ifName"),
    networkName: str("networkName"),
  };
  if (str("netns")) entry.netns = str("netns");
  if (Array.isArray(raw.cniArgs)) {
    entry.cniArgs = raw.cniArgs
      .filter((p): p is [string, string] =>
        Array.isArray(p) && p.length === 2 && p.every((s) => typeof s === "string")
      )
      .map(([k, v]) => [k, v]);
  }
  if (isObject(raw.capabilityArgs)) entry.capabilityArgs = raw.capabilityArgs;
  if (isObject(raw.result)) entry.result = raw.result;
  return entry;
}

/** Writes an attachment's entry (folder 0700, file 0600, atomically). */
export async function writeCacheEntry(cacheDir: string, entry: CacheEntry): Promise<void> {
  const path = cacheFilePath(cacheDir, entry.networkName, entry.containerId, entry.ifName);
  await ensureDir(resultsDir(cacheDir), 0o700);
  await writeFileAtomic(path, encodeCacheEntry(entry), 0o600);
}

/**
 * Reads an attachment's entry; undefined when there is none. Throws when
 * the file is unreadable or of another kind.
 */
export async function readCacheEntry(
  cacheDir: string,
  networkName: string,
  containerId: string,
  ifName: string,
): Promise<CacheEntry | undefined> {
  const path = cacheFilePath(cacheDir, networkName, containerId, ifName);
  const text = await readTextIfExists(path);
  if (text === undefined) return undefined;
  let entry: CacheEntry | undefined;
  try {
    entry = decodeCacheEntry(text);
  } catch (err) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `failed to unmarshal cached network "${networkName}" config: ${(err as Error).message}`,
    );
  }
  if (!entry) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `read cached network "${networkName}" config has wrong kind`,
    );
  }
  return entry;
}

/**
 * The cached ADD result of an attachment, converted to `cniVersion`;
 * undefined when nothing is cached. Reads old-style bare-result files too.
 */
export async function readCachedResult(
  cacheDir: string,
  networkName: string,
  cniVersion: string,
  containerId: string,
  ifName: string,
): Promise<AnyResult | undefined> {
  const path = cacheFilePath(cacheDir, networkName, containerId, ifName);
  const text = await readTextIfExists(path);
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    const parsed = JSON.parse(text);
    raw = isObject(parsed) && parsed.kind === CACHE_KIND ? parsed.result : parsed;
  } catch (err) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `failed to read cached result of network "${networkName}": ${(err as Error).message}`,
    );
  }
  if (raw === undefined) return undefined;
  try {
    return convertResult(parseResult(raw), cniVersion);
  } catch (err) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `failed to read cached result of network "${networkName}": ${(err as Error).message}`,
    );
  }
}

/** Sets an attachment's unreadable entry aside (`.damaged-<name>`); returns where it went. */
export async function quarantineCacheEntry(
  cacheDir: string,
  networkName: string,
  containerId: string,
  ifName: string,
): Promise<string> {
  return await quarantineFile(cacheFilePath(cacheDir, networkName, containerId, ifName));
}

/**
 * The attachments of network `networkName` whose entries cannot be read
 * (which {@link listCacheEntries} leaves out), told by file name:
 * `<network>-<containerID>-<ifName>`, container IDs holding no "-".
 */
export async function unreadableCacheEntries(
  cacheDir: string,
  networkName: string,
): Promise<{ containerId: string; ifName: string }[]> {
  const dir = resultsDir(cacheDir);
  const prefix = `${networkName}-`;
  const out: { containerId: string; ifName: string }[] = [];
  for (const name of await listFileNames(dir)) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    const dash = rest.indexOf("-");
    if (dash <= 0 || dash === rest.length - 1) continue;
    try {
      // Another kind decodes to nothing but is an old-style result: readable.
      decodeCacheEntry(await Deno.readTextFile(`${dir}/${name}`));
      continue;
    } catch {
      out.push({ containerId: rest.slice(0, dash), ifName: rest.slice(dash + 1) });
    }
  }
  return out;
}

/** Removes an attachment's entry; true if there was one. */
export async function deleteCacheEntry(
  cacheDir: string,
  networkName: string,
  containerId: string,
  ifName: string,
): Promise<boolean> {
  return await removeIfExists(cacheFilePath(cacheDir, networkName, containerId, ifName));
}

/**
 * Every readable current-kind entry, in file-name order, optionally only
 * those of one container (libcni's GetCachedAttachments).
 */
export async function listCacheEntries(
  cacheDir: string,
  containerId?: string,
): Promise<CacheEntry[]> {
  const dir = resultsDir(cacheDir);
  const out: CacheEntry[] = [];
  for (const name of await listFileNames(dir)) {
    if (containerId && !name.includes(`-${containerId}-`)) continue;
    let entry: CacheEntry | undefined;
    try {
      entry = decodeCacheEntry(await Deno.readTextFile(`${dir}/${name}`));
    } catch {
      continue;
    }
    if (!entry || !entry.ifName || !entry.networkName) continue;
    if (containerId && entry.containerId !== containerId) continue;
    out.push(entry);
  }
  return out;
}
