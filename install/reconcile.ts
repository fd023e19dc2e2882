/**
 * One install pass: works out what the node should hold (executable, role
 * symlinks, kubeconfig, meta conf), compares it with what is there and with
 * the manifest of earlier passes, and applies the difference in one
 * transaction. Nothing is written when nothing differs; a failure undoes
 * the pass and leaves the node as it was.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { builtinNames } from "../engine/builtins.ts";
import { lstatOrUndefined, readOrUndefined, removeScratch, sha256Bytes } from "./atomic.ts";
import { ConfRefused, InstallError } from "./error.ts";
import { NetlinkError } from "../netlink/errors.ts";
import { lockFile } from "../plugins/host_lock.ts";
import { foreignMeta, MIGRATION_GUIDE } from "./multus.ts";
import { kubeconfigToken, readCredentials, renderKubeconfig } from "./kubeconfig.ts";
import { nodeToken } from "./node_token.ts";
import type { Logger } from "../pkg/log.ts";
import {
  encodeManifest,
  type InstallManifest,
  MANIFEST_FORMAT,
  type ManifestEntry,
  mergeEntries,
  readManifest,
} from "./manifest.ts";
import { confsBefore, findDefaultConf } from "./metaconf.ts";
import { planMetaConf } from "./meta_plan.ts";
import type { InstallOptions } from "./options.ts";
import { cachedSha256, resolveSource, treeOnlyInImage } from "./source.ts";
import {
  ensureVersion,
  isVersionFolder,
  nodeLauncher,
  removeVersion,
  runningTree,
  TREES_DIR_NAME,
} from "./tree_copy.ts";
import {
  commitTxn,
  ensureDir,
  ensureFile,
  ensureSymlink,
  newTxn,
  removeDirIfEmpty,
  removePath,
  rollbackTxn,
  type Txn,
} from "./txn.ts";

/** The installed executable's name: the meta-CNI conf's `type`. */
export const EXECUTABLE_NAME = "hydra";

const ENOENT = 2;
const EROFS = 30;

/** IPAM roles that get a symlink even before their plugin module is registered. */
const EXTRA_ROLES = ["hydra-ipam", "kube-node"];

/** What one pass did. */
export interface ReconcileResult {
  /** Paths changed, in order. */
  changes: Txn["changes"];
  /** Set when the default conf is absent (meta mode): what is awaited. */
  waitingFor?: string;
  /** Things left alone that the operator may want to know about. */
  warnings: string[];
  /** How another meta-plugin's conf was taken over (worth logging when the conf changes). */
  notes?: string[];
}

/** Options of one pass beyond the user's flags. */
export interface PassOptions {
  /**
   * When the default conf is absent: true makes the pass change nothing and
   * report `waitingFor` (first install); false refreshes everything else and
   * keeps the existing meta conf (watch loop).
   */
  requireDefaultConf: boolean;
}

/** The role symlink names: every built-in plugin plus the IPAM roles. */
export function roleNames(): string[] {
  const names = new Set([...builtinNames(), ...EXTRA_ROLES]);
  names.delete(EXECUTABLE_NAME);
  for (const n of names) {
    if (n.includes("/") || n === "" || n.startsWith(".")) {
      throw new Error(`built-in plugin name ${JSON.stringify(n)} is not a file name`);
    }
  }
  return [...names].sort();
}

/** A desired path and how to make it so. */
interface Item {
  entry: ManifestEntry;
  apply: (txn: Txn) => Promise<void>;
}

/**
 * The install lock's file, beside the executable: every installer on a node
 * shares the bin dir. A root-only file (0600, never through a symlink) in
 * root's bin dir: a lock on the folder itself, as older versions took, can
 * be held by any local user (the folder is world-readable) and would stall
 * every pass.
 */
export const INSTALL_LOCK_NAME = ".hydra-install.lock";

/**
 * Takes the install lock; undefined when the bin dir is missing or
 * read-only (nothing can be installed there; the pass says why).
 */
