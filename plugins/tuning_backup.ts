/**
 * The tuning plugin's record of what an interface looked like before it was
 * changed: `<dataDir>/<containerID>_<ifname>.json`, in the same JSON layout
 * the reference tuning plugin writes, so either can restore what the other
 * changed.
 *
 * @module
 */

import { ensureDir, removeIfExists, writeFileAtomic } from "../pkg/fsutil.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";

/** The attributes to put back; only those the ADD changed are present. */
export interface LinkBackup {
  mac?: string;
  promisc?: boolean;
  mtu?: number;
  allmulti?: boolean;
  txQLen?: number;
}

function backupPath(dir: string, containerId: string, ifName: string): string {
  return `${dir.replace(/\/+$/, "")}/${containerId}_${ifName}.json`;
}

/** Saves `backup` (atomically). CniError 5 when the folder or file cannot be written. */
export async function writeBackup(
  dir: string,
  containerId: string,
  ifName: string,
  backup: LinkBackup,
): Promise<void> {
  const ordered: LinkBackup = {};
  if (backup.mac) ordered.mac = backup.mac;
  if (backup.promisc !== undefined) ordered.promisc = backup.promisc;
  if (backup.mtu) ordered.mtu = backup.mtu;
  if (backup.allmulti !== undefined) ordered.allmulti = backup.allmulti;
  if (backup.txQLen !== undefined) ordered.txQLen = backup.txQLen;
  try {
    await ensureDir(dir, 0o700);
    await writeFileAtomic(
      backupPath(dir, containerId, ifName),
      JSON.stringify(ordered, null, 1),
      0o600,
    );
  } catch (e) {
    throw new CniError(
      ErrorCode.IoFailure,
      `failed to save the settings of "${ifName}" in ${dir}: ${(e as Error).message}`,
    );
  }
}

function pick(raw: Record<string, unknown>): LinkBackup {
  const b: LinkBackup = {};
  if (typeof raw.mac === "string" && raw.mac) b.mac = raw.mac;
  if (typeof raw.promisc === "boolean") b.promisc = raw.promisc;
  if (typeof raw.mtu === "number" && raw.mtu > 0) b.mtu = raw.mtu;
  if (typeof raw.allmulti === "boolean") b.allmulti = raw.allmulti;
  if (typeof raw.txQLen === "number" && raw.txQLen >= 0) b.txQLen = raw.txQLen;
  return b;
}

/** The saved settings, or undefined when there is no (readable) backup. */
export async function readBackup(
  dir: string,
  containerId: string,
  ifName: string,
): Promise<LinkBackup | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(backupPath(dir, containerId, ifName));
  } catch {
    return undefined;
  }
  try {
    const raw = JSON.parse(text);
    return raw && typeof raw === "object" && !Array.isArray(raw) ? pick(raw) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Deletes the backup, and what a writer of it killed half-way left beside
 * it (pkg/fsutil's temporary `.<name>.tmp-*`); a missing one is fine.
 */
export async function removeBackup(
  dir: string,
  containerId: string,
  ifName: string,
): Promise<void> {
  const path = backupPath(dir, containerId, ifName);
  await removeIfExists(path);
  const tempPrefix = `.${path.slice(path.lastIndexOf("/") + 1)}.tmp-`;
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && e.name.startsWith(tempPrefix)) await removeIfExists(`${dir}/${e.name}`);
    }
  } catch {
    // no folder: nothing beside it either
  }
}
