/**
 * Prometheus metrics of `hydra dra serve`.
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `hydra_dra_requests_total` | counter | method (prepare, unprepare), result (ok, error) — per claim |
 * | `hydra_dra_request_duration_seconds` | histogram | method |
 * | `hydra_dra_published_devices` | gauge | kind (nic, network) |
 * | `hydra_dra_publish_failures_total` | counter | – |
 * | `hydra_dra_registered` | gauge | – (1 once the kubelet accepted the plugin) |
 * | `hydra_dra_reports_total` | counter | result (ok, error) — sandboxes reported |
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

/** The driver's metrics. */
export interface DraMetrics {
  registry: Registry;
  requests: Counter;
  duration: Histogram;
  devices: Gauge;
  publishFailures: Counter;
  registered: Gauge;
  reports: Counter;
}

/** Creates the metrics in a fresh registry. */
export function createDraMetrics(): DraMetrics {
  const r = createRegistry();
  addProcessMetrics(r);
  return {
    registry: r,
    requests: r.counter(
      "hydra_dra_requests_total",
      "Claims prepared or unprepared for the kubelet, by outcome.",
      ["method", "result"],
    ),
    duration: r.histogram(
      "hydra_dra_request_duration_seconds",
      "Time to answer a NodePrepareResources or NodeUnprepareResources call.",
      ["method"],
      [...DURATION_BUCKETS],
    ),
    devices: r.gauge("hydra_dra_published_devices", "Devices in the node's ResourceSlices.", [
      "kind",
    ]),
    publishFailures: r.counter(
      "hydra_dra_publish_failures_total",
      "ResourceSlice updates that failed (retried).",
    ),
    registered: r.gauge("hydra_dra_registered", "1 once the kubelet accepted the plugin."),
    reports: r.counter(
      "hydra_dra_reports_total",
      "Sandboxes whose devices were reported in claim and pod status.",
      ["result"],
    ),
  };
}
