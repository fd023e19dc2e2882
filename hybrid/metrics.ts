/**
 * The hybrid router's Prometheus metrics, served with `/healthz` and
 * `/readyz` on `--health-addr` (default 127.0.0.1:9477).
 *
 * @module
 */

import { createRegistry, DURATION_BUCKETS, type Registry } from "../pkg/metrics.ts";
import type { HybridSyncSummary } from "./sync.ts";

/** The router's metric families. */
export interface HybridMetrics {
  registry: Registry;
  /** Records one pass. */
  record(s: HybridSyncSummary): void;
  /** The last pass, for readiness. */
  readonly last?: HybridSyncSummary;
}

/** The default endpoint of `hydra hybrid sync`. */
export const DEFAULT_HEALTH_ADDR = "127.0.0.1:9477";

/** Creates the families. */
export function createHybridMetrics(): HybridMetrics {
  const registry = createRegistry();
  const passes = registry.counter("hydra_hybrid_syncs_total", "Passes, by result", ["result"]);
  const duration = registry.histogram(
    "hydra_hybrid_sync_duration_seconds",
    "Time of one pass (plan and kernel)",
    [],
    [...DURATION_BUCKETS],
  );
  const routes = registry.gauge("hydra_hybrid_routes", "Routes owned, by network", ["network"]);
  const nodes = registry.gauge("hydra_hybrid_nodes_synced", "Remote nodes programmed, by network", [
    "network",
  ]);
  const problems = registry.gauge("hydra_hybrid_problems", "Bad node input in force, by network", [
    "network",
  ]);
  const errors = registry.counter(
    "hydra_hybrid_errors_total",
    "Kernel changes refused, by network",
    [
      "network",
    ],
  );
  const m: HybridMetrics & { last?: HybridSyncSummary } = {
    registry,
    record(s) {
      m.last = s;
      passes.inc({ result: s.ok ? "ok" : "error" });
      duration.observe({}, s.ms / 1000);
      for (const g of [routes, nodes, problems]) g.reset();
      for (const n of s.networks) {
        routes.set({ network: n.network }, n.routes);
        nodes.set({ network: n.network }, n.nodesSynced);
        problems.set({ network: n.network }, n.problems.length);
        if (n.errors.length) errors.inc({ network: n.network }, n.errors.length);
      }
    },
  };
  return m;
}
