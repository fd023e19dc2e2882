/**
 * The install manifest: the record of every path `hydra install` created or
 * took over, with what it put there. `--uninstall` removes exactly these
 * paths, and only while they still hold what hydra wrote, so a file someone
 * replaced afterwards is left alone.
 *
 * @module
 */

import { writeFileAtomic } from "./atomic.ts";

/**
 * What kind of thing an entry is. A "tree" is a folder hydra wrote whole
 * (a version folder of install/tree_copy.ts) and removes whole; a "dir" is
 * removed only when empty.
 */
export type EntryKind = "file" | "symlink" | "dir" | "tree";

/**
 * Why hydra put an entry there; also the order of removal on uninstall (the
 * CNI conf goes first, so the runtime stops calling hydra before anything
 * it needs disappears).
 */
export type EntryRole = "conf" | "kubeconfig" | "symlink" | "binary" | "dir";

/** One path hydra installed. */
export interface ManifestEntry {
  /** Absolute path. */
  path: string;
  kind: EntryKind;
  role: EntryRole;
  /** sha256 of the content hydra wrote (files). */
  sha256?: string;
  /** Where the link points (symlinks). */
  target?: string;
}

/** The manifest file's content. */
export interface InstallManifest {
  format: typeof MANIFEST_FORMAT;
  /** Mode of the last successful install. */
  mode: string;
  entries: ManifestEntry[];
}

/** Identifies the manifest format; bumped on incompatible changes. */
export const MANIFEST_FORMAT = "hydra-install/v1";

/** Removal order on uninstall: lower first. */
const ROLE_ORDER: Record<EntryRole, number> = {
  conf: 0,
  kubeconfig: 1,
  symlink: 2,
  binary: 3,
  dir: 4,
};

/** Raised when a manifest file exists but cannot be understood. */
export class ManifestError extends Error {}

/** Reads the manifest at `path`; undefined when there is none. */
export async function readManifest(path: string): Promise<InstallManifest | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(`install manifest ${path} is not valid JSON: ${errText(err)}`);
  }
  return validateManifest(parsed, path);
}

function validateManifest(value: unknown, path: string): InstallManifest {
  const bad = (why: string) => new ManifestError(`install manifest ${path}: ${why}`);
  if (!isRecord(value) || value.format !== MANIFEST_FORMAT) {
    throw bad(`format is not ${MANIFEST_FORMAT}`);
  }
  if (typeof value.mode !== "string") throw bad("mode missing");
  if (!Array.isArray(value.entries)) throw bad("entries missing");
  const entries = value.entries.map((e: unknown, i: number): ManifestEntry => {
    if (!isRecord(e) || typeof e.path !== "string" || !e.path.startsWith("/")) {
      throw bad(`entry ${i} has no absolute path`);
    }
    if (e.kind !== "file" && e.kind !== "symlink" && e.kind !== "dir" && e.kind !== "tree") {
      throw bad(`entry ${i} has unknown kind ${JSON.stringify(e.kind)}`);
    }
    if (typeof e.role !== "string" || !Object.hasOwn(ROLE_ORDER, e.role)) {
      throw bad(`entry ${i} has unknown role ${JSON.stringify(e.role)}`);
    }
    const entry: ManifestEntry = { path: e.path, kind: e.kind, role: e.role as EntryRole };
    if (typeof e.sha256 === "string") entry.sha256 = e.sha256;
    if (typeof e.target === "string") entry.target = e.target;
    return entry;
  });
  return { format: MANIFEST_FORMAT, mode: value.mode, entries };
}

/** The manifest's bytes, deterministic for equal content. */
export function encodeManifest(manifest: InstallManifest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(manifest, null, 2) + "\n");
}

/** Writes the manifest atomically (mode 0600: it names every installed path). */
export async function writeManifest(path: string, manifest: InstallManifest): Promise<void> {
  await writeFileAtomic(path, { bytes: encodeManifest(manifest) }, 0o600);
}

/**
 * Entries in the order uninstall removes them: conf, kubeconfig, symlinks,
 * binary, then directories deepest first.
 */
export function removalOrder(entries: ManifestEntry[]): ManifestEntry[] {
  return [...entries].sort((a, b) =>
    ROLE_ORDER[a.role] - ROLE_ORDER[b.role] || b.path.length - a.path.length ||
    a.path.localeCompare(b.path)
  );
}

/** Union of entries by path; later lists win. */
export function mergeEntries(...lists: ManifestEntry[][]): ManifestEntry[] {
  const byPath = new Map<string, ManifestEntry>();
  for (const list of lists) for (const e of list) byPath.set(e.path, e);
  return [...byPath.values()];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