async function lockInstall(binDir: string): Promise<(() => void) | undefined> {
  const path = join(binDir, INSTALL_LOCK_NAME);
  try {
    return await lockFile(path);
  } catch (err) {
    if (err instanceof NetlinkError && (err.errno === ENOENT || err.errno === EROFS)) {
      return undefined;
    }
    throw new InstallError(
      `cannot take the install lock ${path}: ${err instanceof Error ? err.message : err}`,
      { path },
    );
  }
}

/** Runs `fn` holding the install lock (shared by every installer of the bin dir). */
export async function withInstallLock<T>(opts: InstallOptions, fn: () => Promise<T>): Promise<T> {
  const release = await lockInstall(opts.binDir);
  try {
    return await fn();
  } finally {
    release?.();
  }
}

/** Reads the manifest for an install pass: a broken one is logged and replaced. */
async function manifestForInstall(opts: InstallOptions, log: Logger): Promise<ManifestEntry[]> {
  try {
    return (await readManifest(opts.manifest))?.entries ?? [];
  } catch (err) {
    log.warn("install manifest unreadable; it will be rewritten", { error: err });
    return [];
  }
}

/** Missing ancestors of `dir` (itself included), outermost first. */
async function missingDirs(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let d = dir; d !== dirname(d); d = dirname(d)) {
    const st = await lstatOrUndefined(d);
    if (st?.isDirectory) break;
    if (st) throw new InstallError(`${d} exists and is not a directory`, { path: d });
    missing.unshift(d);
  }
  return missing;
}

async function requireDir(dir: string, what: string, flag: string): Promise<void> {
  const st = await lstatOrUndefined(dir).catch(() => undefined);
  if (!st) throw new InstallError(`${what} ${dir} does not exist (${flag})`, { path: dir });
  if (!st.isDirectory) {
    throw new InstallError(`${what} ${dir} is not a directory (${flag})`, { path: dir });
  }
}

/** True when a small file already holds exactly `bytes`. */
function sameBytes(path: string, bytes: Uint8Array) {
  return async (st: Deno.FileInfo): Promise<boolean> => {
    if (st.size !== bytes.length) return false;
    const have = await readOrUndefined(path);
    return have !== undefined && have.length === bytes.length &&
      have.every((b, i) => b === bytes[i]);
  };
}

function fileItem(
  path: string,
  role: ManifestEntry["role"],
  bytes: Uint8Array,
  mode: number,
): Item {
  return {
    entry: { path, kind: "file", role, sha256: sha256Bytes(bytes) },
    apply: async (txn) => {
      await ensureFile(txn, path, { bytes }, mode, sameBytes(path, bytes));
    },
  };
}

/** The executable (compiled, or a launcher of a tree the node has) as `<bin-dir>/hydra`. */
async function executableItem(opts: InstallOptions): Promise<Item> {
  const source = await resolveSource(opts.source);
  const exe = join(opts.binDir, EXECUTABLE_NAME);
  return {
    entry: { path: exe, kind: "file", role: "binary", sha256: source.sha256 },
    apply: async (txn) => {
      await ensureFile(
        txn,
        exe,
        source.content,
        0o755,
        async (st) => await cachedSha256(exe, st) === source.sha256,
      );
    },
  };
}

/**
 * A copy of the running tree and Deno in a version folder of the bin dir,
 * then the launcher naming it (install/tree_copy.ts): in this order, so the
 * launcher is swapped only once its version is complete.
 */
async function treeCopyItems(opts: InstallOptions): Promise<Item[]> {
  const src = await runningTree();
  const trees = join(opts.binDir, TREES_DIR_NAME);
  const version = join(trees, src.version);
  return [
    {
      entry: { path: trees, kind: "dir", role: "dir" },
      apply: async (txn) => {
        await ensureDir(txn, trees);
      },
    },
    {
      entry: { path: version, kind: "tree", role: "binary", sha256: src.version },
      apply: async (txn) => {
        await ensureVersion(txn, version, src);
      },
    },
    fileItem(
      join(opts.binDir, EXECUTABLE_NAME),
      "binary",
      new TextEncoder().encode(nodeLauncher(src.version)),
      0o755,
    ),
  ];
}

