/**
 * A node agent's status writer (the node daemon's, for the meta-CNI; the
 * NRI plugin's, for the pods it attaches): reports handed over (and found
 * in the spool) are written on their pods by a few workers, one write per
 * pod at a time, oldest first. A report handed over is put in the spool
 * before it is taken (the agent answers only then), so a kill -9 of the
 * agent loses none: the next start reads the spool back. Transient
 * failures are retried with backoff for up to `maxAgeMs`; a pod that is
 * gone or was replaced needs nothing. Events go out once, with the first attempt. On stop, what
 * is still queued is spooled for the next start.
 *
 * Memory is bounded: past `maxQueued` reports or `maxQueuedBytes` of them
 * in memory, a new report goes to the spool instead (the spool is read
 * back, as far as there is room, every 30 s); a spool file that cannot be
 * read is set aside and logged.
 *
 * @module
 */

import type { KubeClient } from "./client.ts";
import { isTransient } from "./errors.ts";
import { backoffDelay, delay } from "../pkg/async.ts";
import type { Logger } from "../pkg/log.ts";
import { QUARANTINE_PREFIX } from "../pkg/fsutil.ts";
import {
  listSpool,
  readSpooled,
  removeSpooled,
  type ReportOutcome,
  type SpooledReport,
  spoolReport,
  writeReport,
} from "./report_spool.ts";

/** Options of {@link startReportQueue}. */
export interface ReportQueueOptions {
  log: Logger;
  spoolDir: string;
  /** Concurrent writes; 4. */
  workers?: number;
  /** Per-attempt budget; 5 s. */
  attemptMs?: number;
  /** Give up on a report this long after its ADD; 1 h. */
  maxAgeMs?: number;
  /** Attempts for failures that are not transient (403, 422, …); 5. */
  maxPermanentFailures?: number;
  /** Told about each finished report. */
  onDone?: (outcome: ReportOutcome | "failed" | "dropped", seconds: number) => void;
  /** Reports held in memory at most; more go to the spool. 1,000. */
  maxQueued?: number;
  /** Their size (JSON) at most; more go to the spool. 8 MiB. */
  maxQueuedBytes?: number;
}

/** The running writer. */
export interface ReportQueue {
  /**
   * Takes a report: resolves once it is in the spool (and queued, as far as
   * memory allows). When the spool cannot be written it is queued in memory
   * only, and when neither can take it the promise rejects.
   */
  enqueue(report: SpooledReport): Promise<void>;
  /** Reports waiting or being written. */
  pending(): number;
  /** Queues the spool's reports not queued yet. */
  loadSpool(): Promise<number>;
  /** Stops the workers after up to `graceMs` of draining; spools the rest. */
  stop(graceMs: number): Promise<void>;
}

interface Item {
  report: SpooledReport;
  /** Its size as JSON, counted against the memory bound. */
  bytes: number;
  /** Its spool file, removed once the report is settled. */
  file?: string;
  attempts: number;
  permanentFailures: number;
  nextAt: number;
}

/** Pauses between writes of one report: 200 ms, doubling to 30 s. */
const RETRY_BACKOFF = { initialMs: 200, maxMs: 30_000 };

const key = (r: SpooledReport) => `${r.pod.namespace}/${r.pod.name}`;

/** The queue's state, shared by its workers and the steps below. */
interface Queue {
  client: KubeClient;
  opts: ReportQueueOptions;
  items: Item[];
  /** Pods with a write in progress: one at a time per pod. */
  busy: Set<string>;
  /** Spool files queued. */
  spooled: Set<string>;
  attemptMs: number;
  maxAgeMs: number;
  stopping: boolean;
  /** Aborted to wake the idle workers (and replaced). */
  wake: AbortController;
  inFlight: number;
  /** Bytes of the items in memory (queued or being written). */
  bytes: number;
  maxQueued: number;
  maxQueuedBytes: number;
}

/** True when one more item of `bytes` fits in memory. */
function hasRoom(q: Queue, bytes: number): boolean {
  return q.items.length + q.inFlight < q.maxQueued && q.bytes + bytes <= q.maxQueuedBytes;
}

/**
 * Spools a report, then queues it in memory with its spool file when there
 * is room; a full queue leaves it in the spool, read back later.
 */
async function enqueue(q: Queue, report: SpooledReport): Promise<void> {
  const bytes = JSON.stringify(report).length;
  let file: string | undefined;
  try {
    file = await spoolReport(q.opts.spoolDir, report);
  } catch (err) {
    if (!hasRoom(q, bytes)) throw err;
    q.opts.log.warn("cannot spool a pod status report; it is held in memory only", {
      pod: key(report),
      error: err,
    });
  }
  if (!hasRoom(q, bytes)) {
    q.opts.log.warn("report queue full; report left in the spool", { pod: key(report) });
    return;
  }
  // The periodic read of the spool may have taken it already.
  if (file && q.spooled.has(file)) return;
  if (file) q.spooled.add(file);
  q.bytes += bytes;
  q.items.push({ report, bytes, file, attempts: 0, permanentFailures: 0, nextAt: 0 });
  poke(q);
}

/** Wakes the idle workers: something was queued, finished, or the queue stops. */
function poke(q: Queue): void {
  q.wake.abort();
  q.wake = new AbortController();
}

/** The first item due whose pod has no write in progress. */
function take(q: Queue): Item | undefined {
  const now = Date.now();
  const i = q.items.findIndex((it) => it.nextAt <= now && !q.busy.has(key(it.report)));
  return i < 0 ? undefined : q.items.splice(i, 1)[0];
}

