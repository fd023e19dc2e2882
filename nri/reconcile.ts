/**
 * Bringing what hydra attached in line with the sandboxes the runtime has,
 * in the background: the runtime is answered at once on Synchronize (a late
 * or failed answer would only make it drop hydra), and this work follows.
 *
 * A pass over the Synchronize list:
 * - every listed sandbox whose network namespace exists gets its networks
 *   attached if they are missing (pods created while hydra was down, or
 *   whose attach died half-way); attached ones are left alone;
 * - every sandbox hydra holds something for (a record or a state file) that
 *   is not listed, or is listed without a network namespace (stopped while
 *   hydra was down), is released.
 *
 * Failed steps are retried with capped exponential backoff, at most
 * `maxAttempts` times, as long as they still make sense: a sandbox that
 * stops meanwhile is not attached again, one that starts meanwhile (a
 * RunPodSandbox after the list was taken) is not released. At most
 * `concurrency` steps run at once.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import type { Attacher } from "./attach.ts";
import type { NriMetrics } from "./metrics.ts";
import { netnsPathOf, type PodSandbox } from "./pod.ts";
import { recordedContainers } from "../engine/attach.ts";
import { listPodStateIds } from "./state.ts";

/** Settings of the reconciler. */
export interface ReconcilerOptions {
  attacher: Attacher;
  cacheDir: string;
  log: Logger;
  metrics: NriMetrics;
  /** Steps running at once; default 4. */
  concurrency?: number;
  /** First retry delay, ms; default 1000. */
  retryInitialMs?: number;
  /** Longest retry delay, ms; default 60000. */
  retryMaxMs?: number;
  /** Tries per step, the first included; default 10. */
  maxAttempts?: number;
}

/** What one pass found, for logs and tests. */
export interface PassSummary {
  listed: number;
  attached: number;
  released: number;
  failed: number;
}

/** The reconciler. */
export interface Reconciler {
  /** Starts a pass over a Synchronize list; resolves when its first attempts settled. */
  synchronize(pods: readonly PodSandbox[]): Promise<PassSummary>;
  /** A RunPodSandbox arrived for the sandbox: never release it on an older list. */
  started(sandboxId: string): void;
  /** The sandbox stopped or was removed: never attach it again. */
  stopped(sandboxId: string): void;
  /** Whether a Stop/RemovePodSandbox was seen for the sandbox. */
  isStopped(sandboxId: string): boolean;
  /** Retries a release that failed in an event hook. */
  retryRelease(sandboxId: string, netns?: string): void;
  /** Cancels pending retries and waits for running steps. */
  stop(): Promise<void>;
}

type StepKind = "attach" | "release";
type StepOutcome = "changed" | "unchanged" | "failed";

interface Step {
  kind: StepKind;
  id: string;
  pod?: PodSandbox;
  netns?: string;
}

