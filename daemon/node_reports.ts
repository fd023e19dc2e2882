/**
 * The node daemon's status writer: reports handed over by the meta-CNI
 * (and found in the spool) are written on their pods by a few workers, one
 * write per pod at a time, oldest first. Transient failures are retried
 * with backoff for up to `maxAgeMs`; a pod that is gone or was replaced
 * needs nothing. Events go out once, with the first attempt. On stop, what
 * is still queued is spooled for the next start.
 *
 * @module
 */

import type { KubeClient } from "../kube/client.ts";
import { isTransient } from "../kube/errors.ts";
import type { Logger } from "../pkg/log.ts";
import {
  listSpool,
  readSpooled,
  removeSpooled,
  type ReportOutcome,
  type SpooledReport,
  spoolReport,
  writeReport,
} from "../kube/report_spool.ts";

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
}

/** The running writer. */
export interface ReportQueue {
  enqueue(report: SpooledReport): void;
  /** Reports waiting or being written. */
  pending(): number;
  /** Queues the spool's reports not queued yet. */
  loadSpool(): Promise<number>;
  /** Stops the workers after up to `graceMs` of draining; spools the rest. */
  stop(graceMs: number): Promise<void>;
}

interface Item {
  report: SpooledReport;
  /** Its spool file, removed once the report is settled. */
  file?: string;
  attempts: number;
  permanentFailures: number;
  nextAt: number;
  delay: number;
}

const key = (r: SpooledReport) => `${r.pod.namespace}/${r.pod.name}`;

/** Starts the workers. */
export function startReportQueue(client: KubeClient, opts: ReportQueueOptions): ReportQueue {
  const queue: Item[] = [];
  const busy = new Set<string>();
  const spooled = new Set<string>();
  const attemptMs = opts.attemptMs ?? 5_000;
  const maxAgeMs = opts.maxAgeMs ?? 3_600_000;
  let stopping = false;
  const sleepers = new Set<() => void>();
  let inFlight = 0;

  function poke() {
    for (const wake of [...sleepers]) wake();
  }

  function take(): Item | undefined {
    const now = Date.now();
    const i = queue.findIndex((it) => it.nextAt <= now && !busy.has(key(it.report)));
    return i < 0 ? undefined : queue.splice(i, 1)[0];
  }

  function nextWakeMs(): number {
    let soonest = Infinity;
    for (const it of queue) if (!busy.has(key(it.report))) soonest = Math.min(soonest, it.nextAt);
    return soonest === Infinity ? 60_000 : Math.max(0, soonest - Date.now());
  }

  async function settle(it: Item, outcome: ReportOutcome | "failed" | "dropped") {
    if (it.file) {
      await removeSpooled(it.file);
      spooled.delete(it.file);
    }
    opts.onDone?.(outcome, (Date.now() - it.report.at) / 1000);
  }

  async function attempt(it: Item): Promise<void> {
    const r = it.report;
    it.attempts++;
    try {
      const outcome = await writeReport(client, r, attemptMs);
      if (outcome !== "written") {
        opts.log.info("pod status not written", { outcome, pod: key(r) });
      }
      await settle(it, outcome);
      return;
    } catch (err) {
      // Events went out with the first attempt; retries write the status only.
      r.events = undefined;
      if (!isTransient(err)) it.permanentFailures++;
      const tooOld = Date.now() - r.at > maxAgeMs;
      if (tooOld || it.permanentFailures >= (opts.maxPermanentFailures ?? 5)) {
        opts.log.error("giving up on the pod's network status", {
          pod: key(r),
          attempts: it.attempts,
          error: err,
        });
        await settle(it, "failed");
        return;
      }
      it.delay = Math.min(it.delay ? it.delay * 2 : 200, 30_000);
      it.nextAt = Date.now() + it.delay;
      opts.log.warn("pod status write failed; will retry", {
        pod: key(r),
        attempts: it.attempts,
        retryInMs: it.delay,
        error: err,
      });
      queue.push(it);
    }
  }

  async function worker(): Promise<void> {
    while (!stopping) {
      const it = take();
      if (!it) {
        const ms = nextWakeMs();
        await new Promise<void>((resolve) => {
          const wake = () => {
            clearTimeout(timer);
            sleepers.delete(wake);
            resolve();
          };
          const timer = setTimeout(wake, ms);
          sleepers.add(wake);
        });
        continue;
      }
      const k = key(it.report);
      busy.add(k);
      inFlight++;
      try {
        await attempt(it);
      } finally {
        busy.delete(k);
        inFlight--;
        poke();
      }
    }
  }

  const workers = Array.from({ length: opts.workers ?? 4 }, () => worker());

  return {
    enqueue(report) {
      queue.push({ report, attempts: 0, permanentFailures: 0, nextAt: 0, delay: 0 });
      poke();
    },
    pending: () => queue.length + inFlight,
    async loadSpool() {
      let added = 0;
      for (const file of await listSpool(opts.spoolDir)) {
        if (spooled.has(file)) continue;
        const report = await readSpooled(file);
        if (!report) continue;
        spooled.add(file);
        queue.push({ report, file, attempts: 0, permanentFailures: 0, nextAt: 0, delay: 0 });
        added++;
      }
      if (added) poke();
      return added;
    },
    async stop(graceMs) {
      const end = Date.now() + graceMs;
      while (queue.some((it) => it.attempts === 0) || inFlight > 0) {
        if (Date.now() >= end) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      stopping = true;
      poke();
      // Let an attempt in flight finish (bounded by its own budget).
      await Promise.all(workers);
      for (const it of queue.splice(0)) {
        if (it.file) continue;
        try {
          await spoolReport(opts.spoolDir, it.report);
        } catch (err) {
          opts.log.error("cannot spool a pod status report; it is lost", {
            pod: key(it.report),
            error: err,
          });
        }
      }
    },
  };
}
