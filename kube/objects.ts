/**
 * The Kubernetes objects hydra reads and writes, their API paths, and the
 * few calls it makes on them: read a pod, node or network definition, write
 * annotations on a pod's status, record an Event on a pod.
 *
 * @module
 */

import type { KubeClient, RequestOptions } from "./client.ts";
import { backoffDelay, delay } from "../pkg/async.ts";
import { isAlreadyExists, isConflict } from "./errors.ts";
import type { KubeObject } from "./watch.ts";

/** Pauses between writes of one pod that lost a race (409): short, spread wide. */
const CONFLICT_BACKOFF = { initialMs: 15, maxMs: 40, jitter: 0.5 };

/** Object metadata, as far as hydra uses it. */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generateName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  [key: string]: unknown;
}

/** core/v1 Pod. */
export interface Pod extends KubeObject {
  metadata: ObjectMeta & { namespace: string };
  spec?: { nodeName?: string; hostNetwork?: boolean; [key: string]: unknown };
  status?: {
    phase?: string;
    podIP?: string;
    podIPs?: { ip: string }[];
    hostIP?: string;
    [key: string]: unknown;
  };
}

/** core/v1 Node. */
export interface Node extends KubeObject {
  metadata: ObjectMeta;
  spec?: { podCIDR?: string; podCIDRs?: string[]; providerID?: string; [key: string]: unknown };
  status?: { addresses?: { type: string; address: string }[]; [key: string]: unknown };
}

/** k8s.cni.cncf.io/v1 NetworkAttachmentDefinition. */
export interface NetworkAttachmentDefinition extends KubeObject {
  metadata: ObjectMeta;
  /** `config` holds a CNI conf or conflist as JSON text; empty means a conf file of the NAD's name. */
  spec?: { config?: string };
}

/** The seed's older kubernetes-network.cni.cncf.io/v1 Network: a plugin type and its args. */
export interface LegacyNetwork extends KubeObject {
  metadata: ObjectMeta;
  /** The CNI plugin type. */
  plugin?: string;
  /** JSON text: a list holding one object (or the object) merged into the plugin's conf. */
  args?: string;
}

/** core/v1 Event. */
export interface KubeEvent extends KubeObject {
  metadata: ObjectMeta;
  involvedObject: {
    apiVersion?: string;
    kind: string;
    name: string;
    namespace?: string;
    uid?: string;
  };
  reason: string;
  message: string;
  type: "Normal" | "Warning";
  source?: { component?: string; host?: string };
  firstTimestamp?: string;
  lastTimestamp?: string;
  count?: number;
  reportingComponent?: string;
  reportingInstance?: string;
}

const seg = encodeURIComponent;

/** Path of a pod, or of the pods of a namespace (all namespaces when `namespace` is undefined). */
export function podPath(namespace?: string, name?: string): string {
  const base = namespace === undefined
    ? "/api/v1/pods"
    : `/api/v1/namespaces/${seg(namespace)}/pods`;
  return name === undefined ? base : `${base}/${seg(name)}`;
}

/** Path of a node, or of all nodes. */
export function nodePath(name?: string): string {
  return name === undefined ? "/api/v1/nodes" : `/api/v1/nodes/${seg(name)}`;
}

/** Path of a NetworkAttachmentDefinition, or of those of a namespace (all when undefined). */
export function nadPath(namespace?: string, name?: string): string {
  const base = namespace === undefined
    ? "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"
    : `/apis/k8s.cni.cncf.io/v1/namespaces/${seg(namespace)}/network-attachment-definitions`;
  return name === undefined ? base : `${base}/${seg(name)}`;
}

/** Path of one of the seed's older Network objects. */
export function legacyNetworkPath(namespace: string, name?: string): string {
  const base = `/apis/kubernetes-network.cni.cncf.io/v1/namespaces/${seg(namespace)}/networks`;
  return name === undefined ? base : `${base}/${seg(name)}`;
}

/** Path of the events of a namespace. */
export function eventPath(namespace: string, name?: string): string {
  const base = `/api/v1/namespaces/${seg(namespace)}/events`;
  return name === undefined ? base : `${base}/${seg(name)}`;
}

/** Reads a pod; a missing pod throws a 404 KubeApiError (see `isNotFound`). */
export function getPod(
  client: KubeClient,
  namespace: string,
  name: string,
  opts?: RequestOptions,
): Promise<Pod> {
  return client.get<Pod>(podPath(namespace, name), opts);
}

/** Reads a node. */
export function getNode(client: KubeClient, name: string, opts?: RequestOptions): Promise<Node> {
  return client.get<Node>(nodePath(name), opts);
}

/** Reads a NetworkAttachmentDefinition. */
export function getNetworkAttachmentDefinition(
  client: KubeClient,
  namespace: string,
  name: string,
  opts?: RequestOptions,
): Promise<NetworkAttachmentDefinition> {
  return client.get<NetworkAttachmentDefinition>(nadPath(namespace, name), opts);
}

/** Reads one of the seed's older Network objects. */
export function getLegacyNetwork(
  client: KubeClient,
  namespace: string,
  name: string,
  opts?: RequestOptions,
): Promise<LegacyNetwork> {
  return client.get<LegacyNetwork>(legacyNetworkPath(namespace, name), opts);
}

/** The pod found under a name is not the one the runtime asked about (it was replaced). */
export class PodUidMismatchError extends Error {
  readonly expected: string;
  readonly actual: string;

