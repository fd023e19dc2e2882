/**
 * A node agent's view of the cluster (the node daemon's, and the NRI
 * plugin's in Kubernetes mode): watch caches (informers) of the
 * pods on this node (field selector `spec.nodeName`, so memory follows the
 * node's pods, not the cluster's), of every NetworkAttachmentDefinition,
 * and of this node's Node object; reads that miss go to the API server,
 * a bounded number at a time.
 *
 * A pod the runtime asks about has usually been in the cache for a while
 * (the kubelet sees it through a watch too). When it is not there yet, or
 * only an older pod of the same name is, the lookup waits a moment for the
 * watch to deliver it, then asks the API server.
 *
 * Cached objects keep only what readers use (see {@link slimPod}).
 *
 * A NAD missing from the synced cache is asked for too (it may be brand
 * new), but only briefly: when the API server does not answer, the cache's
 * word stands and the NAD does not exist. A meta-CNI looking up its cluster
 * network by name (a NAD, else a conf file) then still works while the API
 * server is away.
 *
 * @module
 */

import { createSemaphore, type Semaphore } from "../pkg/async.ts";
import type { KubeClient } from "./client.ts";
import { KubeApiError, KubeTransportError } from "./errors.ts";
import { type Informer, startInformer } from "./informer.ts";
import {
  nadPath,
  type NetworkAttachmentDefinition,
  type Node,
  nodePath,
  type Pod,
  podPath,
} from "./objects.ts";
import type { KubeObject } from "./watch.ts";

/** Options of {@link startNodeCache}. */
export interface NodeCacheOptions {
  nodeName: string;
  /** Live API reads at once, at most (the rest wait their turn); 8. */
  maxLiveReads?: number;
  /** Longest wait for the pod watch to deliver a pod not yet cached; 1 s. */
  podWaitMs?: number;
  onError?: (what: string, err: unknown) => void;
}

/** Told about each change of a cached pod (the trimmed object). */
export type PodListener = (type: "ADDED" | "MODIFIED" | "DELETED", pod: Pod) => void;

/** What a read was served from, for metrics. */
export type ReadSource = "cache" | "api";

/** The caches and the reads served from them. */
export interface NodeCache {
  /** Resolves once every informer has listed once. */
  readonly synced: Promise<void>;
  hasSynced(): boolean;
  /** Object counts, for metrics. */
  sizes(): { pods: number; nads: number };
  /** False once the Node watch has listed without finding this node (see the options' nodeName). */
  nodeExists(): boolean;
  /**
   * Reads one object by API path (pods, NADs, legacy Networks, Nodes);
   * throws KubeApiError (404 when missing) or KubeTransportError as the
   * API client would.
   */
  get(
    path: string,
    opts: { uid?: string; timeoutMs: number },
  ): Promise<{ body: unknown; source: ReadSource }>;
  /** Tells `listener` about every pod cached now (as ADDED), then about each change. */
  watchPods(listener: PodListener): void;
  stop(): Promise<void>;
}

const POD_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/;
const NAD_PATH =
  /^\/apis\/k8s\.cni\.cncf\.io\/v1\/namespaces\/([^/]+)\/network-attachment-definitions\/([^/]+)$/;
const NODE_PATH = /^\/api\/v1\/nodes\/([^/]+)$/;
const LEGACY_PATH =
  /^\/apis\/kubernetes-network\.cni\.cncf\.io\/v1\/namespaces\/[^/]+\/networks\/[^/]+$/;

/** True for the API paths {@link NodeCache.get} serves (pods, NADs, legacy Networks, Nodes). */
export function servesPath(path: string): boolean {
  return POD_PATH.test(path) || NAD_PATH.test(path) || NODE_PATH.test(path) ||
    LEGACY_PATH.test(path);
}

/**
 * The annotation `kubectl apply` leaves: a full copy of the applied object,
 * often the largest part of its metadata, read by no one here.
 */
const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/** Metadata reduced to what readers use: identity, version, deletion and annotations. */
function slimMeta<M extends KubeObject["metadata"]>(m: M): M {
  let annotations = m.annotations as Record<string, string> | undefined;
  if (annotations && LAST_APPLIED in annotations) {
    const { [LAST_APPLIED]: _dropped, ...rest } = annotations;
    annotations = rest;
  }
  return {
    name: m.name,
    namespace: m.namespace,
    uid: m.uid,
    resourceVersion: m.resourceVersion,
    // Hot plug leaves pods being deleted alone.
    ...(m.deletionTimestamp ? { deletionTimestamp: m.deletionTimestamp } : {}),
    ...(annotations ? { annotations } : {}),
  } as M;
}

