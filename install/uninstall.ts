/**
 * `hydra install --uninstall`: removes exactly the paths the manifest
 * records, and only while they hold what hydra wrote. The meta conf goes
 * first, so the runtime falls back to the default network before the
 * executable it would call disappears.
 *
 * @module
 */

import { InstallError } from "./error.ts";
import type { Logger } from "../pkg/log.ts";
import { readManifest, removalOrder } from "./manifest.ts";
import type { InstallOptions } from "./options.ts";
import { join } from "node:path";
import { INSTALL_LOCK_NAME, removeDirs, removeEntries, withInstallLock } from "./reconcile.ts";
import { commitTxn, newTxn, removePath, rollbackTxn } from "./txn.ts";

/** What an uninstall did. */
export interface UninstallResult {
  removed: string[];
  warnings: string[];
}

/** Removes what the manifest records; throws {@link InstallError} and undoes on failure. */
export function uninstall(opts: InstallOptions, log: Logger): Promise<UninstallResult> {
  return withInstallLock(opts, async () => {
    try {
      return await uninstallLocked(opts, log);
    } finally {
      // The lock file goes too, held until the end: nothing of hydra stays in the bin dir.
      await Deno.remove(join(opts.binDir, INSTALL_LOCK_NAME)).catch(() => {});
    }
  });
}

async function uninstallLocked(opts: InstallOptions, log: Logger): Promise<UninstallResult> {
  const manifest = await readManifest(opts.manifest).catch((err) => {
    throw new InstallError(`${err.message}; cannot tell what to remove`, {
      manifest: opts.manifest,
    });
  });
  const result: UninstallResult = { removed: [], warnings: [] };
  if (!manifest) {
    result.warnings.push(`no install manifest at ${opts.manifest}: nothing recorded to remove`);
    return result;
  }
  const ordered = removalOrder(manifest.entries);
  const txn = newTxn();
  try {
    await removeEntries(txn, ordered.filter((e) => e.kind !== "dir"), result.warnings);
    await removePath(txn, opts.manifest);
  } catch (err) {
    const undone = txn.changes.map((c) => c.path);
    for (const e of await rollbackTxn(txn)) log.error("rollback step failed", { error: e });
    if (undone.length > 0) {
      log.warn("uninstall failed; put back what it removed", { paths: undone });
    }
    throw err;
  }
  await commitTxn(txn);
  // Directories last: the manifest and the backups lived in them.
  await removeDirs(ordered, txn.changes, result.warnings);
  result.removed = txn.changes.map((c) => c.path);
  return result;
}
