/**
 * Ordering and retrying the hook's work: calls for one sandbox run one
 * after the other (event hooks, Synchronize passes and retries may
 * overlap otherwise), and failed work is tried again after a growing pause.
 *
 * @module
 */

import { backoffDelay, createKeyedQueue } from "../pkg/async.ts";
import type { Logger } from "../pkg/log.ts";

/** Pauses between retries: 1 s doubling to 30 s, spread a little. */
const RETRY = { initialMs: 1000, maxMs: 30_000, jitter: 0.1 };

/** Per-sandbox ordering and background retries. */
export interface SandboxWork {
  /** Runs `task` after the sandbox's earlier work has settled. */
  serial<T>(id: string, task: () => Promise<T>): Promise<T>;
  /**
   * Runs `task` again after a pause growing with `attempt`, until it
   * succeeds; one pending retry per sandbox (a second ask while one waits
   * is dropped).
   */
  retry(id: string, what: string, task: () => Promise<void>, attempt?: number): void;
  /** Drops pending retries and waits for running work. */
  close(): Promise<void>;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Creates the ordering and retries, logging retries to `log`. */
export function createSandboxWork(log: Logger): SandboxWork {
  const queue = createKeyedQueue();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  let closed = false;
  const work: SandboxWork = {
    serial: (id, task) => queue.run(id, task),
    retry(id, what, task, attempt = 0) {
      if (closed || timers.has(id)) return;
      const again = () => {
        timers.delete(id);
        task().catch((err) => {
          log.warn(`${what} failed again; retrying`, { sandbox: id, error: message(err), attempt });
          work.retry(id, what, task, attempt + 1);
        });
      };
      timers.set(id, setTimeout(again, backoffDelay(attempt + 1, RETRY)));
    },
    async close() {
      closed = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      await queue.idle();
    },
  };
  return work;
}