/**
 * A cached pod: a fresh object with only what readers use (name,
 * namespace, UID, resourceVersion and annotations; spec.nodeName and
 * hostNetwork), made as it arrives so the full object (containers, status,
 * managed fields: most of a pod) is garbage at once, list pages included.
 * The cache holds every pod of the node.
 */
export function slimPod(pod: Pod): Pod {
  const spec = pod.spec;
  return {
    apiVersion: pod.apiVersion,
    kind: pod.kind,
    metadata: slimMeta(pod.metadata),
    spec: spec?.hostNetwork
      ? { nodeName: spec.nodeName, hostNetwork: true }
      : { nodeName: spec?.nodeName },
  };
}

/** A cached NAD: its identity, annotations (the resource name) and config. */
export function slimNad(nad: NetworkAttachmentDefinition): NetworkAttachmentDefinition {
  return {
    apiVersion: nad.apiVersion,
    kind: nad.kind,
    metadata: slimMeta(nad.metadata),
    spec: nad.spec?.config === undefined ? {} : { config: nad.spec.config },
  };
}

/** The cached Node: its identity, annotations and spec (kube-node IPAM reads the pod CIDRs). */
export function slimNode(node: Node): Node {
  return {
    apiVersion: node.apiVersion,
    kind: node.kind,
    metadata: slimMeta(node.metadata),
    ...(node.spec ? { spec: node.spec } : {}),
  };
}

/**
 * Pods asked for per list page: a bounded answer to hold while it is
 * slimmed. A page's text and its full pod objects are garbage once
 * slimmed, and they pile up between collections: with pods as a kubelet
 * runs them (managed fields, statuses), pages of 100 put the daemon 7 MiB
 * higher while it listed 1,000 pods than pages of 25, for the same time to
 * sync (bench/README.md, "Memory: collections").
 */
const POD_PAGE = 25;

/** How long a NAD cache miss waits for the API server before the cache's "no" stands. */
const NAD_MISS_LIVE_MS = 500;

function notCached(path: string): KubeApiError {
  return new KubeApiError({
    status: 404,
    reason: "NotFound",
    message:
      `GET ${path}: 404 NotFound: not in the node's watch cache (the API server did not answer)`,
    method: "GET",
    path,
  });
}

function badRequest(path: string): KubeApiError {
  return new KubeApiError({
    status: 400,
    reason: "BadRequest",
    message: `GET ${path}: 400 BadRequest: not an object the node's watch cache serves`,
    method: "GET",
    path,
  });
}

/** One cache's informers and what its reads share. */
interface Cache {
  client: KubeClient;
  podWaitMs: number;
  /** API reads in flight at most. */
  live: Semaphore;
  /** Pod keys someone is waiting for, with their wake-up calls. */
  podWaiters: Map<string, Set<() => void>>;
  podListeners: PodListener[];
  pods: Informer<Pod>;
  nads: Informer<NetworkAttachmentDefinition>;
  nodes: Informer<Node>;
}

/** The informers of this node's pods, every NAD and this node's Node, trimmed to what is read. */
function startInformers(
  client: KubeClient,
  opts: NodeCacheOptions,
  podWaiters: Map<string, Set<() => void>>,
  podListeners: PodListener[],
) {
  const onError = (what: string) => (err: unknown) => opts.onError?.(what, err);
  const pods: Informer<Pod> = startInformer<Pod>(client, podPath(), {
    fieldSelector: `spec.nodeName=${opts.nodeName}`,
    pageSize: POD_PAGE,
    transform: slimPod,
    onEvent: (type, pod) => {
      const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
      for (const wake of podWaiters.get(key) ?? []) wake();
      for (const listener of podListeners) listener(type, pod);
    },
    onError: onError("pods"),
  });
  const nads: Informer<NetworkAttachmentDefinition> = startInformer(client, nadPath(), {
    transform: slimNad,
    onError: onError("network-attachment-definitions"),
  });
  const nodes: Informer<Node> = startInformer<Node>(client, nodePath(), {
    fieldSelector: `metadata.name=${opts.nodeName}`,
    // A Node's status (images, conditions, addresses) is the bulk of it; kube-node reads spec.
    transform: slimNode,
    onError: onError("nodes"),
  });
  return { pods, nads, nodes };
}

/** A read from the API server, in one of the live slots, within `end`. */
async function liveGet(c: Cache, path: string, end: number): Promise<unknown> {
  const release = await c.live.acquire();
  try {
    const left = end - Date.now();
    if (left <= 0) {
      throw new KubeTransportError(
        "timeout",
        `GET ${path}: no API read slot free in time`,
        "GET",
        path,
      );
    }
    return await c.client.get(path, { timeoutMs: left });
  } finally {
    release();
  }
}

