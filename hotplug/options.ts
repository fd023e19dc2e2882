/**
 * What a hot-plug agent is given by the role that runs it (`hydra daemon`
 * in the meta-CNI setup, `hydra nri serve` in the NRI setup), and the
 * pod-side switch: the annotation a pod opts in with.
 *
 * @module
 */

import type { Builtins } from "../cni/types.ts";
import type { KubeClient } from "../kube/client.ts";
import type { PodArgs } from "../kube/delegate.ts";
import type { Pod } from "../kube/objects.ts";
import type { Backoff } from "../pkg/async.ts";
import type { Logger } from "../pkg/log.ts";
import type { Registry } from "../pkg/metrics.ts";
import type { SelectionRules } from "../engine/record.ts";

/** The annotation a pod accepts hot plug with: `"true"`. */
export const HOTPLUG_ANNOTATION = "hydra.clusternet.io/hotplug";

/** A pod's running sandbox, as its runtime says. */
export interface Sandbox {
  id: string;
  /** The sandbox's network namespace path. */
  netns: string;
}

/** Finds a pod's running sandbox through the runtime (CRI, or what NRI told). */
export interface SandboxFinder {
  /** The pod's ready sandbox with a namespace of its own; undefined when it has none. */
  find(pod: { namespace: string; name: string; uid: string }): Promise<Sandbox | undefined>;
  /** The pod is gone: whatever is kept about it can go. */
  forget?(uid: string): void;
}

/** Which setup the records come from. */
export type RecordKind =
  /** The meta-CNI's: a record's first network is the pod's default network. */
  | "meta"
  /** The NRI plugin's: every recorded network is an extra one. */
  | "nri";

/** Records made by hot plug for pods the NRI plugin attached nothing to at creation. */
export interface NewRecords {
  /** The rules of the new record (the plugin's own settings). */
  rules(sandbox: Sandbox, pod: PodArgs): SelectionRules;
  /** Told before the record is made: the role notes the sandbox as attached. */
  prepare?(sandbox: Sandbox, pod: PodArgs, ifName: string): void;
}

/** Settings of a hot-plug agent. */
export interface HotplugOptions {
  kind: RecordKind;
  /** The folder of the records (`<cacheDir>/attachments`). */
  cacheDir: string;
  sandboxes: SandboxFinder;
  /** Reads NetworkAttachmentDefinitions (a watch cache, or the API server). */
  reads: KubeClient;
  /** Writes the pods' status and Events (the API server). */
  writes: KubeClient;
  /** Plugins run in-process. */
  builtins?: Builtins;
  log: Logger;
  /** Where the agent's metrics go; none when absent. */
  registry?: Registry;
  /** Node name, on Events. */
  host?: string;
  /** Pods with no record get one (NRI); absent: such pods are left alone. */
  newRecords?: NewRecords;
  /** Pods worked on at once; 4. */
  concurrency?: number;
  /** Pauses before a failed pass is tried again; 1 s doubling to 60 s. */
  retry?: Backoff;
  /** Budget of one API request, ms; 5000. */
  apiTimeoutMs?: number;
}

/** True when the pod accepts hot plug and may be touched now. */
export function acceptsHotplug(pod: Pod): boolean {
  if (pod.metadata.deletionTimestamp) return false;
  if (pod.spec?.hostNetwork) return false;
  return pod.metadata.annotations?.[HOTPLUG_ANNOTATION] === "true";
}
