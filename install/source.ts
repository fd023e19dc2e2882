/**
 * What `hydra install` copies into the bin dir as `hydra`: the file named by
 * `--source`, else the running executable when hydra is a compiled build,
 * else (running from source) a small launcher pinned to this source tree,
 * since a plain copy of `bin/hydra` would look for the tree beside itself;
 * `--source` naming that `bin/hydra` gets the pinned launcher too.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { type Content, sha256Bytes, sha256File } from "./atomic.ts";
import { InstallError } from "./error.ts";

/** The executable to install, with its hash. */
export interface ExecutableSource {
  content: Content;
  sha256: string;
  /** For logs: where it came from. */
  origin: string;
}

/** Cached hashes of large files, keyed by path and invalidated by stat. */
const hashCache = new Map<string, { key: string; sha256: string }>();

function statKey(st: Deno.FileInfo): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtime?.getTime()}:${st.ctime?.getTime()}`;
}

/**
 * sha256 of a file, reusing the last result while its device, inode, size,
 * mtime and ctime are unchanged (the watch loop checks a large executable
 * every few seconds).
 */
export async function cachedSha256(path: string, st?: Deno.FileInfo): Promise<string> {
  const info = st ?? await Deno.stat(path);
  const key = statKey(info);
  const hit = hashCache.get(path);
  if (hit && hit.key === key) return hit.sha256;
  const sha256 = await sha256File(path);
  hashCache.set(path, { key, sha256 });
  return sha256;
}

/**
 * Set in an image that carries hydra as a source tree with Deno (the offline
 * image of tools/image.ts) rather than as one compiled executable.
 */
export const TREE_IN_IMAGE_ENV = "HYDRA_TREE_IN_IMAGE";

/**
 * True when hydra runs from a source tree that exists only inside its
 * image: a launcher installed onto the node would point at a tree and a
 * Deno the node does not have, so in meta mode the installer copies both
 * onto the node (install/tree_copy.ts).
 */
export function treeOnlyInImage(): boolean {
  if (Deno.build.standalone) return false;
  try {
    return Deno.env.get(TREE_IN_IMAGE_ENV) === "1";
  } catch {
    return false;
  }
}

/** Quotes a string for a POSIX shell. */
function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The launcher that runs this source tree with `deno` under its own name.
 * It sources the tree's `bin/hydra` with the tree pinned (`hydra_root`, a
 * shell variable, so no exec'd child inherits it), so an installed role
 * starts exactly as the tree's own: the bundled CNI path, V8's flags, and
 * no helper process.
 */
export function sourceLauncher(root: string, deno: string): string {
  return [
    "#!/bin/sh",
    "# hydra, run from its source tree by Deno; written by `hydra install`.",
    "# The name this file is started under picks the role, as for the compiled executable.",
    `hydra_root=${shellQuote(root)}`,
    `HYDRA_DENO=${shellQuote(deno)}`,
    '. "$hydra_root/bin/hydra"',
    "",
  ].join("\n");
}

/** True when `path` is this source tree's own launcher (`bin/hydra`). */
async function isTreeLauncher(path: string, root: string): Promise<boolean> {
  try {
    return await Deno.realPath(path) === await Deno.realPath(`${root}/bin/hydra`);
  } catch {
    return false;
  }
}

/** Resolves the executable to install (see the module doc). */
export async function resolveSource(flag: string | undefined): Promise<ExecutableSource> {
  const root = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
  const fromTree = flag === undefined
    ? !Deno.build.standalone
    : !Deno.build.standalone && await isTreeLauncher(flag, root);
  if (fromTree) {
    const bytes = new TextEncoder().encode(sourceLauncher(root, Deno.execPath()));
    return { content: { bytes }, sha256: sha256Bytes(bytes), origin: `source tree ${root}` };
  }
  const path = flag ?? Deno.execPath();
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (err) {
    throw new InstallError(`executable to install ${path} cannot be read: ${err}`, { path });
  }
  if (!st.isFile) throw new InstallError(`executable to install ${path} is not a file`, { path });
  return { content: { file: path }, sha256: await cachedSha256(path, st), origin: path };
}
