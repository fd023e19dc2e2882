/**
 * DEL of a pod Multus attached before hydra took over the node, from the
 * cache Multus keeps under its `cniDir` (default /var/lib/cni/multus):
 *
 * - `<cniDir>/<containerID>`: the delegates of that container's attachment
 *   as Multus resolved them on ADD (a JSON list of its DelegateNetConf: the
 *   delegate's raw conf in `Bytes`, base64, and `ifnameRequest`);
 * - `<cniDir>/results/<network>-<containerID>-<ifName>`: libcni's result
 *   cache of each delegate (Multus runs them with `cniDir` as libcni's cache
 *   folder), which gives each DEL its prevResult.
 *
 * The delegates are named as Multus names them (`ifnameRequest`, else the
 * first gets CNI_IFNAME and the others `net<index>`) and DELeted in reverse
 * through the list runner with Multus's result cache, as Multus would, with
 * the runtime's CNI_ARGS (and its capability arguments for the first,
 * Multus's master plugin; a requested MAC or IPs for the others). This needs
 * neither the pod nor its NADs: it works after a pod was deleted from the
 * API. The cache entry is then removed, as Multus removes it; what could not
 * be deleted is kept in a hydra record, so the runtime's next DEL retries
 * exactly that.
 *
 * @module
 */

import { type ConfList, parseNetworkConfig } from "../cni/conf.ts";
import { isJsonObject, type JsonObject } from "../pkg/fields.ts";
import { parseCniArgs } from "../cni/args.ts";
import type { CmdArgs } from "../cni/types.ts";
import type { Delegate } from "./config.ts";
import {
  type AttachmentRecord,
  RECORD_KIND,
  type StoredDelegate,
  storeDelegate,
} from "./record.ts";
import { deleteAll, type Invocation } from "./run.ts";

/** One delegate from Multus's cache, with what its DEL gets beyond the runtime's own. */
interface CachedDelegate extends Delegate {
  capabilityArgs?: Record<string, unknown>;
}

/** Container IDs are file names here: nothing that could leave the folder. */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.\-]*$/;

function cachePath(cniDir: string, containerId: string): string | undefined {
  if (!SAFE_ID.test(containerId)) return undefined;
  return `${cniDir.replace(/\/+$/, "")}/${containerId}`;
}

/** The raw conf of one cached DelegateNetConf (Go marshals []byte as base64). */
function delegateBytes(entry: JsonObject): Uint8Array | undefined {
  if (typeof entry.Bytes !== "string") return undefined;
  try {
    return Uint8Array.from(atob(entry.Bytes), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** What Multus gave a secondary delegate beyond CNI_ARGS: its MAC and IP requests. */
function requests(entry: JsonObject): Record<string, unknown> | undefined {
  const caps: Record<string, unknown> = {};
  if (typeof entry.macRequest === "string" && entry.macRequest) caps.mac = entry.macRequest;
  if (Array.isArray(entry.ipRequest) && entry.ipRequest.length) caps.ips = entry.ipRequest;
  return Object.keys(caps).length ? caps : undefined;
}

/** Parses Multus's cache entry into delegates, named as Multus names them; throws on damage. */
export function parseMultusCache(text: string, ifName: string, where: string): CachedDelegate[] {
  const raw = JSON.parse(text);
  if (!Array.isArray(raw) || raw.length === 0) throw new Error(`${where}: not a list of delegates`);
  return raw.map((entry, i): CachedDelegate => {
    if (!isJsonObject(entry)) throw new Error(`${where}[${i}]: not an object`);
    const bytes = delegateBytes(entry);
    if (!bytes) throw new Error(`${where}[${i}]: no delegate conf (Bytes)`);
    const list: ConfList = parseNetworkConfig(bytes, `${where}[${i}]`);
    const asked = typeof entry.ifnameRequest === "string" ? entry.ifnameRequest : "";
    const name = asked || (i === 0 ? ifName : `net${i}`);
    const caps = i === 0 ? undefined : requests(entry);
    return { ifName: name, list, ...(caps ? { capabilityArgs: caps } : {}) };
  });
}

function stored(d: CachedDelegate): StoredDelegate {
  const s = storeDelegate(d);
  if (d.capabilityArgs) s.capabilityArgs = d.capabilityArgs;
  return s;
}

/**
 * DELs what Multus's cache under `cniDir` lists for the container; false
 * when it lists nothing (no entry, or one hydra cannot read: logged).
 * Delegate failures are logged and returned like any DEL's.
 */
export async function delFromMultusCache(
  args: CmdArgs,
  inv: Invocation,
  cniDir: string,
): Promise<{ handled: boolean; errors: Error[] }> {
  const path = cachePath(cniDir, args.containerId);
  if (!path) return { handled: false, errors: [] };
  let delegates: CachedDelegate[];
  try {
    delegates = parseMultusCache(await Deno.readTextFile(path), args.ifName, path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      inv.log.error("Multus' cache entry cannot be read; not deleting from it", {
        path,
        error: err,
      });
    }
    return { handled: false, errors: [] };
  }
  inv.log.info("deleting what Multus attached, from its cache", {
    path,
    networks: delegates.map((d) => `${d.list.name}@${d.ifName}`),
  });
  const cniArgs = parseCniArgs(args.args);
  const record: AttachmentRecord = {
    kind: RECORD_KIND,
    containerId: args.containerId,
    ifName: args.ifName,
    netns: args.netns,
    delegates: delegates.map(stored),
    ...(cniArgs.length ? { cniArgs } : {}),
  };
  const caps = args.config.runtimeConfig;
  if (isJsonObject(caps) && Object.keys(caps).length) record.capabilityArgs = caps;
  // Multus's libcni result cache holds the delegates' prevResults.
  const withMultusResults = { ...inv, listOptions: { ...inv.listOptions, cacheDir: cniDir } };
  const errors = await deleteAll(record, args.netns, withMultusResults);
  // What is left to delete is in hydra's record now: the entry has served.
  await Deno.remove(path).catch(() => {});
  return { handled: true, errors };
}
