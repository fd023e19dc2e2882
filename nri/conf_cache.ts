/**
 * Networks of a conf folder, parsed once and reused while nothing in the
 * folder changed. Finding a network by name reads and parses the folder's
 * files (and a conflist's folder of extra plugin confs) on every call: about
 * a millisecond of a RunPodSandbox's budget for nothing when the files are
 * as they were.
 *
 * Every call still looks at the folder: the names, sizes, modification
 * times and inodes of its entries and of the files one level down make up a
 * fingerprint, and a different fingerprint drops everything cached. A file
 * modified in the last {@link RACY_MS} is never trusted (its time stamp may
 * not yet tell two quick writes of the same size apart): while the folder
 * holds one, every call reads the files as before.
 *
 * @module
 */

import { type ConfList, loadNetworkConf } from "../cni/conf.ts";

/** Files modified this recently make the fingerprint unusable, ms. */
export const RACY_MS = 2_000;

/** Finds networks by name in one folder. */
export interface ConfCache {
  /** As `loadNetworkConf(dir, name)`; the caller may change what it gets. */
  load(name: string): Promise<ConfList>;
}

function statLine(path: string, name: string, now: number): string | undefined {
  const st = Deno.statSync(path);
  const mtime = st.mtime?.getTime() ?? 0;
  if (now - mtime < RACY_MS) return undefined;
  return `${name}\0${st.isDirectory ? "d" : "f"}\0${st.size}\0${mtime}\0${st.ino ?? 0}`;
}

/**
 * The folder's fingerprint, or undefined when it cannot be trusted (a racy
 * entry, an entry gone while looking, the folder unreadable).
 */
export function folderFingerprint(dir: string, now = Date.now()): string | undefined {
  const lines: string[] = [];
  try {
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${dir}/${entry.name}`;
      const line = statLine(path, entry.name, now);
      if (line === undefined) return undefined;
      lines.push(line);
      if (!entry.isDirectory) continue;
      for (const inner of Deno.readDirSync(path)) {
        const innerLine = statLine(`${path}/${inner.name}`, `${entry.name}/${inner.name}`, now);
        if (innerLine === undefined) return undefined;
        lines.push(innerLine);
      }
    }
  } catch {
    return undefined;
  }
  return lines.sort().join("\n");
}

/** A cache over folder `dir`. */
export function createConfCache(dir: string): ConfCache {
  let fingerprint: string | undefined;
  const byName = new Map<string, ConfList>();
  return {
    async load(name) {
      const now = folderFingerprint(dir);
      if (now === undefined || now !== fingerprint) {
        byName.clear();
        fingerprint = now;
      }
      let list = byName.get(name);
      if (!list) {
        list = await loadNetworkConf(dir, name);
        // Kept only when the folder did not change while it was read.
        if (now !== undefined && folderFingerprint(dir) === now) byName.set(name, list);
      }
      return structuredClone(list);
    },
  };
}
