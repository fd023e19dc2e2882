/**
 * Prometheus metrics of `hydra policy sync`.
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

/** The policy role's metric families. */
export interface PolicyMetrics {
  registry: Registry;
  /** nftables rules in the tables of this node's pods. */
  rules: Gauge;
  /** Pods with a table, by state (enforced, fail_closed). */
  pods: Gauge;
  /** From a change seen to a pod's table written, by result. */
  applySeconds: Histogram;
  /** Tables that could not be written as computed, by what was done instead. */
  errors: Counter;
  /** Policy objects by how they are enforced (valid, last_good, fail_closed). */
  policies: Gauge;
  /** Passes over this node's pods. */
  passes: Counter;
  /** 1 once the first pass after start has written every table. */
  ready: Gauge;
}

/** Creates the registry and families. */
export function createPolicyMetrics(): PolicyMetrics {
  const registry = createRegistry();
  addProcessMetrics(registry);
  return {
    registry,
    rules: registry.gauge(
      "hydra_policy_rules",
      "nftables rules programmed in the policy tables of this node's pods.",
    ),
    pods: registry.gauge(
      "hydra_policy_pods",
      "Pods of this node with a policy table, by state (enforced, fail_closed).",
      ["state"],
    ),
    applySeconds: registry.histogram(
      "hydra_policy_apply_seconds",
      "Time from a change seen (object, pod or attachment) to a pod's table written, by result.",
      ["result"],
      [...DURATION_BUCKETS],
    ),
    errors: registry.counter(
      "hydra_policy_apply_errors_total",
      "Pod tables not written as computed, by outcome (fail_closed: the fail-closed table " +
        "was written instead; failed: nothing could be written).",
      ["outcome"],
    ),
    policies: registry.gauge(
      "hydra_policy_policies",
      "MultiNetworkPolicy objects by how they are enforced (valid, last_good, fail_closed).",
      ["state"],
    ),
    passes: registry.counter("hydra_policy_passes_total", "Passes over this node's pods."),
    ready: registry.gauge(
      "hydra_policy_ready",
      "1 once the first pass after start has written every pod's table.",
    ),
  };
}