/**
 * The version folder kept beside the current one. An upgrade keeps the one the
 * launcher named before it for one more generation: an exec started under the
 * old launcher just before the swap still reads its files (the CNI bundle
 * loads its kubelet client on demand). A pass that changes no version keeps
 * what the last upgrade kept; a version two upgrades old is removed.
 */
function previousVersion(
  opts: InstallOptions,
  oldEntries: ManifestEntry[],
  items: Item[],
): ManifestEntry[] {
  const launcher = join(opts.binDir, EXECUTABLE_NAME);
  const launcherSha = oldEntries.find((e) => e.path === launcher)?.sha256;
  const current = new Set(items.map((i) => i.entry.path));
  const oldTrees = oldEntries.filter((e) => e.kind === "tree" && e.sha256 !== undefined);
  const named = oldTrees.find((e) =>
    sha256Bytes(new TextEncoder().encode(nodeLauncher(e.sha256!))) === launcherSha
  );
  if (named === undefined) return [];
  if (!current.has(named.path)) return [named];
  return oldTrees.filter((e) => !current.has(e.path));
}

/** Works out the desired items; reads only, writes nothing. */
async function desiredItems(
  opts: InstallOptions,
  pass: PassOptions,
  oldEntries: ManifestEntry[],
  result: ReconcileResult,
): Promise<{ items: Item[]; carried: ManifestEntry[] }> {
  const items: Item[] = [];
  const carried: ManifestEntry[] = [];
  if (opts.mode === "router") return { items, carried };

  await requireDir(opts.binDir, "CNI bin dir", "--bin-dir");
  if (opts.mode === "meta" && opts.source === undefined && treeOnlyInImage()) {
    // The runtime execs hydra for every pod: the node gets a copy it can run without the image.
    const trees = await treeCopyItems(opts);
    items.push(...trees);
    carried.push(...previousVersion(opts, oldEntries, trees));
  } else {
    items.push(await executableItem(opts));
  }
  for (const name of roleNames()) {
    const path = join(opts.binDir, name);
    items.push({
      entry: { path, kind: "symlink", role: "symlink", target: EXECUTABLE_NAME },
      apply: async (txn) => {
        await ensureSymlink(txn, path, EXECUTABLE_NAME);
      },
    });
  }

  if (opts.kubeconfig !== undefined) {
    const creds = await readCredentials({
      tokenFile: opts.tokenFile,
      caFile: opts.caFile,
      server: opts.server,
    });
    const node = opts.nodeToken;
    const token = node
      ? await nodeToken(
        creds,
        node,
        await kubeconfigToken(opts.kubeconfig),
        (why) => result.warnings.push(why),
      )
      : creds.token;
    items.push(
      fileItem(opts.kubeconfig, "kubeconfig", renderKubeconfig({ ...creds, token }), 0o600),
    );
  }

  if (opts.mode === "nri") await refuseBesideMetaPlugin(opts);
  if (opts.mode === "meta") {
    const confPath = join(opts.confDir, opts.confName);
    const confDirThere = (await lstatOrUndefined(opts.confDir))?.isDirectory ?? false;
    const def = confDirThere
      ? await findDefaultConf(opts.confDir, opts.confName, opts.defaultConf)
      : undefined;
    if (!def) {
      result.waitingFor = opts.defaultConf
        ? `default CNI conf ${opts.defaultConf} in ${opts.confDir}`
        : `a default CNI conf in ${opts.confDir}`;
      if (pass.requireDefaultConf) return { items: [], carried: [] };
      // Keep the meta conf written earlier: removing it would silently drop
      // pods' extra networks.
      carried.push(...oldEntries.filter((e) => e.role === "conf"));
    } else {
      const ours = new Set(
        oldEntries.filter((e) => e.role === "conf").map((e) => basename(e.path)),
      );
      const before = (await confsBefore(opts.confDir, opts.confName)).filter((n) => !ours.has(n));
      if (before.length > 0) {
        throw new InstallError(
          `${before.join(", ")} sorts before ${opts.confName} in ${opts.confDir}, so the runtime ` +
            `would not use hydra; choose a --conf-name that sorts first`,
          { confDir: opts.confDir, before },
        );
      }
      const plan = await planMetaConf(opts, def);
      result.warnings.push(...plan.warnings);
      if (plan.notes.length > 0) result.notes = plan.notes;
      items.push(fileItem(confPath, "conf", plan.bytes, 0o644));
    }
  }
  return { items, carried };
}

