/**
 * hydra's record of what it attached to a container: the resolved delegate
 * set (each network's full config and its interface name) plus the
 * invocation's netns, CNI_ARGS and capability arguments. Written before the
 * first delegate's ADD, so DEL, CHECK and GC act on exactly the set ADD used
 * even if the configuration changed or hydra restarted since.
 *
 * File: `<cacheDir>/attachments/<containerID>-<ifName>` (folder 0700, file
 * 0600, written atomically):
 *
 * ```json
 * {"kind":"hydraAttachmentsV1","containerId":"…","ifName":"eth0","netns":"…",
 *  "cniArgs":[["K","V"]],"capabilityArgs":{},
 *  "delegates":[{"ifName":"eth0","config":{"cniVersion":"1.0.0","name":"…","plugins":[…]}}]}
 * ```
 *
 * In Kubernetes mode each delegate carries its own CNI_ARGS and capability
 * arguments (built from the pod's selection) and the network's name as
 * network-status reports it, and the record names the pod:
 * `"pod":{"namespace":"…","name":"…","uid":"…"}`,
 * `"delegates":[{…,"network":"ns/macvlan-a","cniArgs":[…],"capabilityArgs":{…}}]`.
 * A delegate the pod's networks annotation selected is marked `"selected":true`
 * (the default network and `defaultNetworks` are not), and the record keeps the
 * rules a selection made later is resolved by (`selectionRules`), so networks
 * hot-plugged into the running pod (engine/plug.ts) are resolved as at creation.
 * A hot-plugged delegate is appended to the same record, marked `"pending":true`
 * until its ADD has finished, so the pod's final DEL removes it like the others.
 *
 * @module
 */

import type { ArgPair } from "../cni/args.ts";
import { type ConfList, parseConfList } from "../cni/conf.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { ensureDir, quarantineFile, removeIfExists, writeFileAtomic } from "../pkg/fsutil.ts";
import type { Delegate } from "./config.ts";

/** The `kind` of a record file. */
export const RECORD_KIND = "hydraAttachmentsV1";

/** One delegate as recorded. */
export interface StoredDelegate {
  ifName: string;
  /** The network as a self-contained conflist. */
  config: Record<string, unknown>;
  /** Set once this delegate's DEL has succeeded (or its ADD never ran). */
  deleted?: boolean;
  /** Kubernetes mode: the network's name in network-status ("ns/name" of a NAD). */
  network?: string;
  /** Kubernetes mode: this delegate's CNI_ARGS (without ADD-only requests). */
  cniArgs?: ArgPair[];
  /** Kubernetes mode: this delegate's capability arguments (runtimeConfig). */
  capabilityArgs?: Record<string, unknown>;
  /** Kubernetes mode: the pod's networks annotation selected it (hot plug may detach it). */
  selected?: boolean;
  /** A hot plug's ADD of it has not finished: undone, never trusted, when found later. */
  pending?: boolean;
}

/**
 * How a network the pod selects after its creation is resolved and run:
 * what the meta-CNI's conf said when the pod was attached.
 */
export interface SelectionRules {
  /** Where plugins that are not built in were found (binDir first, then CNI_PATH). */
  cniPath: string[];
  /** Where a NAD with an empty config names its conf file (Multus's default when unset). */
  confDir?: string;
  namespaceIsolation: boolean;
  /** Namespaces usable from any namespace under isolation (comma-separated). */
  globalNamespaces?: string;
  /** The runtimeConfig the meta-CNI received, passed on as at creation. */
  runtimeConfig?: Record<string, unknown>;
  /** `delegateTimeout`, ms. */
  delegateTimeoutMs?: number;
  /** CNI_ARGS the sandbox's ADD received, which every delegate's are built from. */
  cniArgs?: string;
  /** The version a network without one takes (the meta-CNI's). */
  cniVersion?: string;
  /** `chrootDir`: exec'd delegates run chrooted into the node's root, as at creation. */
  chrootDir?: string;
}

/** The pod a Kubernetes-mode record belongs to. */
export interface RecordedPod {
  namespace: string;
  name: string;
  uid: string;
}

/** What hydra attached to one container interface. */
export interface AttachmentRecord {
  kind: typeof RECORD_KIND;
  containerId: string;
  ifName: string;
  netns: string;
  cniArgs?: ArgPair[];
  capabilityArgs?: Record<string, unknown>;
  /** Kubernetes mode: the pod attached. */
  pod?: RecordedPod;
  /** Kubernetes mode: the rules of the pod's later selections (hot plug). */
  selectionRules?: SelectionRules;
  delegates: StoredDelegate[];
}

/** The folder holding records. */
export function recordsDir(cacheDir: string): string {
  return `${cacheDir.replace(/\/+$/, "")}/attachments`;
}

/** The record file of one container interface. */
export function recordPath(cacheDir: string, containerId: string, ifName: string): string {
  return `${recordsDir(cacheDir)}/${containerId}-${ifName}`;
}

