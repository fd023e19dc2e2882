/**
 * hydra for a node whose installer image carries hydra as a source tree run
 * by Deno (the offline image of tools/image.ts) rather than as one compiled
 * executable: the node gets a self-contained copy, so the runtime can exec
 * hydra as its CNI without the image.
 *
 *   <bin-dir>/.hydra/<version>/deno          the Deno executable
 *   <bin-dir>/.hydra/<version>/tree/...      the tree, its npm cache and CNI bundle
 *   <bin-dir>/hydra                          a launcher naming that version
 *
 * A version folder is written under a hidden scratch name, every file
 * fsynced, and renamed into place whole; only then is the launcher swapped
 * (atomically, by the install transaction). The version the launcher named
 * before is kept until the next upgrade, older ones are removed when the
 * transaction commits. A runtime exec'ing hydra during a rolling upgrade so
 * always finds a launcher whose version folder is complete, and an exec that
 * started just before the swap still finds its own files.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fsyncDir, lstatOrUndefined, scratchPath } from "./atomic.ts";
import { cachedSha256 } from "./source.ts";
import { type Txn, writeError } from "./txn.ts";

/** The folder in the bin dir that holds the version folders. */
export const TREES_DIR_NAME = ".hydra";

/**
 * Paths of the tree left out of the copy: version control, tooling, and
 * Deno's caches keyed by a module's path (useless at another path; Deno
 * refills them on the node) or only needed to build.
 */
const SKIP = new Set([
  ".git",
  "tools/node_modules",
  ".cache/images",
  ".cache/deno/gen",
  ".cache/deno/dl",
]);

/** Top-level `.cache` entries that are copied; the rest is scratch of development. */
const CACHE_KEEP = new Set(["bundle", "deno"]);

/** One file or symlink of the tree to copy. */
interface TreeFile {
  rel: string;
  st: Deno.FileInfo;
}

/** What to install: where it comes from and the version it makes. */
export interface TreeSource {
  /** The source tree (the folder holding main.ts). */
  root: string;
  /** The Deno executable running it. */
  deno: string;
  /** Names the version folder: a hash of Deno and the tree's files. */
  version: string;
  files: TreeFile[];
}

function skipped(rel: string): boolean {
  if (SKIP.has(rel)) return true;
  if (rel.startsWith(".cache/deno/") && /_cache_v\d+/.test(basename(rel))) return true;
  const parts = rel.split("/");
  return parts[0] === ".cache" && parts.length === 2 && !CACHE_KEEP.has(parts[1]);
}

async function listTree(root: string): Promise<TreeFile[]> {
  const out: TreeFile[] = [];
  const walk = async (rel: string) => {
    const names = (await Array.fromAsync(Deno.readDir(join(root, rel)))).map((e) => e.name).sort();
    for (const name of names) {
      const sub = rel ? `${rel}/${name}` : name;
      if (skipped(sub)) continue;
      const st = await Deno.lstat(join(root, sub));
      if (st.isDirectory) await walk(sub);
      else if (st.isFile || st.isSymlink) out.push({ rel: sub, st });
    }
  };
  await walk("");
  return out;
}

let memo: Promise<TreeSource> | undefined;

/**
 * The running tree and Deno, with their version; worked out once per
 * process (an image does not change under its container).
 */
export function runningTree(): Promise<TreeSource> {
  memo ??= (async () => {
    const root = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
    return await treeSource(root, Deno.execPath());
  })();
  return memo;
}

/** Lists `root` and hashes Deno and the files' names, modes, sizes and mtimes into a version. */
export async function treeSource(root: string, deno: string): Promise<TreeSource> {
  const files = await listTree(root);
  const hash = createHash("sha256").update(`deno ${await cachedSha256(deno)}\n`);
  for (const f of files) {
    hash.update(
      `${f.rel}\0${
        f.st.isSymlink ? "l" : "f"
      }${f.st.mode}\0${f.st.size}\0${f.st.mtime?.getTime()}\n`,
    );
  }
  return { root, deno, version: hash.digest("hex").slice(0, 32), files };
}

/** Copies one regular file with its mode and times, fsynced. */
async function copyFile(from: string, to: string, st: Deno.FileInfo): Promise<void> {
  const src = await Deno.open(from, { read: true });
  try {
    const out = await Deno.open(to, { write: true, createNew: true, mode: 0o600 });
    try {
      const buf = new Uint8Array(1 << 20);
      for (;;) {
        const n = await src.read(buf);
        if (n === null) break;
        let off = 0;
        while (off < n) off += await out.write(buf.subarray(off, n));
      }
      await out.sync();
    } finally {
      out.close();
    }
  } finally {
    src.close();
  }
  await Deno.chmod(to, (st.mode ?? 0o644) & 0o755);
  // The launcher's bundle must stay newer than its inputs, as in the image.
  if (st.mtime) await Deno.utime(to, st.atime ?? st.mtime, st.mtime);
}

