/**
 * The waiting hydra does, in one place: pauses that an abort cuts short,
 * exponential backoff with jitter, deadlines on a promise, a counting
 * semaphore, and a queue that runs tasks of one key one after the other.
 *
 * Every timer is cleared when it is no longer needed (no pending timer keeps
 * a process alive or a test's sanitizer unhappy), and every delay is
 * clamped to what `setTimeout` can hold: a longer one would fire at once.
 *
 * @module
 */

/** The longest delay `setTimeout` honours (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

function timerMs(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(Math.round(ms), MAX_TIMER_MS);
}

/** Resolves after `ms`, or as soon as `signal` aborts (resolves, never rejects). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, timerMs(ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Bounds of an exponential backoff. */
export interface Backoff {
  /** The first pause. */
  initialMs: number;
  /** No pause is longer (before jitter). */
  maxMs: number;
  /**
   * Spread of each pause as a fraction: 0.2 makes it 80–120 % of its
   * nominal length, so that many waiters do not retry in step. Default 0.
   */
  jitter?: number;
}

/**
 * The pause before retry number `attempt` (1 for the first retry): the
 * initial pause doubled per earlier attempt, capped at `maxMs`, spread by
 * the jitter. `random` is for tests.
 */
export function backoffDelay(attempt: number, b: Backoff, random = Math.random): number {
  const base = Math.min(b.maxMs, b.initialMs * 2 ** Math.max(0, attempt - 1));
  const spread = b.jitter ?? 0;
  return Math.round(base * (1 - spread + 2 * spread * random()));
}

/** A backoff that remembers its attempts: {@link backoffDelay} of one more each time. */
export interface BackoffState {
  /** The next pause, counting one more attempt. */
  next(): number;
  /** Starts over (after a success). */
  reset(): void;
  /** Retries counted since the last reset. */
  readonly attempts: number;
}

/** Starts a backoff with bounds `b`. */
export function createBackoff(b: Backoff): BackoffState {
  let attempts = 0;
  return {
    next: () => backoffDelay(++attempts, b),
    reset: () => {
      attempts = 0;
    },
    get attempts() {
      return attempts;
    },
  };
}

/**
 * Settles as `work` does, unless `ms` pass first: then rejects with what
 * `timedOut` makes. `work` goes on; only the wait for it ends.
 */
export async function withTimeout<T>(
  work: Promise<T>,
  ms: number,
  timedOut: () => Error,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut()), timerMs(ms));
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * True once `work` settles (fulfilled or rejected) within `ms`, false when
 * `ms` pass first. Never rejects.
 */
export async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timerMs(ms));
  });
  try {
    return await Promise.race([work.then(() => true, () => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** At most a fixed number of holders at once; the others wait their turn, in order. */
export interface Semaphore {
  /** Waits for a place; the function returned gives it back (calling it again does nothing). */
  acquire(): Promise<() => void>;
  /** Runs `task` holding a place. */
  run<T>(task: () => Promise<T>): Promise<T>;
  /** Places held now. */
  readonly held: number;
  /** Callers waiting for a place. */
  readonly waiting: number;
}

/** A semaphore of `places` places (1: a mutex). */
export function createSemaphore(places: number): Semaphore {
  let held = 0;
  const queue: (() => void)[] = [];
  const release = () => {
    const next = queue.shift();
    if (next) next(); // the place passes straight to the next in line
    else held--;
  };
  const acquire = async (): Promise<() => void> => {
    if (held < places) held++;
    else await new Promise<void>((resolve) => queue.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      release();
    };
  };
  return {
    acquire,
    async run<T>(task: () => Promise<T>): Promise<T> {
      const done = await acquire();
      try {
        return await task();
      } finally {
        done();
      }
    },
    get held() {
      return held;
    },
    get waiting() {
      return queue.length;
    },
  };
}

/** Runs tasks of one key one after the other, in call order; other keys do not wait. */
export interface KeyedQueue {
  /** Runs `task` once every earlier task of `key` has settled; settles as `task` does. */
  run<T>(key: string, task: () => Promise<T>): Promise<T>;
  /** Keys with a task running or waiting. */
  readonly size: number;
  /** Waits until no task of any key is running or waiting. */
  idle(): Promise<void>;
}

/** A fresh {@link KeyedQueue}. */
export function createKeyedQueue(): KeyedQueue {
  const tails = new Map<string, Promise<void>>();
  return {
    run<T>(key: string, task: () => Promise<T>): Promise<T> {
      const run = (tails.get(key) ?? Promise.resolve()).then(task);
      const tail = run.then(() => {}, () => {});
      tails.set(key, tail);
      tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
      });
      return run;
    },
    get size() {
      return tails.size;
    },
    async idle() {
      while (tails.size) await Promise.all([...tails.values()]);
    },
  };
}
