/**
 * Ordering and retrying the hook's work: calls for one sandbox run one
 * after the other (event hooks, Synchronize passes and retries may
 * overlap otherwise), and failed work is tried again with a growing pause.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";

/** Per-sandbox ordering and background retries. */
export interface SandboxWork {
  /** Runs `task` after the sandbox's earlier work has settled. */
  serial<T>(id: string, task: () => Promise<T>): Promise<T>;
  /**
   * Runs `task` again after 1, 2, 4 … 30 s until it succeeds; one pending
   * retry per sandbox (a second ask while one waits is dropped).
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
  const tails = new Map<string, Promise<unknown>>();
  const timers = new Map<string, ReturnType<typeof setTimeout>>();
  let closed = false;
  const work: SandboxWork = {
    serial(id, task) {
      const run = (tails.get(id) ?? Promise.resolve()).then(task, task);
      const tail = run.then(() => {}, () => {});
      tails.set(id, tail);
      tail.then(() => tails.get(id) === tail && tails.delete(id));
      return run;
    },
    retry(id, what, task, attempt = 0) {
      if (closed || timers.has(id)) return;
      const delay = Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5));
      timers.set(
        id,
        setTimeout(() => {
          timers.delete(id);
          task().catch((err) => {
            log.warn(`${what} failed again; retrying`, {
              sandbox: id,
              error: message(err),
              attempt,
            });
            work.retry(id, what, task, attempt + 1);
          });
        }, delay),
      );
    },
    async close() {
      closed = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      while (tails.size) await Promise.all([...tails.values()]);
    },
  };
  return work;
}