/**
 * NRI mode attaches the networks pods ask for beside the runtime's CNI: when
 * that CNI is another meta-plugin (Multus), every pod's networks would be
 * attached twice. Refused, with the way out.
 */
async function refuseBesideMetaPlugin(opts: InstallOptions): Promise<void> {
  const confDirThere = (await lstatOrUndefined(opts.confDir))?.isDirectory ?? false;
  // The runtime's conf is not NRI mode's business otherwise: one it cannot read is left alone.
  const def = confDirThere
    ? await findDefaultConf(opts.confDir, opts.confName, opts.defaultConf).catch(() => undefined)
    : undefined;
  const foreign = def && foreignMeta(def.path, def.conf);
  if (foreign) {
    throw new ConfRefused(
      `the runtime's CNI conf ${foreign.path} is another meta-plugin; hydra nri serve beside it ` +
        `would attach every pod's networks a second time: run hydra in meta mode instead, ` +
        `which takes Multus over (see ${MIGRATION_GUIDE})`,
      { path: foreign.path },
    );
  }
}

/** Does `entry`'s path still hold what hydra put there? */
async function stillOurs(entry: ManifestEntry): Promise<boolean> {
  const st = await lstatOrUndefined(entry.path);
  if (!st) return false;
  if (entry.kind === "symlink") {
    return st.isSymlink && await Deno.readLink(entry.path) === entry.target;
  }
  if (entry.kind === "dir") return st.isDirectory;
  if (entry.kind === "tree") return await isVersionFolder(entry.path, entry.sha256 ?? "");
  if (!st.isFile) return false;
  return entry.role === "binary"
    ? await cachedSha256(entry.path, st) === entry.sha256
    : sha256Bytes(await Deno.readFile(entry.path)) === entry.sha256;
}

/** Removes the files and symlinks among `entries` that still hold what hydra wrote. */
export async function removeEntries(
  txn: Txn,
  entries: ManifestEntry[],
  warnings: string[],
): Promise<void> {
  for (const e of entries) {
    if (e.kind === "dir") continue;
    if (!(await lstatOrUndefined(e.path))) continue;
    if (!(await stillOurs(e))) {
      warnings.push(`${e.path} was changed by someone else; left in place`);
      continue;
    }
    if (e.kind === "tree") await removeVersion(txn, e.path);
    else await removePath(txn, e.path);
  }
}

/** Removes the directories among `entries` that are empty, deepest first. */
export async function removeDirs(
  entries: ManifestEntry[],
  changes: Txn["changes"],
  warnings: string[],
): Promise<void> {
  const dirs = entries.filter((e) => e.kind === "dir").sort((a, b) =>
    b.path.length - a.path.length
  );
  for (const e of dirs) {
    const outcome = await removeDirIfEmpty(e.path);
    if (outcome === "removed") changes.push({ path: e.path, action: "removed" });
    if (outcome === "not-empty") warnings.push(`${e.path} is not empty; left in place`);
  }
}

/** Writes the manifest through the transaction, or removes it when empty. */
async function putManifest(
  txn: Txn,
  opts: InstallOptions,
  entries: ManifestEntry[],
): Promise<void> {
  if (entries.length === 0) {
    await removePath(txn, opts.manifest);
    return;
  }
  const manifest: InstallManifest = { format: MANIFEST_FORMAT, mode: opts.mode, entries };
  const bytes = encodeManifest(manifest);
  await ensureFile(txn, opts.manifest, { bytes }, 0o600, sameBytes(opts.manifest, bytes));
}

/**
 * Runs one install pass under the install lock (see the module doc).
 * Throws {@link InstallError} for anything the user can fix; the node is
 * then as it was before the pass.
 */
