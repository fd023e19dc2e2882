/**
 * Pod status reports that could not be written yet, kept on disk until
 * someone can: the meta-CNI leaves one here when the API server (and the
 * node daemon) did not take it in time, the daemon spools what is still
 * queued when it stops; the daemon drains the folder when it starts and
 * every little while, and a meta-CNI that just wrote its own report
 * drains a few. A network that works is never undone because its status
 * could not be written.
 *
 * Files: `<dir>/<namespace>_<name>_<uid>_<seq>.json`, 0600, written atomically.
 *
 * @module
 */

import { ensureDir, quarantineFile, writeFileAtomic } from "../pkg/fsutil.ts";
import { type KubeClient, retryTransient } from "./client.ts";
import type { PodArgs } from "./delegate.ts";
import { createEvent, type Pod, PodUidMismatchError } from "./objects.ts";
import { type AttachmentReport, reportAttachments } from "./report.ts";

/** One pending report: what to record on which pod. */
export interface SpooledReport {
  pod: PodArgs;
  reports: AttachmentReport[];
  /** Normal Events still to record (AddedInterface). */
  events?: { reason: string; message: string }[];
  /** When the ADD that produced it finished (ms since the epoch). */
  at: number;
}

/** Where reports are spooled under a meta-CNI cache dir. */
export function spoolDirOf(cacheDir: string): string {
  return `${cacheDir.replace(/\/+$/, "")}/reports`;
}

let seq = 0;

/** Writes a report into the spool; returns its file. */
export async function spoolReport(dir: string, report: SpooledReport): Promise<string> {
  await ensureDir(dir, 0o700);
  const safe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, "-");
  const name = `${safe(report.pod.namespace)}_${safe(report.pod.name)}_${safe(report.pod.uid)}_${
    Date.now().toString(36)
  }${(seq++).toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}.json`;
  const path = `${dir}/${name}`;
  await writeFileAtomic(path, JSON.stringify(report), 0o600);
  return path;
}

/** The spooled reports' files, oldest name first; none when the folder is missing. */
export async function listSpool(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.isFile && e.name.endsWith(".json") && !e.name.startsWith(".")) names.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return names.sort().map((n) => `${dir}/${n}`);
}

/**
 * Reads one spooled report; undefined when it is gone or not one (a file a
 * crash truncated or zeroed): such a file is set aside as `.damaged-<name>`
 * (never read again; the daemon removes it after a week).
 */
export async function readSpooled(path: string): Promise<SpooledReport | undefined> {
  try {
    const doc = JSON.parse(await Deno.readTextFile(path)) as SpooledReport;
    if (
      typeof doc?.pod?.namespace === "string" && doc.pod.namespace !== "" &&
      typeof doc.pod.name === "string" && doc.pod.name !== "" && Array.isArray(doc.reports)
    ) return doc;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
  }
  await quarantineFile(path).catch(() => Deno.remove(path).catch(() => {}));
  return undefined;
}

/** Removes a spooled report once written (or no longer wanted). */
export async function removeSpooled(path: string): Promise<void> {
  await Deno.remove(path).catch(() => {});
}

function eventTarget(pod: PodArgs): Pick<Pod, "metadata"> {
  return { metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid || undefined } };
}

/** How writing a report ended: written, or nothing to write (pod gone or replaced). */
export type ReportOutcome = "written" | "pod-gone" | "replaced";

/**
 * Writes one report on its pod within `budgetMs`, retrying transient
 * failures: network-status and result annotations in one conditional write,
 * and its Events alongside (best effort, never retried). Throws the API
 * error when the write did not happen.
 */
export async function writeReport(
  client: KubeClient,
  r: SpooledReport,
  budgetMs: number,
): Promise<ReportOutcome> {
  const end = Date.now() + budgetMs;
  const events = (r.events ?? []).map((e) =>
    createEvent(client, eventTarget(r.pod), { type: "Normal", ...e }, {
      timeoutMs: Math.max(1, end - Date.now()),
    }).catch(() => undefined)
  );
  try {
    return await retryTransient(
      (rest) => reportAttachments(client, r.pod, r.reports, { timeoutMs: rest }),
      { deadlineMs: budgetMs },
    );
  } catch (err) {
    if (err instanceof PodUidMismatchError) return "replaced";
    throw err;
  } finally {
    await Promise.all(events);
  }
}
