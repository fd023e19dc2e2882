/**
 * File-system primitives that never expose a partial file: every new
 * content is written to a hidden temporary name in the target's own
 * directory, fsynced, given its mode, and renamed over the target; the
 * directory is fsynced afterwards so the rename survives a power cut.
 *
 * A runtime exec'ing `/opt/cni/bin/hydra` or reading a conf while these run
 * sees either the old inode or the new one, never a mixture.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";

/** Marks hidden names the installer creates beside a target. */
const SCRATCH_RE = /^\..+\.hydra-(tmp|bak)-[0-9a-z]+$/;

/** A hidden sibling name for `path`, unique to this call. */
export function scratchPath(path: string, kind: "tmp" | "bak"): string {
  const rand = crypto.getRandomValues(new Uint32Array(2));
  const suffix = `${rand[0].toString(36)}${rand[1].toString(36)}`;
  return join(dirname(path), `.${basename(path)}.hydra-${kind}-${suffix}`);
}

/** True when `name` is a temporary or backup name made by {@link scratchPath}. */
export function isScratchName(name: string): boolean {
  return SCRATCH_RE.test(name);
}

/** fsyncs a directory so that renames and unlinks inside it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await Deno.open(dir, { read: true });
  try {
    await handle.sync();
  } finally {
    handle.close();
  }
}

/** The lstat of `path`, or undefined when nothing is there. */
export async function lstatOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** The file's bytes, or undefined when it does not exist. */
export async function readOrUndefined(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Hex sha256 of bytes. */
export function sha256Bytes(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Hex sha256 of a file's content, streamed (executables are large). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  const file = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/** Where new content comes from: bytes in memory, or a file to stream. */
export type Content = { bytes: Uint8Array } | { file: string };

/**
 * Writes `content` to a fresh temporary name beside `path` with `mode`,
 * fsynced, and returns that name. The caller renames it into place.
 */
export async function writeScratch(path: string, content: Content, mode: number): Promise<string> {
  const tmp = scratchPath(path, "tmp");
  const out = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    if ("bytes" in content) {
      let off = 0;
      while (off < content.bytes.length) off += await out.write(content.bytes.subarray(off));
    } else {
      const src = await Deno.open(content.file, { read: true });
      try {
        const buf = new Uint8Array(1 << 20);
        for (;;) {
          const n = await src.read(buf);
          if (n === null) break;
          let off = 0;
          while (off < n) off += await out.write(buf.subarray(off, n));
        }
      } finally {
        src.close();
      }
    }
    await out.sync();
    out.close();
    // The process umask may have narrowed the create mode.
    await Deno.chmod(tmp, mode);
    return tmp;
  } catch (err) {
    try {
      out.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/** Makes a symlink to `target` at a fresh temporary name beside `path`. */
export async function symlinkScratch(path: string, target: string): Promise<string> {
  const tmp = scratchPath(path, "tmp");
  await Deno.symlink(target, tmp);
  return tmp;
}

/**
 * Renames the scratch file `tmp` over `path` (after `before`, such as a
 * backup of what is there) and fsyncs the folder. When that fails, `tmp`
 * is removed and `path` is left as it was.
 */
export async function renameScratch(
  tmp: string,
  path: string,
  before?: () => Promise<void>,
): Promise<void> {
  try {
    await before?.();
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(dirname(path));
}

/**
 * Writes `content` to `path` atomically (temp + fsync + chmod + rename +
 * directory fsync).
 */
export async function writeFileAtomic(path: string, content: Content, mode: number): Promise<void> {
  await renameScratch(await writeScratch(path, content, mode), path);
}

/** Points `path` at `target` atomically (symlink at a temp name + rename). */
export async function symlinkAtomic(path: string, target: string): Promise<void> {
  await renameScratch(await symlinkScratch(path, target), path);
}

/**
 * Removes leftovers of an interrupted earlier run (temporary and backup
 * names made by {@link scratchPath}) for the given target names in `dir`
 * ("*": for every name).
 * Returns the paths removed.
 */
export async function removeScratch(dir: string, targets: Set<string>): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return removed;
    throw err;
  }
  for (const entry of entries) {
    if (!isScratchName(entry.name)) continue;
    const target = entry.name.slice(1, entry.name.lastIndexOf(".hydra-"));
    if (!targets.has(target) && !targets.has("*")) continue;
    const path = join(dir, entry.name);
    // Version folders (install/tree_copy.ts) are written and put aside whole.
    await Deno.remove(path, { recursive: entry.isDirectory }).catch(() => {});
    removed.push(path);
  }
  return removed;
}
