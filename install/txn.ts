/**
 * A transaction over installed paths: each step changes one path
 * atomically and remembers how to undo it, so a run that fails half-way
 * puts back exactly what it found (replaced files come back from a hard
 * link taken before the rename, with their inode and mtime).
 *
 * @module
 */

import { dirname } from "node:path";
import {
  type Content,
  fsyncDir,
  lstatOrUndefined,
  renameScratch,
  scratchPath,
  symlinkScratch,
  writeScratch,
} from "./atomic.ts";
import { InstallError } from "./error.ts";

/** Pending undo and commit actions of one run. */
export interface Txn {
  /** Paths changed so far, with what happened to each. */
  changes: { path: string; action: "created" | "replaced" | "chmod" | "removed" }[];
  undo: (() => Promise<void>)[];
  commit: (() => Promise<void>)[];
}

/** A fresh, empty transaction. */
export function newTxn(): Txn {
  return { changes: [], undo: [], commit: [] };
}

/** Makes the change final: drops the backups. */
export async function commitTxn(txn: Txn): Promise<void> {
  for (const fn of txn.commit) await fn().catch(() => {});
  txn.commit = [];
  txn.undo = [];
}

/** Undoes every step, newest first; returns the errors met (best effort). */
export async function rollbackTxn(txn: Txn): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (const fn of [...txn.undo].reverse()) {
    try {
      await fn();
    } catch (err) {
      errors.push(err);
    }
  }
  txn.undo = [];
  txn.commit = [];
  return errors;
}

/** Wraps a file-system error with the path and a hint a user can act on. */
export function writeError(path: string, err: unknown): InstallError {
  if (err instanceof InstallError) return err;
  let hint = "";
  if (err instanceof Deno.errors.NotFound) hint = " (its directory does not exist)";
  else if (err instanceof Deno.errors.PermissionDenied) hint = " (permission denied)";
  else if (err instanceof Error && /read-only file system/i.test(err.message)) {
    hint = " (read-only file system)";
  }
  const why = err instanceof Error ? err.message : String(err);
  return new InstallError(`cannot write ${path}${hint}: ${why}`, { path });
}

/**
 * Creates the directory `path` (its parent must exist) unless it is one.
 * Returns true when it was created.
 */
export async function ensureDir(txn: Txn, path: string): Promise<boolean> {
  const st = await lstatOrUndefined(path);
  if (st?.isDirectory) return false;
  if (st) throw new InstallError(`${path} exists and is not a directory`, { path });
  try {
    await Deno.mkdir(path, { mode: 0o755 });
    await fsyncDir(dirname(path));
  } catch (err) {
    throw writeError(path, err);
  }
  txn.changes.push({ path, action: "created" });
  txn.undo.push(() => Deno.remove(path));
  return true;
}

/** Puts `path` aside under a hidden backup name; returns how to bring it back. */
async function backup(txn: Txn, path: string): Promise<void> {
  const bak = scratchPath(path, "bak");
  // A hard link keeps the old inode reachable while the new one is renamed in.
  await Deno.link(path, bak);
  txn.undo.push(async () => {
    await Deno.rename(bak, path);
    await fsyncDir(dirname(path));
  });
  txn.commit.push(() => Deno.remove(bak));
}

/**
 * Puts scratch file `tmp` in place of `path` (backed up first when it
 * existed, as `st` says) and records the change and how to undo it.
 */
async function replaceWith(
  txn: Txn,
  path: string,
  st: Deno.FileInfo | undefined,
  tmp: string,
): Promise<void> {
  await renameScratch(tmp, path, st ? () => backup(txn, path) : undefined);
  if (!st) txn.undo.push(() => Deno.remove(path));
  txn.changes.push({ path, action: st ? "replaced" : "created" });
}

/**
 * Makes `path` a regular file with `content` and `mode`. `same` tells
 * whether the existing file already holds that content (so nothing is
 * rewritten and inode and mtime stay). Returns whether anything changed.
 */
export async function ensureFile(
  txn: Txn,
  path: string,
  content: Content,
  mode: number,
  same: (existing: Deno.FileInfo) => Promise<boolean>,
): Promise<boolean> {
  const st = await lstatOrUndefined(path);
  if (st?.isDirectory) throw new InstallError(`${path} is a directory, expected a file`, { path });
  try {
    if (st?.isFile && await same(st)) {
      const oldMode = (st.mode ?? 0) & 0o7777;
      if (oldMode === mode) return false;
      await Deno.chmod(path, mode);
      txn.changes.push({ path, action: "chmod" });
      txn.undo.push(() => Deno.chmod(path, oldMode));
      return true;
    }
    await replaceWith(txn, path, st, await writeScratch(path, content, mode));
    return true;
  } catch (err) {
    throw writeError(path, err);
  }
}

/** Makes `path` a symlink to `target`. Returns whether anything changed. */
export async function ensureSymlink(txn: Txn, path: string, target: string): Promise<boolean> {
  const st = await lstatOrUndefined(path);
  if (st?.isDirectory) {
    throw new InstallError(`${path} is a directory, expected a symlink`, { path });
  }
  try {
    if (st?.isSymlink && await Deno.readLink(path) === target) return false;
    await replaceWith(txn, path, st, await symlinkScratch(path, target));
    return true;
  } catch (err) {
    throw writeError(path, err);
  }
}

/**
 * Removes the file or symlink at `path` (kept as a backup until commit).
 * Returns false when nothing was there.
 */
export async function removePath(txn: Txn, path: string): Promise<boolean> {
  const st = await lstatOrUndefined(path);
  if (!st) return false;
  if (st.isDirectory) throw new InstallError(`${path} is a directory`, { path });
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
  txn.commit.push(() => Deno.remove(bak));
  return true;
}

/**
 * Removes `path` if it is an empty directory. Runs after the transaction
 * committed (backups of removed files lived in these directories), so it
 * is not undone; a directory that is not empty is left in place.
 */
export async function removeDirIfEmpty(path: string): Promise<"removed" | "not-empty" | "gone"> {
  const st = await lstatOrUndefined(path);
  if (!st?.isDirectory) return "gone";
  for await (const _ of Deno.readDir(path)) return "not-empty";
  try {
    await Deno.remove(path);
    await fsyncDir(dirname(path));
  } catch (err) {
    throw writeError(path, err);
  }
  return "removed";
}
