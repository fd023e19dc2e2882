/**
 * Summary statistics for latency samples, and the ratio/target bookkeeping
 * the benchmarks print.
 *
 * Percentiles use the nearest-rank method on the sorted samples, so every
 * reported figure is a latency that was actually measured.
 *
 * @module
 */

/** Latency summary in milliseconds (3 decimals). */
export interface Summary {
  n: number;
  median: number;
  p95: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The nearest-rank `p`-th percentile (0 < p ≤ 100) of ascending `sorted`. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) throw new RangeError("percentile of no samples");
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** Summarises `samples` (ms). Throws on an empty list: a case without samples is a bug. */
export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((s, x) => s + x, 0);
  return {
    n: sorted.length,
    median: round3(percentile(sorted, 50)),
    p95: round3(percentile(sorted, 95)),
    p99: round3(percentile(sorted, 99)),
    mean: round3(sum / sorted.length),
    min: round3(sorted[0]),
    max: round3(sorted[sorted.length - 1]),
  };
}

/**
 * The mean, in ms, of the series `labels` (e.g. `op="cni"`) of Prometheus
 * histogram `name` (in seconds) in a `/metrics` text, from its `_sum` and
 * `_count`; undefined when the series has no samples.
 */
export function histogramMeanMs(
  metrics: string,
  name: string,
  labels: string,
): number | undefined {
  const lines = metrics.split("\n");
  const value = (suffix: string) =>
    Number(lines.find((l) => l.startsWith(`${name}_${suffix}{${labels}} `))?.split(" ")[1] ?? NaN);
  const mean = value("sum") / value("count") * 1000;
  return Number.isFinite(mean) ? mean : undefined;
}

/** A performance target: `subject / baseline ≤ limit`, judged on medians. */
export interface Target {
  name: string;
  subject: string;
  baseline: string;
  limit: number;
  /** subject median / baseline median. */
  ratio: number;
  /** subject p95 / baseline p95, for context. */
  ratioP95: number;
  met: boolean;
}

/** Judges `subject` against `baseline` (ADD+DEL summaries). */
export function judge(
  name: string,
  subject: { label: string; summary: Summary },
  baseline: { label: string; summary: Summary },
  limit: number,
): Target {
  const ratio = round3(subject.summary.median / baseline.summary.median);
  return {
    name,
    subject: subject.label,
    baseline: baseline.label,
    limit,
    ratio,
    ratioP95: round3(subject.summary.p95 / baseline.summary.p95),
    met: ratio <= limit,
  };
}
