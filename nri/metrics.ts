/**
 * Prometheus metrics of `hydra nri serve`.
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `hydra_nri_events_total` | counter | event (synchronize, run, stop, remove, shutdown), result (ok, error) |
 * | `hydra_nri_attach_duration_seconds` | histogram | trigger (run, sync), result (ok, error) |
 * | `hydra_nri_release_duration_seconds` | histogram | result (ok, error) |
 * | `hydra_nri_failures_total` | counter | op (attach, release, reconcile), trigger (run, stop, remove, sync) |
 * | `hydra_nri_attached_pods` | gauge | – (sandboxes with extra networks attached by this process's view) |
 * | `hydra_nri_retries_pending` | gauge | – (background attach/release retries waiting) |
 * | `hydra_nri_connected` | gauge | – (1 while connected and synchronized with the runtime) |
 * | `hydra_nri_disconnects_total` | counter | – |
 *
 * In Kubernetes mode nri/kube_cache.ts adds, to the same registry:
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `hydra_nri_api_reads_total` | counter | source (cache, api): where an attach's pod, NAD and Node reads were served from |
 * | `hydra_nri_watch_errors_total` | counter | collection (pods, network-attachment-definitions, nodes) |
 * | `hydra_nri_watch_synced` | gauge | – (1 once every watch cache has listed) |
 * | `hydra_nri_reports_total` | counter | outcome (written, pod-gone, replaced, failed, dropped) |
 * | `hydra_nri_report_delay_seconds` | histogram | – (attach to the pod's status settled) |
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

/** The NRI plugin's metrics, registered in one registry. */
export interface NriMetrics {
  registry: Registry;
  events: Counter;
  attachDuration: Histogram;
  releaseDuration: Histogram;
  failures: Counter;
  attachedPods: Gauge;
  retriesPending: Gauge;
  connected: Gauge;
  disconnects: Counter;
}

/** Creates the NRI plugin's metrics in a fresh registry. */
export function createNriMetrics(): NriMetrics {
  const r = createRegistry();
  addProcessMetrics(r);
  return {
    registry: r,
    events: r.counter(
      "hydra_nri_events_total",
      "NRI requests handled, by event and by the answer given.",
      ["event", "result"],
    ),
    attachDuration: r.histogram(
      "hydra_nri_attach_duration_seconds",
      "Time to attach a pod's extra networks.",
      ["trigger", "result"],
      [...DURATION_BUCKETS],
    ),
    releaseDuration: r.histogram(
      "hydra_nri_release_duration_seconds",
      "Time to release a pod's extra networks.",
      ["result"],
      [...DURATION_BUCKETS],
    ),
    failures: r.counter(
      "hydra_nri_failures_total",
      "Failed attach or release attempts.",
      ["op", "trigger"],
    ),
    attachedPods: r.gauge(
      "hydra_nri_attached_pods",
      "Sandboxes with extra networks attached.",
    ),
    retriesPending: r.gauge(
      "hydra_nri_retries_pending",
      "Background attach or release retries waiting.",
    ),
    connected: r.gauge(
      "hydra_nri_connected",
      "1 while connected to the runtime and synchronized.",
    ),
    disconnects: r.counter("hydra_nri_disconnects_total", "Runtime connections that ended."),
  };
}
