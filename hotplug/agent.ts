/**
 * The hot-plug agent: told about this node's pods (by the role's watch), it
 * runs passes (pass.ts) that bring each opted-in pod's running sandbox in
 * line with its networks annotation.
 *
 * - A pod is passed over when its selection (the networks annotations) or
 *   its network-status (a status someone else rewrote is put right)
 *   differs from what its last complete pass saw. Passes of one pod run
 *   one after the other, with the pod as it is when each starts; a change
 *   during a pass makes one more. At most `concurrency` pods are worked on
 *   at once.
 * - A pass that failed is tried again after a pause growing from 1 s to a
 *   minute, for as long as the pod lives and its selection is the same; a
 *   pod whose sandbox or record is not there yet is looked at a few more
 *   times, then again on its next change.
 * - Warning Events: each distinct message once per selection of the pod
 *   (its networks annotations as written).
 *
 * Nothing survives a restart here: the first pass of each pod after a start
 * works from the record and the pod as they are.
 *
 * @module
 */

import { backoffDelay, createSemaphore, type Semaphore } from "../pkg/async.ts";
import { DURATION_BUCKETS } from "../pkg/metrics.ts";
import { createEvent, type Pod } from "../kube/objects.ts";
import { acceptsHotplug, type HotplugOptions } from "./options.ts";
import { type PassContext, passKey, type PassOutcome, runPass, selectionKey } from "./pass.ts";

/** A running agent. */
export interface HotplugAgent {
  /** A pod of this node was added or changed. */
  podChanged(pod: Pod): void;
  /** A pod of this node is gone. */
  podDeleted(pod: Pod): void;
  /** Looks at every pod not in line yet again (e.g. the runtime's sandboxes became known). */
  resync(): void;
  /** Resolves when no pass runs and none is due before `withinMs` (tests, benchmarks). */
  idle(withinMs?: number): Promise<void>;
  /** Stops: waits for passes under way, cancels the retries. */
  stop(): Promise<void>;
}

/** One pod's bookkeeping. */
interface PodState {
  pod?: Pod;
  /** The key (passKey) of the last complete pass. */
  converged?: string;
  running: boolean;
  again: boolean;
  timer?: ReturnType<typeof setTimeout>;
  dueAt?: number;
  /** Failed (or early) passes since the last complete one. */
  attempts: number;
  /** Warnings told for `warnedKey`. */
  warned: Set<string>;
  warnedKey?: string;
}

/** How many times a pod whose sandbox or record is missing is looked at before waiting. */
const LATER_ATTEMPTS = 6;
const DEFAULT_RETRY = { initialMs: 1_000, maxMs: 60_000 };

function agentMetrics(opts: HotplugOptions) {
  const r = opts.registry;
  if (!r) return undefined;
  return {
    changes: r.counter(
      "hydra_hotplug_changes_total",
      "Networks attached to or detached from running pods, by operation and result.",
      ["op", "result"],
    ),
    duration: r.histogram(
      "hydra_hotplug_change_seconds",
      "Time to attach or detach one network of a running pod.",
      ["op"],
      [...DURATION_BUCKETS],
    ),
    retrying: r.gauge("hydra_hotplug_pods_retrying", "Pods with a pass to try again."),
  };
}

/** The agent's state. */
interface Agent {
  opts: HotplugOptions;
  pods: Map<string, PodState>;
  slots: Semaphore;
  running: Set<Promise<void>>;
  stopped: boolean;
  metrics: ReturnType<typeof agentMetrics>;
}

function uidOf(pod: Pod): string {
  return pod.metadata.uid ?? `${pod.metadata.namespace}/${pod.metadata.name}`;
}

function clearTimer(a: Agent, st: PodState): void {
  if (st.timer === undefined) return;
  clearTimeout(st.timer);
  st.timer = undefined;
  st.dueAt = undefined;
  a.metrics?.retrying.inc({}, -1);
}

/** Records an Event on the pod; best effort. */
async function event(a: Agent, pod: Pod, type: "Normal" | "Warning", reason: string, msg: string) {
  try {
    await createEvent(
      a.opts.writes,
      pod,
      { type, reason, message: msg, host: a.opts.host, component: "hydra-hotplug" },
      { timeoutMs: a.opts.apiTimeoutMs ?? 5_000 },
    );
  } catch (err) {
    a.opts.log.debug("event not recorded", { reason, error: err });
  }
}

/** Keeps `p` (which never rejects) among the work `stop` and `idle` wait for. */
function track(a: Agent, p: Promise<unknown>): void {
  const done = p.then(() => {});
  a.running.add(done);
  done.finally(() => a.running.delete(done));
}

