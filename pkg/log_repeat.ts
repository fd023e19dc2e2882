/**
 * Keeps a retry loop's log readable: an error is logged when it first
 * appears or changes, and while it stays the same only once per slow
 * interval, saying how often it recurred meanwhile. A loop retrying every
 * few seconds otherwise fills the node's log with one line.
 *
 * @module
 */

/** Decides which occurrences of a recurring message are logged. */
export interface RepeatFilter {
  /**
   * Called at each occurrence of `key` (the message as it would be
   * logged): undefined when it should not be logged, else how many
   * occurrences since the last logged one were not (0 for a new message).
   */
  admit(key: string): number | undefined;
  /** The condition is gone: the next occurrence is logged as new. Returns how many were seen. */
  clear(): number;
}

/** Default spacing of an unchanged message: one line per five minutes. */
export const DEFAULT_REPEAT_INTERVAL_MS = 5 * 60_000;

/** Creates a filter logging an unchanged key at most once per `intervalMs`. */
export function createRepeatFilter(
  intervalMs = DEFAULT_REPEAT_INTERVAL_MS,
  now: () => number = Date.now,
): RepeatFilter {
  let last: { key: string; at: number; skipped: number; seen: number } | undefined;
  return {
    admit(key) {
      const t = now();
      if (!last || last.key !== key) {
        last = { key, at: t, skipped: 0, seen: 1 };
        return 0;
      }
      last.seen++;
      if (t - last.at < intervalMs) {
        last.skipped++;
        return undefined;
      }
      const skipped = last.skipped;
      last.at = t;
      last.skipped = 0;
      return skipped;
    },
    clear() {
      const seen = last?.seen ?? 0;
      last = undefined;
      return seen;
    },
  };
}
