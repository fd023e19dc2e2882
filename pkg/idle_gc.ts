/**
 * A full garbage collection once a burst of work has gone quiet.
 *
 * V8 gives memory back to the system after a burst only through its memory
 * reducer, which runs on delayed tasks and on its own judgement of the
 * allocation rate: a role resting after a burst of work may keep several MiB
 * of dead objects and empty pages resident for minutes, or give them back
 * within seconds, from one run to the next. A long-running role calls
 * `touch()` after each piece of work; once no work came for `quietMs`, and
 * the process has grown by `minGrowthBytes` since the last collection (or
 * holds that much, before the first), one
 * full collection runs (V8's last-resort kind: several passes, memory
 * handed back). Resting memory then no longer depends on when V8 last
 * looked.
 *
 * The collection needs V8's `gc` function, which exists when V8 runs with
 * `--expose-gc` (bin/hydra and the compiled executable pass it). Without it
 * the collector does nothing.
 *
 * @module
 */

/** The collector a role touches after each piece of work. */
export interface IdleCollector {
  /** Work happened: collect once `quietMs` pass without another touch. */
  touch(): void;
  /** Clears the pending timer (no collection after this). */
  stop(): void;
}

/** Quiet after the last touch before collecting, unless a role says otherwise. */
export const IDLE_QUIET_MS = 2000;

/** Options of {@link createIdleCollector}. */
export interface IdleCollectorOptions {
  /** Quiet after the last touch before collecting; {@link IDLE_QUIET_MS}. */
  quietMs?: number;
  /** Growth of resident memory since the last collection that makes one worth it; 2 MiB. */
  minGrowthBytes?: number;
  /** Runs the collection; V8's `gc` when exposed. */
  collect?: () => void;
  /** Resident bytes now; `Deno.memoryUsage().rss`. */
  residentBytes?: () => number;
  /** Told of each collection: how long it took and the resident bytes before and after. */
  onCollected?: (c: { ms: number; beforeBytes: number; afterBytes: number }) => void;
}

/** V8's `gc` as a last-resort collection, when the process runs with `--expose-gc`. */
export function exposedGc(): (() => void) | undefined {
  const gc = (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== "function") return undefined;
  return () => gc({ type: "major", execution: "sync", flavor: "last-resort" });
}

/** A collector as the module describes; its timer never keeps the process alive. */
export function createIdleCollector(o: IdleCollectorOptions): IdleCollector {
  const collect = o.collect ?? exposedGc();
  const resident = o.residentBytes ?? (() => Deno.memoryUsage().rss);
  const minGrowth = o.minGrowthBytes ?? 2 * 1024 * 1024;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let baseline = 0;
  const fire = () => {
    timer = undefined;
    const beforeBytes = resident();
    if (!collect || beforeBytes - baseline < minGrowth) return;
    const started = performance.now();
    collect();
    baseline = resident();
    o.onCollected?.({ ms: performance.now() - started, beforeBytes, afterBytes: baseline });
  };
  return {
    touch() {
      if (!collect) return;
      if (timer !== undefined) clearTimeout(timer);
      const t = setTimeout(fire, o.quietMs ?? IDLE_QUIET_MS);
      Deno.unrefTimer(t);
      timer = t;
    },
    stop() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** A collection as log fields: its time and the MiB it gave back. */
export function collectedFields(
  c: { ms: number; beforeBytes: number; afterBytes: number },
): Record<string, number> {
  const mib = (b: number) => Math.round(b / 104857.6) / 10;
  return {
    ms: Math.round(c.ms),
    freedMiB: mib(c.beforeBytes - c.afterBytes),
    residentMiB: mib(c.afterBytes),
  };
}