/** The context of a pass over `st`'s pod. */
function passContext(a: Agent, st: PodState, pod: Pod): PassContext {
  const key = selectionKey(pod);
  if (st.warnedKey !== key) {
    st.warned = new Set();
    st.warnedKey = key;
  }
  const log = a.opts.log.with({ pod: `${pod.metadata.namespace}/${pod.metadata.name}` });
  return {
    opts: a.opts,
    pod,
    latest: () => st.pod,
    // Events are recorded on the side: the next step does not wait for the API server.
    warn(reason, msg) {
      log.warn(msg, { reason });
      if (st.warned.has(`${reason}\0${msg}`)) return;
      st.warned.add(`${reason}\0${msg}`);
      track(a, event(a, pod, "Warning", reason, msg));
    },
    tell(reason, msg) {
      log.info(msg, { reason });
      track(a, event(a, pod, "Normal", reason, msg));
    },
    counted(op, ok, seconds) {
      a.metrics?.changes.inc({ op, result: ok ? "ok" : "error" });
      if (ok) a.metrics?.duration.observe({ op }, seconds);
    },
  };
}

/** Schedules the next pass of `st` after a failed or early one. */
function retryLater(a: Agent, st: PodState, outcome: PassOutcome): void {
  st.attempts++;
  if (outcome === "later" && st.attempts > LATER_ATTEMPTS) return;
  const ms = backoffDelay(st.attempts, a.opts.retry ?? DEFAULT_RETRY);
  st.dueAt = Date.now() + ms;
  a.metrics?.retrying.inc({}, 1);
  st.timer = setTimeout(() => {
    st.timer = undefined;
    st.dueAt = undefined;
    a.metrics?.retrying.inc({}, -1);
    start(a, st);
  }, ms);
}

/** One pass over `st`'s pod in a slot; then what follows from its outcome. */
async function pass(a: Agent, st: PodState): Promise<void> {
  const pod = st.pod!;
  const key = passKey(pod);
  let outcome: PassOutcome;
  try {
    outcome = await a.slots.run(() => runPass(passContext(a, st, pod)));
  } catch (err) {
    a.opts.log.error("hot plug pass failed", {
      pod: `${pod.metadata.namespace}/${pod.metadata.name}`,
      error: err,
    });
    outcome = "retry";
  }
  st.running = false;
  if (a.stopped || !st.pod) return;
  if (outcome === "converged") {
    st.converged = key;
    st.attempts = 0;
  }
  if (st.again || outcome === "interrupted") {
    st.again = false;
    start(a, st);
  } else if (outcome === "retry" || outcome === "later") {
    retryLater(a, st, outcome);
  }
}

/** Starts a pass of `st` now, unless one runs (then one more follows) or none is needed. */
function start(a: Agent, st: PodState): void {
  if (a.stopped || !st.pod) return;
  if (!acceptsHotplug(st.pod) || passKey(st.pod) === st.converged) return;
  if (st.running) {
    st.again = true;
    return;
  }
  clearTimer(a, st);
  st.running = true;
  const p = pass(a, st);
  a.running.add(p);
  p.finally(() => a.running.delete(p));
}

/** Creates an agent; it acts on the pods it is told about. */
export function createHotplugAgent(opts: HotplugOptions): HotplugAgent {
  const a: Agent = {
    opts,
    pods: new Map(),
    slots: createSemaphore(Math.max(1, opts.concurrency ?? 4)),
    running: new Set(),
    stopped: false,
    metrics: agentMetrics(opts),
  };
  return {
    podChanged(pod) {
      const uid = uidOf(pod);
      let st = a.pods.get(uid);
      if (!st) {
        st = { running: false, again: false, attempts: 0, warned: new Set() };
        a.pods.set(uid, st);
      }
      const changed = st.pod === undefined || passKey(st.pod) !== passKey(pod);
      st.pod = pod;
      if (changed) st.attempts = 0;
      // A change cuts a pending retry short; an unchanged pod waits for its retry.
      if (changed || st.timer === undefined) start(a, st);
    },
    podDeleted(pod) {
      a.opts.sandboxes.forget?.(uidOf(pod));
      const st = a.pods.get(uidOf(pod));
      if (!st) return;
      clearTimer(a, st);
      st.pod = undefined;
      a.pods.delete(uidOf(pod));
    },
    resync() {
      for (const st of a.pods.values()) start(a, st);
    },
    async idle(withinMs = 0) {
      for (;;) {
        if (a.running.size) {
          await Promise.all([...a.running]);
          continue;
        }
        const soon = [...a.pods.values()].some((s) =>
          s.dueAt !== undefined && s.dueAt - Date.now() <= withinMs
        );
        if (!soon) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      a.stopped = true;
      for (const st of a.pods.values()) clearTimer(a, st);
      while (a.running.size) await Promise.all([...a.running]);
    },
  };
}