/** A delegate in its recorded form: every plugin inline, the selected version. */
export function storeDelegate(d: Delegate): StoredDelegate {
  const config: Record<string, unknown> = {
    cniVersion: d.list.cniVersion,
    name: d.list.name,
    loadOnlyInlinedPlugins: true,
    plugins: d.list.plugins,
  };
  if (d.list.disableCheck) config.disableCheck = true;
  if (d.list.disableGC) config.disableGC = true;
  return { ifName: d.ifName, config };
}

/**
 * Recorded delegate `index`, parsed back into a runnable list. Throws
 * (CNI code 1, 6 or 7) when this version cannot run it: a record written by
 * a newer version may hold a network this one rejects.
 */
export function recordDelegate(record: AttachmentRecord, index: number): Delegate {
  const d = record.delegates[index];
  const bytes = new TextEncoder().encode(JSON.stringify(d?.config ?? null));
  const list: ConfList = parseConfList(bytes, `recorded delegate ${index}`);
  return { ifName: d.ifName, list };
}

/** The delegates of a record, parsed back into runnable lists (throws like {@link recordDelegate}). */
export function recordDelegates(record: AttachmentRecord): Delegate[] {
  return record.delegates.map((_, i) => recordDelegate(record, i));
}

/**
 * Writes a record atomically; `durable` syncs its bytes first (see
 * pkg/fsutil.ts), for the write before anything is attached.
 */
export async function saveRecord(
  cacheDir: string,
  record: AttachmentRecord,
  opts: { durable?: boolean } = {},
): Promise<void> {
  await ensureDir(recordsDir(cacheDir), 0o700);
  await writeFileAtomic(
    recordPath(cacheDir, record.containerId, record.ifName),
    JSON.stringify(record),
    0o600,
    opts,
  );
}

function parseRecord(text: string, path: string): AttachmentRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CniError(ErrorCode.DecodingFailure, `${path}: ${(err as Error).message}`);
  }
  const r = raw as Partial<AttachmentRecord>;
  if (
    r?.kind !== RECORD_KIND || typeof r.containerId !== "string" || typeof r.ifName !== "string" ||
    !Array.isArray(r.delegates) ||
    r.delegates.some((d) =>
      typeof d !== "object" || d === null || typeof d.ifName !== "string" ||
      typeof d.config !== "object" || d.config === null
    )
  ) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `${path}: not a hydra attachment record of this version (${RECORD_KIND})`,
    );
  }
  return { ...r, netns: typeof r.netns === "string" ? r.netns : "" } as AttachmentRecord;
}

/** Reads a record; undefined when there is none. */
export async function loadRecord(
  cacheDir: string,
  containerId: string,
  ifName: string,
): Promise<AttachmentRecord | undefined> {
  const path = recordPath(cacheDir, containerId, ifName);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new CniError(ErrorCode.IoFailure, `cannot read ${path}: ${(err as Error).message}`);
  }
  return parseRecord(text, path);
}

/**
 * Moves an unreadable record aside (`.damaged-<name>`, ignored by
 * {@link listRecords}, removed by GC after a week) so DEL can go on
 * without it instead of failing on it forever; returns where it went.
 */
export async function quarantineRecord(
  cacheDir: string,
  containerId: string,
  ifName: string,
): Promise<string> {
  return await quarantineFile(recordPath(cacheDir, containerId, ifName));
}

/** Removes a record; true if there was one. */
export async function removeRecord(
  cacheDir: string,
  containerId: string,
  ifName: string,
): Promise<boolean> {
  return await removeIfExists(recordPath(cacheDir, containerId, ifName));
}

/** Every readable record, in file-name order. Unreadable files are reported via `onError`. */
export async function listRecords(
  cacheDir: string,
  onError: (path: string, err: unknown) => void = () => {},
): Promise<AttachmentRecord[]> {
  const dir = recordsDir(cacheDir);
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && !e.name.startsWith(".")) names.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  const out: AttachmentRecord[] = [];
  for (const name of names.sort()) {
    const path = `${dir}/${name}`;
    try {
      out.push(parseRecord(await Deno.readTextFile(path), path));
    } catch (err) {
      onError(path, err);
    }
  }
  return out;
}

/** File names in the records folder, sorted ("." files left out); none when it does not exist. */
function recordFileNames(cacheDir: string): string[] {
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(recordsDir(cacheDir))) {
      if (e.isFile && !e.name.startsWith(".")) out.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return out.sort();
}

/**
 * The interfaces (CNI_IFNAME) a container has records under. Container ids
 * of the runtimes hydra serves never contain "-" (containerd and CRI-O use
 * hex), so the id and the interface split at the first "-". Synchronous: a
 * readdir of a small folder costs less than a hop through the worker pool.
 */
export function recordedInterfaces(cacheDir: string, containerId: string): string[] {
  const prefix = `${containerId}-`;
  return recordFileNames(cacheDir)
    .filter((n) => n.startsWith(prefix))
    .map((n) => n.slice(prefix.length));
}

/** Every container id with a record (see {@link recordedInterfaces} for how names split). */
export function recordedContainers(cacheDir: string): string[] {
  const ids = new Set<string>();
  for (const n of recordFileNames(cacheDir)) {
    const dash = n.indexOf("-");
    if (dash > 0) ids.add(n.slice(0, dash));
  }
  return [...ids];
}