function netnsExists(path: string | undefined): boolean {
  if (!path) return false;
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Creates the reconciler. */
export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { attacher, log, metrics } = options;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const retryInitialMs = options.retryInitialMs ?? 1000;
  const retryMaxMs = options.retryMaxMs ?? 60_000;
  const maxAttempts = Math.max(1, options.maxAttempts ?? 10);

  const startedIds = new Set<string>();
  const stoppedIds = new Set<string>();
  /** Pending retry timers by step key. */
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  const running = new Set<Promise<unknown>>();
  let active = 0;
  const waiting: (() => void)[] = [];
  let closed = false;

  async function slot<T>(fn: () => Promise<T>): Promise<T> {
    if (active >= concurrency) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  }

  const key = (step: Step) => `${step.kind}:${step.id}`;

  /** Whether the step still makes sense now. */
  function wanted(step: Step): boolean {
    if (closed) return false;
    if (step.kind === "attach") {
      return !stoppedIds.has(step.id) && netnsExists(netnsPathOf(step.pod!));
    }
    return !startedIds.has(step.id) || stoppedIds.has(step.id);
  }

  async function attempt(step: Step): Promise<StepOutcome> {
    const t0 = performance.now();
    try {
      if (step.kind === "attach") {
        const out = await attacher.attach(step.pod!, () => wanted(step));
        if (out.status === "attached") {
          metrics.attachDuration.observe(
            { trigger: "sync", result: "ok" },
            (performance.now() - t0) / 1000,
          );
          log.info("networks attached on synchronize", {
            sandbox: step.id,
            pod: `${step.pod!.namespace}/${step.pod!.name}`,
            networks: out.networks.map((n) => `${n.name}@${n.ifName}`),
          });
          return "changed";
        }
        return "unchanged";
      }
      const out = await attacher.release(step.id, step.netns);
      if (!out.records) return "unchanged";
      metrics.releaseDuration.observe({ result: "ok" }, (performance.now() - t0) / 1000);
      return "changed";
    } catch (err) {
      if (!wanted(step)) return "unchanged";
      metrics.failures.inc({ op: step.kind, trigger: "sync" });
      if (step.kind === "attach") {
        metrics.attachDuration.observe(
          { trigger: "sync", result: "error" },
          (performance.now() - t0) / 1000,
        );
      } else {
        metrics.releaseDuration.observe({ result: "error" }, (performance.now() - t0) / 1000);
      }
      log.error(`${step.kind} failed`, {
        sandbox: step.id,
        ...(step.pod ? { pod: `${step.pod.namespace}/${step.pod.name}` } : {}),
        error: err,
      });
      return "failed";
    }
  }

  function schedule(step: Step, tries: number): void {
    if (closed || !wanted(step)) return;
    if (tries >= maxAttempts) {
      log.error(`${step.kind} gave up after ${tries} tries; the next Synchronize tries again`, {
        sandbox: step.id,
      });
      return;
    }
    const k = key(step);
    if (timers.has(k)) return;
    const delay = Math.min(retryMaxMs, retryInitialMs * 2 ** (tries - 1));
    metrics.retriesPending.inc({}, 1);
    timers.set(
      k,
      setTimeout(() => {
        timers.delete(k);
        metrics.retriesPending.inc({}, -1);
        track(run(step, tries));
      }, delay),
    );
  }

  function track(p: Promise<unknown>): void {
    running.add(p);
    p.finally(() => running.delete(p));
  }

  /** One try of a step (after `tries` earlier ones); schedules the next on failure. */
  async function run(step: Step, tries: number): Promise<StepOutcome> {
    if (!wanted(step)) return "unchanged";
    const outcome = await slot(() => attempt(step));
    if (outcome === "failed") schedule(step, tries + 1);
    return outcome;
  }

  function cancel(kind: StepKind, id: string): void {
    const k = `${kind}:${id}`;
    const timer = timers.get(k);
    if (timer !== undefined) {
      clearTimeout(timer);
      timers.delete(k);
      metrics.retriesPending.inc({}, -1);
    }
  }

  return {
    async synchronize(pods) {
      const listed = new Map(pods.map((p) => [p.id, p]));
      // Ids of sandboxes the runtime no longer has can never come back.
      for (const id of [...stoppedIds]) if (!listed.has(id)) stoppedIds.delete(id);
      for (const id of [...startedIds]) if (!listed.has(id)) startedIds.delete(id);
      const held = new Set([
        ...listPodStateIds(options.cacheDir),
        ...recordedContainers(options.cacheDir),
      ]);
      const steps: Step[] = [];
      for (const id of held) {
        const pod = listed.get(id);
        const netns = pod ? netnsPathOf(pod) : undefined;
        if (!pod || !netnsExists(netns)) steps.push({ kind: "release", id, netns });
      }
      for (const pod of pods) {
        if (netnsExists(netnsPathOf(pod))) steps.push({ kind: "attach", id: pod.id, pod });
      }
      for (const s of steps) cancel(s.kind, s.id);
      const pass = Promise.all(steps.map((s) => run(s, 0)));
      track(pass);
      const outcomes = await pass;
      const count = (kind: StepKind, outcome: StepOutcome) =>
        steps.filter((s, i) => s.kind === kind && outcomes[i] === outcome).length;
      const summary: PassSummary = {
        listed: pods.length,
        attached: count("attach", "changed"),
        released: count("release", "changed"),
        failed: outcomes.filter((o) => o === "failed").length,
      };
      log.info("synchronize pass done", { ...summary });
      return summary;
    },
    started(id) {
      startedIds.add(id);
      stoppedIds.delete(id);
      cancel("release", id);
    },
    stopped(id) {
      stoppedIds.add(id);
      cancel("attach", id);
    },
    isStopped: (id) => stoppedIds.has(id),
    retryRelease(id, netns) {
      schedule({ kind: "release", id, netns }, 1);
    },
    async stop() {
      closed = true;
      for (const [k, timer] of timers) {
        clearTimeout(timer);
        timers.delete(k);
        metrics.retriesPending.inc({}, -1);
      }
      while (running.size) await Promise.all([...running]);
    },
  };
}
