/**
 * The Kubernetes node source: an informer on Node objects (list, then watch
 * from the list's resourceVersion; a fresh list on 410 Gone; backoff while
 * the API server is away). Each change is handed on reduced to what the
 * router reads, so status heartbeats that touch nothing routed cost
 * nothing downstream.
 *
 * While the API server is unreachable the cached nodes stay in force: the
 * router keeps every route and picks up what changed once it is back.
 *
 * @module
 */

import type { KubeClient } from "../kube/client.ts";
import { startInformer } from "../kube/informer.ts";
import type { Node } from "../kube/objects.ts";
import { nodePath } from "../kube/objects.ts";
import { nodeFromKube, type NodeInfo } from "./nodes.ts";

/** Callbacks of {@link watchKubeNodes}. */
export interface KubeSourceHandlers {
  upsert(node: NodeInfo): void;
  remove(name: string): void;
  /** The first complete list is in. */
  synced(): void;
  /** A list or watch request failed (the informer retries with backoff). */
  onError(err: unknown): void;
  /** A request succeeded again after failures. */
  onRecovered(): void;
}

/** A running Kubernetes node source. */
export interface KubeSource {
  /** Resolves once the first list is in. */
  readonly synced: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Wraps a client so that the outcome of every list and watch request is
 * seen: the informer itself only reports failures.
 */
function observedClient(client: KubeClient, ok: () => void, failed: () => void): KubeClient {
  return {
    ...client,
    get server() {
      return client.server;
    },
    get timeoutMs() {
      return client.timeoutMs;
    },
    async list<T>(...args: Parameters<KubeClient["list"]>) {
      try {
        const out = await client.list<T>(...args);
        ok();
        return out;
      } catch (err) {
        failed();
        throw err;
      }
    },
    async stream(...args: Parameters<KubeClient["stream"]>) {
      try {
        const res = await client.stream(...args);
        ok();
        return res;
      } catch (err) {
        failed();
        throw err;
      }
    },
  };
}

/**
 * A Node object reduced to what {@link nodeFromKube} reads (and the
 * informer keys by): status heartbeats, images, conditions and managed
 * fields are dropped as each object arrives.
 */
export function slimNode(n: Node, annotationKeys?: ReadonlySet<string>): Node {
  const { name, namespace, resourceVersion, annotations } = n.metadata;
  let kept = annotations;
  if (annotations && annotationKeys) {
    kept = {};
    for (const k of annotationKeys) if (k in annotations) kept[k] = annotations[k];
  }
  return {
    metadata: { name, namespace, resourceVersion, annotations: kept },
    spec: { podCIDR: n.spec?.podCIDR, podCIDRs: n.spec?.podCIDRs },
    status: { addresses: n.status?.addresses },
  };
}

/** Starts watching Node objects. */
export function watchKubeNodes(
  client: KubeClient,
  handlers: KubeSourceHandlers,
  opts: {
    watchTimeoutSeconds?: number;
    backoffMaxMs?: number;
    /** The annotations the networks read; the others are dropped. */
    annotationKeys?: ReadonlySet<string>;
  } = {},
): KubeSource {
  let failing = false;
  const observed = observedClient(
    client,
    () => {
      if (failing) {
        failing = false;
        handlers.onRecovered();
      }
    },
    () => {
      failing = true;
    },
  );
  const informer = startInformer<Node>(observed, nodePath(), {
    watchTimeoutSeconds: opts.watchTimeoutSeconds,
    backoff: { initialMs: 200, maxMs: opts.backoffMaxMs ?? 10_000 },
    // Node objects run from under 1 KB (a bare node) to tens of KB (image lists): pages of
    // about 8 MiB keep a large cluster's list to a few round trips and a bounded answer.
    pageBytes: 8 << 20,
    transform: (n) => slimNode(n, opts.annotationKeys),
    onEvent(type, obj) {
      if (failing) {
        failing = false;
        handlers.onRecovered();
      }
      if (type === "DELETED") handlers.remove(obj.metadata.name);
      else handlers.upsert(nodeFromKube(obj, opts.annotationKeys));
    },
    onError(err) {
      failing = true;
      handlers.onError(err);
    },
  });
  const synced = informer.synced.then(() => handlers.synced());
  synced.catch(() => {});
  return {
    synced,
    stop: () => informer.stop(),
  };
}
