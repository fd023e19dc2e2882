/**
 * What the agent tells about policies: a Warning Event on each policy
 * object that is invalid (saying what is wrong and what is enforced
 * instead), that names no network, or that names a network no
 * NetworkAttachmentDefinition defines; and the count of policies by how
 * they are enforced.
 *
 * @module
 */

import type { BookEntry } from "./book.ts";
import type { EventSink, InvolvedObject } from "./events.ts";
import type { PolicyMetrics } from "./metrics.ts";
import { MNP_API_VERSION, type MultiNetworkPolicy } from "./spec.ts";

/** The MultiNetworkPolicy an Event is about. */
export function policyObject(obj: MultiNetworkPolicy): InvolvedObject {
  return {
    apiVersion: MNP_API_VERSION,
    kind: "MultiNetworkPolicy",
    namespace: obj.metadata.namespace,
    name: obj.metadata.name,
    uid: obj.metadata.uid,
    resourceVersion: obj.metadata.resourceVersion,
  };
}

/** The errors of a check as one message, the first few in full. */
function errorText(errors: string[]): string {
  const shown = errors.slice(0, 5).join("; ");
  return errors.length > 5 ? `${shown}; and ${errors.length - 5} more` : shown;
}

/** What {@link reportPolicies} reports to. */
export interface ReportTargets {
  events?: EventSink;
  metrics: PolicyMetrics;
  /** Whether a network ("namespace/name") has a NAD; undefined while unknown. */
  nadExists?: (network: string) => boolean;
}

/** Reports every policy's state (Events are sent once per object version and message). */
export function reportPolicies(entries: readonly BookEntry[], to: ReportTargets): void {
  const counts = { valid: 0, last_good: 0, fail_closed: 0 };
  for (const e of entries) {
    counts[e.state]++;
    const obj = policyObject(e.obj);
    if (e.state === "last_good") {
      to.events?.record(
        obj,
        "Warning",
        "InvalidPolicy",
        `hydra: ${errorText(e.check.errors)}; the last valid version (resourceVersion ` +
          `${e.inForce}) stays in force`,
      );
    } else if (e.state === "fail_closed") {
      to.events?.record(
        obj,
        "Warning",
        "InvalidPolicy",
        `hydra: ${errorText(e.check.errors)}; the pods it selects are isolated on its networks ` +
          "with nothing allowed until it is fixed",
      );
    }
    for (const w of e.check.warnings) {
      to.events?.record(obj, "Warning", "PolicyNotApplied", `hydra: ${w}`);
    }
    const unknown = to.nadExists
      ? (e.effective.networks ?? []).filter((n) => !to.nadExists!(n))
      : [];
    if (unknown.length) {
      to.events?.record(
        obj,
        "Warning",
        "UnknownNetwork",
        `hydra: no NetworkAttachmentDefinition ${unknown.join(", ")}: the policy does nothing ` +
          "there until one exists",
      );
    }
  }
  for (const [state, n] of Object.entries(counts)) to.metrics.policies.set({ state }, n);
}