/** Waits until the pod watch says something about `key` or `ms` pass. */
function podEvent(c: Cache, key: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const set = c.podWaiters.get(key) ?? new Set();
    c.podWaiters.set(key, set);
    const done = () => {
      clearTimeout(timer);
      set.delete(done);
      if (set.size === 0) c.podWaiters.delete(key);
      resolve();
    };
    const timer = setTimeout(done, ms);
    set.add(done);
  });
}

type Read = { body: unknown; source: "cache" | "api" };

/**
 * False once the Node watch has listed and found no Node of the agent's
 * name: its pod watch then never delivers a pod (a wrong `--node-name`),
 * and waiting for one would only delay every read.
 */
function nodeExists(c: Cache): boolean {
  return !c.nodes.hasSynced() || c.nodes.list().length > 0;
}

/** A pod: from the cache (waiting briefly for the watch to show it), else from the API. */
async function getPod(
  c: Cache,
  ns: string,
  name: string,
  path: string,
  uid: string | undefined,
  end: number,
): Promise<Read> {
  const key = `${ns}/${name}`;
  const fits = (p: Pod | undefined) => p !== undefined && (!uid || p.metadata.uid === uid);
  let cached = c.pods.get(ns, name);
  if (c.pods.hasSynced() && nodeExists(c)) {
    const waitUntil = Math.min(end - 50, Date.now() + c.podWaitMs);
    while (!fits(cached) && Date.now() < waitUntil) {
      await podEvent(c, key, waitUntil - Date.now());
      cached = c.pods.get(ns, name);
    }
    if (fits(cached)) return { body: cached, source: "cache" };
  }
  // Not (yet) in the cache, another node's pod, or a UID only the API knows: ask it.
  return { body: await liveGet(c, path, end), source: "api" };
}

/** A NAD: from the cache; missing from a synced cache, the API is asked briefly. */
async function getNad(
  c: Cache,
  ns: string,
  name: string,
  path: string,
  end: number,
): Promise<Read> {
  const cached = c.nads.get(ns, name);
  if (cached) return { body: cached, source: "cache" };
  if (!c.nads.hasSynced()) return { body: await liveGet(c, path, end), source: "api" };
  // Missing from a synced cache usually means missing; the API says for sure if it can.
  try {
    return {
      body: await liveGet(c, path, Math.min(end, Date.now() + NAD_MISS_LIVE_MS)),
      source: "api",
    };
  } catch (err) {
    if (err instanceof KubeTransportError) throw notCached(path);
    throw err;
  }
}

/** Any object the daemon serves, by API path. */
async function getObject(
  c: Cache,
  path: string,
  uid: string | undefined,
  timeoutMs: number,
): Promise<Read> {
  const end = Date.now() + timeoutMs;
  let m = POD_PATH.exec(path);
  if (m) return await getPod(c, decodeURIComponent(m[1]), decodeURIComponent(m[2]), path, uid, end);
  m = NAD_PATH.exec(path);
  if (m) return await getNad(c, decodeURIComponent(m[1]), decodeURIComponent(m[2]), path, end);
  m = NODE_PATH.exec(path);
  if (m) {
    const cached = c.nodes.get(undefined, decodeURIComponent(m[1]));
    if (cached) return { body: cached, source: "cache" };
    return { body: await liveGet(c, path, end), source: "api" };
  }
  if (LEGACY_PATH.test(path)) return { body: await liveGet(c, path, end), source: "api" };
  throw badRequest(path);
}

/** Starts the informers; reads work at once (they go to the API server until synced). */
export function startNodeCache(client: KubeClient, opts: NodeCacheOptions): NodeCache {
  const podWaiters = new Map<string, Set<() => void>>();
  const podListeners: PodListener[] = [];
  const c: Cache = {
    client,
    podWaitMs: opts.podWaitMs ?? 1_000,
    live: createSemaphore(opts.maxLiveReads ?? 8),
    podWaiters,
    podListeners,
    ...startInformers(client, opts, podWaiters, podListeners),
  };
  const informers: Informer<KubeObject>[] = [c.pods, c.nads, c.nodes];
  const synced = Promise.all(informers.map((i) => i.synced)).then(() => {});
  synced.catch(() => {});
  return {
    synced,
    hasSynced: () => informers.every((i) => i.hasSynced()),
    sizes: () => ({ pods: c.pods.list().length, nads: c.nads.list().length }),
    nodeExists: () => nodeExists(c),
    get: (path, { uid, timeoutMs }) => getObject(c, path, uid, timeoutMs),
    watchPods(listener) {
      for (const pod of c.pods.list()) listener("ADDED", pod);
      podListeners.push(listener);
    },
    async stop() {
      await Promise.all(informers.map((i) => i.stop()));
    },
  };
}
