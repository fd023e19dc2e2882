/**
 * What the node side of the cluster-wide IPAM counts, for the Prometheus
 * endpoint of the process it runs in (`hydra daemon`, `hydra nri serve`).
 * An exec'd plugin has no endpoint and records nothing.
 *
 * @module
 */

/** The part of a metrics registry this module uses (pkg/metrics.ts has one). */
export interface MetricSink {
  counter(name: string, help: string, labelNames?: string[]): {
    inc(labels?: Record<string, string>, by?: number): void;
  };
  histogram(name: string, help: string, labelNames?: string[], buckets?: number[]): {
    observe(labels: Record<string, string>, value: number): void;
  };
}

/** The node-side IPAM metrics. */
export interface PoolMetrics {
  /** One ADD's allocation in `pool` finished (seconds from request to answer). */
  allocation(pool: string, result: "ok" | "exhausted" | "error", seconds: number): void;
  /** A compare-and-swap write lost to another writer and was redone. */
  conflict(network: string): void;
  /** A block was claimed, adopted or borrowed from. */
  block(network: string, how: "claimed" | "adopted" | "borrowed"): void;
  /** Requests written together in one round. */
  batch(network: string, size: number): void;
  /** Addresses released by DEL. */
  released(network: string, count: number): void;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64];

/** Metrics recorded in `sink`. */
export function poolMetrics(sink: MetricSink): PoolMetrics {
  const latency = sink.histogram(
    "hydra_ipam_allocation_duration_seconds",
    "Time from an ADD's request to its addresses recorded in the API, by pool and result.",
    ["pool", "result"],
    LATENCY_BUCKETS,
  );
  const allocations = sink.counter(
    "hydra_ipam_allocations_total",
    "Address allocations by pool and result (ok, exhausted, error).",
    ["pool", "result"],
  );
  const conflicts = sink.counter(
    "hydra_ipam_cas_conflicts_total",
    "Block writes that lost a compare-and-swap and were retried, by network.",
    ["network"],
  );
  const blocks = sink.counter(
    "hydra_ipam_blocks_total",
    "Blocks claimed, adopted (of a deleted node) or borrowed from (another node's), by network.",
    ["network", "how"],
  );
  const batches = sink.histogram(
    "hydra_ipam_batch_size",
    "Requests written together in one round of block writes, by network.",
    ["network"],
    BATCH_BUCKETS,
  );
  const released = sink.counter(
    "hydra_ipam_released_total",
    "Addresses released by DEL, by network.",
    ["network"],
  );
  return {
    allocation(pool, result, seconds) {
      latency.observe({ pool, result }, seconds);
      allocations.inc({ pool, result });
    },
    conflict: (network) => conflicts.inc({ network }),
    block: (network, how) => blocks.inc({ network, how }),
    batch: (network, size) => batches.observe({ network }, size),
    released: (network, count) => released.inc({ network }, count),
  };
}

/** Records nothing (exec'd plugins). */
export const noMetrics: PoolMetrics = {
  allocation() {},
  conflict() {},
  block() {},
  batch() {},
  released() {},
};
