/**
 * The router's Prometheus metrics.
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `hydra_route_nodes_seen` | gauge | – |
 * | `hydra_route_nodes_synced` | gauge | network |
 * | `hydra_route_nodes_skipped` | gauge | network |
 * | `hydra_route_routes_owned` | gauge | network |
 * | `hydra_route_fdb_entries` | gauge | network |
 * | `hydra_route_neighbours` | gauge | network |
 * | `hydra_route_sync_duration_seconds` | histogram | pass (full, incremental) |
 * | `hydra_route_syncs_total` | counter | pass, result (ok, error) |
 * | `hydra_route_changes_total` | counter | object (route, fdb, neighbour), op |
 * | `hydra_route_errors_total` | counter | kind |
 * | `hydra_route_problems` | gauge | kind (problems in force now) |
 * | `hydra_route_source_up` | gauge | – (the node source answers) |
 * | `hydra_route_last_sync_timestamp_seconds` | gauge | – |
 *
 * `hydra_route_errors_total` counts each problem once when it appears (a
 * malformed annotation is one error however many syncs see it).
 *
 * @module
 */

import {
  type Counter,
  createRegistry,
  DURATION_BUCKETS,
  type Gauge,
  type Histogram,
  type Registry,
} from "../pkg/metrics.ts";
import { addProcessMetrics } from "../pkg/process_metrics.ts";

/** The router's metrics, registered in one registry. */
export interface RouterMetrics {
  registry: Registry;
  nodesSeen: Gauge;
  nodesSynced: Gauge;
  nodesSkipped: Gauge;
  routesOwned: Gauge;
  fdbEntries: Gauge;
  neighbours: Gauge;
  syncDuration: Histogram;
  syncs: Counter;
  changes: Counter;
  errors: Counter;
  problems: Gauge;
  sourceUp: Gauge;
  lastSync: Gauge;
}

/** Creates the router's metrics in a fresh registry. */
export function createRouterMetrics(): RouterMetrics {
  const r = createRegistry();
  addProcessMetrics(r);
  return {
    registry: r,
    nodesSeen: r.gauge("hydra_route_nodes_seen", "Nodes known from the node source."),
    nodesSynced: r.gauge(
      "hydra_route_nodes_synced",
      "Remote nodes with routes on a network.",
      ["network"],
    ),
    nodesSkipped: r.gauge(
      "hydra_route_nodes_skipped",
      "Remote nodes left out of a network (missing or bad input).",
      ["network"],
    ),
    routesOwned: r.gauge(
      "hydra_route_routes_owned",
      "Routes in the kernel owned by a network.",
      ["network"],
    ),
    fdbEntries: r.gauge(
      "hydra_route_fdb_entries",
      "FDB entries on a vxlan network's device.",
      ["network"],
    ),
    neighbours: r.gauge(
      "hydra_route_neighbours",
      "Permanent neighbour entries on a vxlan network's device.",
      ["network"],
    ),
    syncDuration: r.histogram(
      "hydra_route_sync_duration_seconds",
      "Time to compute and apply one sync pass.",
      ["pass"],
      [...DURATION_BUCKETS],
    ),
    syncs: r.counter("hydra_route_syncs_total", "Sync passes by kind and result.", [
      "pass",
      "result",
    ]),
    changes: r.counter("hydra_route_changes_total", "Kernel objects changed.", ["object", "op"]),
    errors: r.counter("hydra_route_errors_total", "Problems seen, by kind, once each.", ["kind"]),
    problems: r.gauge("hydra_route_problems", "Problems in force now, by kind.", ["kind"]),
    sourceUp: r.gauge("hydra_route_source_up", "1 while the node source answers."),
    lastSync: r.gauge(
      "hydra_route_last_sync_timestamp_seconds",
      "When the last sync pass finished.",
    ),
  };
}