export function reconcile(
  opts: InstallOptions,
  pass: PassOptions,
  log: Logger,
): Promise<ReconcileResult> {
  return withInstallLock(opts, () => reconcileLocked(opts, pass, log));
}

async function reconcileLocked(
  opts: InstallOptions,
  pass: PassOptions,
  log: Logger,
): Promise<ReconcileResult> {
  const result: ReconcileResult = { changes: [], warnings: [] };
  const oldEntries = await manifestForInstall(opts, log);
  const { items, carried } = await desiredItems(opts, pass, oldEntries, result);
  if (result.waitingFor && pass.requireDefaultConf) return result;

  const wanted = new Set(
    [...items, ...carried.map((entry) => ({ entry }))].map((i) => i.entry.path),
  );
  const txn = newTxn();
  result.changes = txn.changes;
  let staleDirs: ManifestEntry[] = [];
  try {
    await cleanScratch(opts, items);
    // Directories for the manifest and the kubeconfig; recorded only when
    // hydra made them (or made them in an earlier pass).
    const dirEntries: ManifestEntry[] = [];
    if (items.length > 0) {
      const needed = new Set([opts.stateDir]);
      if (opts.kubeconfig !== undefined) needed.add(dirname(opts.kubeconfig));
      for (const dir of needed) {
        for (const d of await missingDirs(dir)) {
          await ensureDir(txn, d);
          if (!dirEntries.some((e) => e.path === d)) {
            dirEntries.push({ path: d, kind: "dir", role: "dir" });
          }
        }
      }
      for (const e of oldEntries) {
        if (
          e.kind === "dir" && [...needed].some((n) => n === e.path || n.startsWith(e.path + "/"))
        ) {
          if (!dirEntries.some((d) => d.path === e.path)) dirEntries.push(e);
        }
      }
    }
    for (const d of dirEntries) wanted.add(d.path);
    const desiredEntries = [...dirEntries, ...items.map((i) => i.entry), ...carried];

    // Record new paths before creating them, so that an interrupted pass
    // leaves nothing that uninstall does not know about.
    const newPaths = desiredEntries.filter((e) => !oldEntries.some((o) => o.path === e.path));
    if (newPaths.length > 0) await putManifest(txn, opts, mergeEntries(oldEntries, newPaths));

    // The conf goes last: when the runtime sees it, all it refers to exists.
    const ordered = [
      ...items.filter((i) => i.entry.role !== "conf"),
      ...items.filter((i) => i.entry.role === "conf"),
    ];
    for (const item of ordered) await item.apply(txn);

    const stale = oldEntries.filter((e) => !wanted.has(e.path));
    await removeEntries(txn, stale.filter((e) => e.kind !== "dir"), result.warnings);
    await putManifest(txn, opts, desiredEntries);
    staleDirs = stale.filter((e) => e.kind === "dir");
  } catch (err) {
    const undone = txn.changes.map((c) => c.path);
    const undoErrors = await rollbackTxn(txn);
    for (const e of undoErrors) log.error("rollback step failed", { error: e });
    if (undone.length > 0) log.warn("pass failed; rolled back its changes", { paths: undone });
    result.changes = [];
    throw err;
  }
  await commitTxn(txn);
  await removeDirs(staleDirs, result.changes, result.warnings);
  return result;
}

/** Removes scratch files an interrupted earlier pass left beside hydra's targets. */
async function cleanScratch(opts: InstallOptions, items: Item[]): Promise<void> {
  const byDir = new Map<string, Set<string>>();
  const add = (path: string) => {
    const set = byDir.get(dirname(path)) ?? new Set<string>();
    set.add(basename(path));
    byDir.set(dirname(path), set);
  };
  for (const i of items) add(i.entry.path);
  add(opts.manifest);
  // Old version folders put aside by a pass that was killed before its commit.
  if (items.some((i) => i.entry.kind === "tree")) add(join(opts.binDir, TREES_DIR_NAME, "*"));
  for (const [dir, names] of byDir) await removeScratch(dir, names);
}