  constructor(namespace: string, name: string, expected: string, actual: string) {
    super(`pod ${namespace}/${name} has UID ${actual}, expected ${expected}: it was replaced`);
    this.name = "PodUidMismatchError";
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * Sets (string) or removes (null) annotations through the pod's status
 * subresource with a JSON merge patch, as Multus writes through pods/status.
 * With `resourceVersion` the write only succeeds on that version (else 409).
 */
export function patchPodStatusAnnotations(
  client: KubeClient,
  namespace: string,
  name: string,
  annotations: Record<string, string | null>,
  opts: RequestOptions & { resourceVersion?: string } = {},
): Promise<Pod> {
  const metadata: Record<string, unknown> = { annotations };
  if (opts.resourceVersion) metadata.resourceVersion = opts.resourceVersion;
  return client.patch<Pod>(`${podPath(namespace, name)}/status`, { metadata }, "merge", opts);
}

/**
 * Read-modify-write of pod annotations: reads the pod, asks `change` for the
 * annotations to set or remove given the current pod (undefined: nothing to
 * do), and patches them conditional on the version read, retrying on
 * conflict (5 attempts, like client-go's RetryOnConflict default). With
 * `uid`, a pod with another UID is refused ({@link PodUidMismatchError}).
 * Returns the updated pod, or the unchanged one when there was nothing to do.
 */
export async function updatePodStatusAnnotations(
  client: KubeClient,
  namespace: string,
  name: string,
  change: (pod: Pod) => Record<string, string | null> | undefined,
  opts: RequestOptions & { uid?: string; attempts?: number } = {},
): Promise<Pod> {
  const attempts = opts.attempts ?? 5;
  for (let attempt = 1;; attempt++) {
    const pod = await getPod(client, namespace, name, opts);
    if (opts.uid && pod.metadata.uid && pod.metadata.uid !== opts.uid) {
      throw new PodUidMismatchError(namespace, name, opts.uid, pod.metadata.uid);
    }
    const annotations = change(pod);
    if (!annotations || Object.keys(annotations).length === 0) return pod;
    try {
      return await patchPodStatusAnnotations(client, namespace, name, annotations, {
        ...opts,
        resourceVersion: pod.metadata.resourceVersion,
      });
    } catch (err) {
      if (!isConflict(err) || attempt >= attempts) throw err;
      // Jittered pause so writers racing on the same pod spread out.
      await delay(backoffDelay(attempt, CONFLICT_BACKOFF));
    }
  }
}

/** What an Event says. */
export interface EventInit {
  type: "Normal" | "Warning";
  /** A short CamelCase cause, e.g. "AddedInterface", "NoNetworkFound". */
  reason: string;
  message: string;
  /** Who reports it; "hydra". */
  component?: string;
  /** The node reporting it. */
  host?: string;
}

/** Event messages longer than this are cut, as event recorders do. */
const EVENT_MESSAGE_MAX = 1024;

/** Records an Event about a pod (shown by `kubectl describe pod`). */
export function createEvent(
  client: KubeClient,
  pod: Pick<Pod, "metadata">,
  init: EventInit,
  opts?: RequestOptions,
): Promise<KubeEvent> {
  const now = new Date();
  const nanos = BigInt(now.getTime()) * 1_000_000n + BigInt(Math.floor(Math.random() * 1e6));
  const component = init.component ?? "hydra";
  const message = init.message.length > EVENT_MESSAGE_MAX
    ? init.message.slice(0, EVENT_MESSAGE_MAX - 3) + "..."
    : init.message;
  const event: KubeEvent = {
    apiVersion: "v1",
    kind: "Event",
    metadata: {
      name: `${pod.metadata.name}.${nanos.toString(16)}`,
      namespace: pod.metadata.namespace,
    },
    involvedObject: {
      apiVersion: "v1",
      kind: "Pod",
      name: pod.metadata.name,
      namespace: pod.metadata.namespace,
      uid: pod.metadata.uid,
    },
    reason: init.reason,
    message,
    type: init.type,
    source: init.host ? { component, host: init.host } : { component },
    firstTimestamp: now.toISOString().replace(/\.\d+Z$/, "Z"),
    lastTimestamp: now.toISOString().replace(/\.\d+Z$/, "Z"),
    count: 1,
    reportingComponent: component,
    reportingInstance: init.host ?? "",
  };
  return client.create<KubeEvent>(eventPath(pod.metadata.namespace), event, opts);
}

/** Events about cluster-scoped objects (Nodes) live in this namespace, as the kubelet's do. */
export const CLUSTER_EVENT_NAMESPACE = "default";

/**
 * Records an Event about a Node (shown by `kubectl describe node`). `name`
 * makes it idempotent: reporters on many nodes that name the same finding
 * alike create one Event, the others get 409 AlreadyExists (returned as
 * undefined, not thrown).
 */
export async function createNodeEvent(
  client: KubeClient,
  node: string,
  name: string,
  init: EventInit,
  opts?: RequestOptions,
): Promise<KubeEvent | undefined> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const component = init.component ?? "hydra";
  const message = init.message.length > EVENT_MESSAGE_MAX
    ? init.message.slice(0, EVENT_MESSAGE_MAX - 3) + "..."
    : init.message;
  const event: KubeEvent = {
    apiVersion: "v1",
    kind: "Event",
    metadata: { name, namespace: CLUSTER_EVENT_NAMESPACE },
    involvedObject: { apiVersion: "v1", kind: "Node", name: node },
    reason: init.reason,
    message,
    type: init.type,
    source: init.host ? { component, host: init.host } : { component },
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
    reportingComponent: component,
    reportingInstance: init.host ?? "",
  };
  try {
    return await client.create<KubeEvent>(eventPath(CLUSTER_EVENT_NAMESPACE), event, opts);
  } catch (err) {
    if (isAlreadyExists(err)) return undefined;
    throw err;
  }
}