/** How long an idle worker may sleep: until the first item is due (a minute at most). */
function nextWakeMs(q: Queue): number {
  let soonest = Infinity;
  for (const it of q.items) if (!q.busy.has(key(it.report))) soonest = Math.min(soonest, it.nextAt);
  return soonest === Infinity ? 60_000 : Math.max(0, soonest - Date.now());
}

/** Drops a finished item's spool file and reports its outcome. */
async function settle(q: Queue, it: Item, outcome: ReportOutcome | "failed" | "dropped") {
  q.bytes -= it.bytes;
  if (it.file) {
    await removeSpooled(it.file);
    q.spooled.delete(it.file);
  }
  q.opts.onDone?.(outcome, (Date.now() - it.report.at) / 1000);
}

/** After a failed write: give up (too old, or refused too often), else queue a retry. */
async function afterFailure(q: Queue, it: Item, err: unknown): Promise<void> {
  const r = it.report;
  // Events went out with the first attempt; retries write the status only.
  r.events = undefined;
  if (!isTransient(err)) it.permanentFailures++;
  const tooOld = Date.now() - r.at > q.maxAgeMs;
  if (tooOld || it.permanentFailures >= (q.opts.maxPermanentFailures ?? 5)) {
    q.opts.log.error("giving up on the pod's network status", {
      pod: key(r),
      attempts: it.attempts,
      error: err,
    });
    await settle(q, it, "failed");
    return;
  }
  const retryInMs = backoffDelay(it.attempts, RETRY_BACKOFF);
  it.nextAt = Date.now() + retryInMs;
  q.opts.log.warn("pod status write failed; will retry", {
    pod: key(r),
    attempts: it.attempts,
    retryInMs,
    error: err,
  });
  q.items.push(it);
}

/** One write of one report. */
async function attempt(q: Queue, it: Item): Promise<void> {
  const r = it.report;
  it.attempts++;
  try {
    const outcome = await writeReport(q.client, r, q.attemptMs);
    if (outcome !== "written") q.opts.log.info("pod status not written", { outcome, pod: key(r) });
    await settle(q, it, outcome);
  } catch (err) {
    await afterFailure(q, it, err);
  }
}

/** Takes due items one after the other until the queue stops; sleeps when none is due. */
async function worker(q: Queue): Promise<void> {
  while (!q.stopping) {
    const it = take(q);
    if (!it) {
      await delay(nextWakeMs(q), q.wake.signal);
      continue;
    }
    const k = key(it.report);
    q.busy.add(k);
    q.inFlight++;
    try {
      await attempt(q, it);
    } catch (err) {
      // Never the end of a worker: the report is dropped, the others go on.
      q.opts.log.error("pod status report dropped", { pod: k, error: err });
      q.bytes -= it.bytes;
    } finally {
      q.busy.delete(k);
      q.inFlight--;
      poke(q);
    }
  }
}

/** True when `file` was set aside as damaged (see readSpooled). */
function setAside(file: string): boolean {
  const slash = file.lastIndexOf("/");
  try {
    Deno.statSync(`${file.slice(0, slash + 1)}${QUARANTINE_PREFIX}${file.slice(slash + 1)}`);
    return true;
  } catch {
    return false;
  }
}

/** Queues the spool's reports not queued yet, as far as memory allows; returns how many. */
async function loadSpool(q: Queue): Promise<number> {
  let added = 0;
  for (const file of await listSpool(q.opts.spoolDir)) {
    if (q.spooled.has(file)) continue;
    if (!hasRoom(q, 0)) break;
    const report = await readSpooled(file);
    if (!report) {
      if (setAside(file)) q.opts.log.warn("spooled report unreadable; set aside", { file });
      continue;
    }
    // Taken by enqueue while it was read.
    if (q.spooled.has(file)) continue;
    const bytes = JSON.stringify(report).length;
    if (!hasRoom(q, bytes)) break;
    q.spooled.add(file);
    q.bytes += bytes;
    q.items.push({ report, bytes, file, attempts: 0, permanentFailures: 0, nextAt: 0 });
    added++;
  }
  if (added) poke(q);
  return added;
}

/** Drains for up to `graceMs`, stops the workers, spools what is left. */
async function stop(q: Queue, workers: Promise<void>[], graceMs: number): Promise<void> {
  const end = Date.now() + graceMs;
  while (q.items.some((it) => it.attempts === 0) || q.inFlight > 0) {
    if (Date.now() >= end) break;
    await delay(20);
  }
  q.stopping = true;
  poke(q);
  // Let an attempt in flight finish (bounded by its own budget).
  await Promise.all(workers);
  for (const it of q.items.splice(0)) {
    if (it.file) continue;
    try {
      await spoolReport(q.opts.spoolDir, it.report);
    } catch (err) {
      q.opts.log.error("cannot spool a pod status report; it is lost", {
        pod: key(it.report),
        error: err,
      });
    }
  }
}

/** Starts the workers. */
export function startReportQueue(client: KubeClient, opts: ReportQueueOptions): ReportQueue {
  const q: Queue = {
    client,
    opts,
    items: [],
    busy: new Set(),
    spooled: new Set(),
    attemptMs: opts.attemptMs ?? 5_000,
    maxAgeMs: opts.maxAgeMs ?? 3_600_000,
    stopping: false,
    wake: new AbortController(),
    inFlight: 0,
    bytes: 0,
    maxQueued: opts.maxQueued ?? 1_000,
    maxQueuedBytes: opts.maxQueuedBytes ?? 8 * 1024 * 1024,
  };
  const workers = Array.from({ length: opts.workers ?? 4 }, () => worker(q));
  return {
    enqueue: (report) => enqueue(q, report),
    pending: () => q.items.length + q.inFlight,
    loadSpool: () => loadSpool(q),
    stop: (graceMs) => stop(q, workers, graceMs),
  };
}
