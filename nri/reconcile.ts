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

import { backoffDelay, createSemaphore, type Semaphore } from "../pkg/async.ts";
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

/** One reconciler's state, shared by the steps below. */
interface ReconcilerState {
  options: ReconcilerOptions;
  retryInitialMs: number;
  retryMaxMs: number;
  maxAttempts: number;
  startedIds: Set<string>;
  stoppedIds: Set<string>;
  /** Pending retry timers by step key. */
  timers: Map<string, ReturnType<typeof setTimeout>>;
  running: Set<Promise<unknown>>;
  /** At most `concurrency` steps at once. */
  slots: Semaphore;
  closed: boolean;
}

const stepKey = (kind: StepKind, id: string) => `${kind}:${id}`;

/** Whether the step still makes sense now. */
function wanted(r: ReconcilerState, step: Step): boolean {
  if (r.closed) return false;
  if (step.kind === "attach") {
    return !r.stoppedIds.has(step.id) && netnsExists(netnsPathOf(step.pod!));
  }
  return !r.startedIds.has(step.id) || r.stoppedIds.has(step.id);
}

/** Counts and logs a step that failed. */
function recordFailure(r: ReconcilerState, step: Step, seconds: number, err: unknown): void {
  const { metrics, log } = r.options;
  metrics.failures.inc({ op: step.kind, trigger: "sync" });
  if (step.kind === "attach") {
    metrics.attachDuration.observe({ trigger: "sync", result: "error" }, seconds);
  } else {
    metrics.releaseDuration.observe({ result: "error" }, seconds);
  }
  log.error(`${step.kind} failed`, {
    sandbox: step.id,
    ...(step.pod ? { pod: `${step.pod.namespace}/${step.pod.name}` } : {}),
    error: err,
  });
}

/** One try of a step, without retries. */
async function attempt(r: ReconcilerState, step: Step): Promise<StepOutcome> {
  const { attacher, metrics, log } = r.options;
  const t0 = performance.now();
  const seconds = () => (performance.now() - t0) / 1000;
  try {
    if (step.kind === "attach") {
      const out = await attacher.attach(step.pod!, () => wanted(r, step));
      if (out.status !== "attached") return "unchanged";
      metrics.attachDuration.observe({ trigger: "sync", result: "ok" }, seconds());
      log.info("networks attached on synchronize", {
        sandbox: step.id,
        pod: `${step.pod!.namespace}/${step.pod!.name}`,
        networks: out.networks.map((n) => `${n.name}@${n.ifName}`),
      });
      return "changed";
    }
    const out = await attacher.release(step.id, step.netns);
    if (!out.records) return "unchanged";
    metrics.releaseDuration.observe({ result: "ok" }, seconds());
    return "changed";
  } catch (err) {
    if (!wanted(r, step)) return "unchanged";
    recordFailure(r, step, seconds(), err);
    return "failed";
  }
}

/** A retry of the step after its backoff, unless it is no longer wanted or tried out. */
function schedule(r: ReconcilerState, step: Step, tries: number): void {
  if (r.closed || !wanted(r, step)) return;
  if (tries >= r.maxAttempts) {
    r.options.log.error(
      `${step.kind} gave up after ${tries} tries; the next Synchronize tries again`,
      { sandbox: step.id },
    );
    return;
  }
  const k = stepKey(step.kind, step.id);
  if (r.timers.has(k)) return;
  const delay = backoffDelay(tries, { initialMs: r.retryInitialMs, maxMs: r.retryMaxMs });
  r.options.metrics.retriesPending.inc({}, 1);
  r.timers.set(
    k,
    setTimeout(() => {
      r.timers.delete(k);
      r.options.metrics.retriesPending.inc({}, -1);
      track(r, run(r, step, tries));
    }, delay),
  );
}

function track(r: ReconcilerState, p: Promise<unknown>): void {
  r.running.add(p);
  p.finally(() => r.running.delete(p));
}

/** One try of a step (after `tries` earlier ones); schedules the next on failure. */
async function run(r: ReconcilerState, step: Step, tries: number): Promise<StepOutcome> {
  if (!wanted(r, step)) return "unchanged";
  const outcome = await r.slots.run(() => attempt(r, step));
  if (outcome === "failed") schedule(r, step, tries + 1);
  return outcome;
}

function cancel(r: ReconcilerState, kind: StepKind, id: string): void {
  const k = stepKey(kind, id);
  const timer = r.timers.get(k);
  if (timer !== undefined) {
    clearTimeout(timer);
    r.timers.delete(k);
    r.options.metrics.retriesPending.inc({}, -1);
  }
}

/** The steps of a pass over a Synchronize list: releases of what is gone, attaches of the rest. */
function passSteps(r: ReconcilerState, pods: readonly PodSandbox[]): Step[] {
  const listed = new Map(pods.map((p) => [p.id, p]));
  // Ids of sandboxes the runtime no longer has can never come back.
  for (const id of [...r.stoppedIds]) if (!listed.has(id)) r.stoppedIds.delete(id);
  for (const id of [...r.startedIds]) if (!listed.has(id)) r.startedIds.delete(id);
  const held = new Set([
    ...listPodStateIds(r.options.cacheDir),
    ...recordedContainers(r.options.cacheDir),
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
  return steps;
}

/** A pass over a Synchronize list; resolves when its first attempts settled. */
async function synchronize(r: ReconcilerState, pods: readonly PodSandbox[]): Promise<PassSummary> {
  const steps = passSteps(r, pods);
  for (const s of steps) cancel(r, s.kind, s.id);
  const pass = Promise.all(steps.map((s) => run(r, s, 0)));
  track(r, pass);
  const outcomes = await pass;
  const count = (kind: StepKind, outcome: StepOutcome) =>
    steps.filter((s, i) => s.kind === kind && outcomes[i] === outcome).length;
  const summary: PassSummary = {
    listed: pods.length,
    attached: count("attach", "changed"),
    released: count("release", "changed"),
    failed: outcomes.filter((o) => o === "failed").length,
  };
  r.options.log.info("synchronize pass done", { ...summary });
  return summary;
}

async function stop(r: ReconcilerState): Promise<void> {
  r.closed = true;
  for (const [k, timer] of r.timers) {
    clearTimeout(timer);
    r.timers.delete(k);
    r.options.metrics.retriesPending.inc({}, -1);
  }
  while (r.running.size) await Promise.all([...r.running]);
}

/** Creates the reconciler. */
export function createReconciler(options: ReconcilerOptions): Reconciler {
  const r: ReconcilerState = {
    options,
    retryInitialMs: options.retryInitialMs ?? 1000,
    retryMaxMs: options.retryMaxMs ?? 60_000,
    maxAttempts: Math.max(1, options.maxAttempts ?? 10),
    startedIds: new Set(),
    stoppedIds: new Set(),
    timers: new Map(),
    running: new Set(),
    slots: createSemaphore(Math.max(1, options.concurrency ?? 4)),
    closed: false,
  };
  return {
    synchronize: (pods) => synchronize(r, pods),
    started(id) {
      r.startedIds.add(id);
      r.stoppedIds.delete(id);
      cancel(r, "release", id);
    },
    stopped(id) {
      r.stoppedIds.add(id);
      cancel(r, "attach", id);
    },
    isStopped: (id) => r.stoppedIds.has(id),
    retryRelease(id, netns) {
      schedule(r, { kind: "release", id, netns }, 1);
    },
    stop: () => stop(r),
  };
}
