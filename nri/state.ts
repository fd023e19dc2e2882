/**
 * What `hydra nri serve` keeps on disk, under its cache folder, so that a
 * restarted plugin knows what it attached:
 *
 * - `<cacheDir>/attachments/<sandboxId>-<ifName>`: the engine's record of
 *   one attach (written before the first network is added, removed once
 *   every network is deleted; see engine/record.ts, which lists them). Its
 *   presence means "something of ours may be in this sandbox".
 * - `<cacheDir>/results/…`: the networks' libcni result cache (engine).
 * - `<cacheDir>/pods/<sandboxId>.json`: written here once an attach call
 *   has succeeded as a whole. A record without it is an attach that did not
 *   finish (hydra died during it): it is undone and redone.
 *
 * The pod state file is written atomically (temp file, rename) but not
 * fsynced. A temp file a kill left goes when its sandbox is released, or
 * when the plugin starts once it is a minute old. Not syncing: losing it in a power cut only makes the next start undo and redo
 * that sandbox's attach, and an fsync would sit on the RunPodSandbox path.
 * Everything here is synchronous: the files are tiny, and a hop through the
 * worker pool per call costs more than the I/O.
 *
 * @module
 */

import type { Result } from "../cni/types.ts";
import { sweepLeftovers, writeFileAtomicSync } from "../pkg/fsutil.ts";

/** The `kind` of a pod state file. */
export const POD_STATE_KIND = "hydraNriPodV1";

/** One network attached to a sandbox. */
export interface AttachedNetwork {
  /** Network name (the conf's `name`). */
  name: string;
  /** Interface inside the sandbox. */
  ifName: string;
  /** The network's CNI result (1.1.0 shape), as the engine returned it. */
  result?: Result;
}

/** A sandbox whose extra networks are attached. */
export interface PodState {
  kind: typeof POD_STATE_KIND;
  sandboxId: string;
  pod: { namespace: string; name: string; uid: string };
  /** The sandbox's network namespace at attach time. */
  netns: string;
  /** The interface the engine recorded the attach under (its record's key). */
  ifName: string;
  networks: AttachedNetwork[];
  /** RFC 3339 time of the attach. */
  attachedAt: string;
}

/** The folder of pod state files. */
export function podStateDir(cacheDir: string): string {
  return `${cacheDir.replace(/\/+$/, "")}/pods`;
}

function podStatePath(cacheDir: string, sandboxId: string): string {
  return `${podStateDir(cacheDir)}/${sandboxId}.json`;
}

/** Writes a sandbox's state atomically (not durably; see the module doc). */
export function savePodState(cacheDir: string, state: PodState): void {
  Deno.mkdirSync(podStateDir(cacheDir), { recursive: true, mode: 0o700 });
  writeFileAtomicSync(podStatePath(cacheDir, state.sandboxId), JSON.stringify(state), 0o600);
}

/** Reads a sandbox's state; undefined when there is none or it is unreadable. */
export function loadPodState(cacheDir: string, sandboxId: string): PodState | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(podStatePath(cacheDir, sandboxId));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    const raw = JSON.parse(text) as Partial<PodState>;
    if (raw?.kind !== POD_STATE_KIND || raw.sandboxId !== sandboxId) return undefined;
    return raw as PodState;
  } catch {
    // Junk is treated as "not attached": the sandbox is undone and redone.
    return undefined;
  }
}

/**
 * Removes a sandbox's state; true if there was one. Temp files of its
 * writes that a kill left go too: the caller owns the sandbox (its calls
 * are serialised), so none of them is a write in progress.
 */
export function removePodState(cacheDir: string, sandboxId: string): boolean {
  removeTempFilesOf(cacheDir, sandboxId);
  try {
    Deno.removeSync(podStatePath(cacheDir, sandboxId));
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** `.<sandboxId>.json.tmp-*` (and the older name `.<sandboxId>.tmp-<pid>`) in the folder. */
function removeTempFilesOf(cacheDir: string, sandboxId: string): void {
  const dir = podStateDir(cacheDir);
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return;
  }
  for (const e of entries) {
    const rest = e.name.startsWith(`.${sandboxId}.`) ? e.name.slice(sandboxId.length + 2) : "";
    if (!e.isFile || !/^(json\.)?tmp-/.test(rest)) continue;
    try {
      Deno.removeSync(`${dir}/${e.name}`);
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * Removes temp files of pod state writes older than a minute, whoever's:
 * for sandboxes that will not be released again (run when the plugin
 * starts).
 */
export function sweepPodStateDir(cacheDir: string): string[] {
  return sweepLeftovers(podStateDir(cacheDir));
}

function names(dir: string): string[] {
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && !e.name.startsWith(".")) out.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return out.sort();
}

/** Sandbox ids with a state file. */
export function listPodStateIds(cacheDir: string): string[] {
  return names(podStateDir(cacheDir))
    .filter((n) => n.endsWith(".json"))
    .map((n) => n.slice(0, -".json".length));
}