/** Writes the whole version folder under a scratch name; returns that name. */
async function writeVersion(src: TreeSource, path: string): Promise<string> {
  const tmp = scratchPath(path, "tmp");
  await Deno.mkdir(tmp, { mode: 0o755 });
  try {
    await copyFile(src.deno, join(tmp, "deno"), await Deno.stat(src.deno));
    const made = new Set<string>();
    for (const f of src.files) {
      const to = join(tmp, "tree", f.rel);
      const dir = dirname(to);
      if (!made.has(dir)) {
        await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
        made.add(dir);
      }
      if (f.st.isSymlink) await Deno.symlink(await Deno.readLink(join(src.root, f.rel)), to);
      else await copyFile(join(src.root, f.rel), to, f.st);
    }
    for (const dir of [...made].sort((a, b) => b.length - a.length)) await fsyncDir(dir);
    await fsyncDir(tmp);
    return tmp;
  } catch (err) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** True when `path` is a complete version folder (renamed in only once complete). */
export async function isVersionFolder(path: string, version: string): Promise<boolean> {
  if (basename(path) !== version) return false;
  const st = await lstatOrUndefined(path);
  const deno = await lstatOrUndefined(join(path, "deno"));
  return Boolean(st?.isDirectory && deno?.isFile);
}

/**
 * Makes `path` (`<trees dir>/<version>`) the version folder of `src` unless
 * it is one already. Returns whether anything changed.
 */
export async function ensureVersion(txn: Txn, path: string, src: TreeSource): Promise<boolean> {
  if (await isVersionFolder(path, src.version)) return false;
  if (await lstatOrUndefined(path)) {
    throw writeError(path, new Error("exists and is not a complete version folder"));
  }
  try {
    const tmp = await writeVersion(src, path);
    await Deno.rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    throw writeError(path, err);
  }
  txn.changes.push({ path, action: "created" });
  txn.undo.push(() => Deno.remove(path, { recursive: true }));
  return true;
}

/**
 * Removes a version folder: renamed aside at once (so a failed pass can put
 * it back), deleted when the transaction commits.
 */
export async function removeVersion(txn: Txn, path: string): Promise<boolean> {
  const st = await lstatOrUndefined(path);
  if (!st?.isDirectory) return false;
  const bak = scratchPath(path, "bak");
  try {
    await Deno.rename(path, bak);
    await fsyncDir(dirname(path));
  } catch (err) {
    throw writeError(path, err);
  }
  txn.changes.push({ path, action: "removed" });
  txn.undo.push(async () => {
    await Deno.rename(bak, path);
    await fsyncDir(dirname(path));
  });
  txn.commit.push(() => Deno.remove(bak, { recursive: true }));
  return true;
}

/** Quotes a string for a POSIX shell. */
function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The launcher installed as `<bin-dir>/hydra`: runs the version folder
 * beside it, found from its own path (the runtime execs plugins by full
 * path; the role links point at it from the same folder), so the node's
 * bin dir may sit anywhere. A CNI invocation runs the prebuilt bundle, as
 * bin/hydra does in the tree.
 */
export function nodeLauncher(version: string): string {
  const v = shellQuote(version);
  return `#!/bin/sh
# hydra, run by Deno from a copy of its tree; written by \`hydra install\`.
# The name this file is started under picks the role, as for the compiled executable.
set -e
dir=\${0%/*}
[ "$dir" = "$0" ] && dir=.
root=$dir/${TREES_DIR_NAME}/${v}
if ! [ -x "$root/deno" ]; then
  root=$(dirname "$(readlink -f "$0")")/${TREES_DIR_NAME}/${v}
fi
HYDRA_ARGV0=\${0##*/}
DENO_DIR=$root/tree/.cache/deno
DENO_NO_UPDATE_CHECK=1
export HYDRA_ARGV0 DENO_DIR DENO_NO_UPDATE_CHECK
v8=--max-semi-space-size=1,--initial-old-space-size=8,--lite-mode,--expose-gc
bundle=$root/tree/.cache/bundle/hydra-cni.js
if [ -n "\${CNI_COMMAND+set}" ] && [ $# -eq 0 ] && [ -f "$bundle" ]; then
  exec "$root/deno" run --quiet --no-prompt --cached-only -A --v8-flags=$v8 --no-config "$bundle"
fi
exec "$root/deno" run --quiet --no-prompt --cached-only -A --v8-flags=$v8 \\
  --config "$root/tree/deno.json" "$root/tree/main.ts" "$@"
`;
}
