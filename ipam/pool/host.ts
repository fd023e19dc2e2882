/**
 * Where `hydra-pool` allocations run in this process, and with what.
 *
 * A long-lived node process (`hydra daemon`) declares itself the node's
 * allocation host with {@link servePoolsHere}: its API client, node name,
 * metrics and pod cache. Every invocation it runs — forwarded by an exec'd
 * plugin, or by a meta-CNI it runs — then uses one allocator per network
 * for the whole node, which is what batches concurrent ADDs into one
 * block write. Any other process (an exec'd plugin without a daemon, the
 * NRI plugin) makes its own client from the config's kubeconfig and keeps
 * it, with its allocators, for as long as it lives.
 *
 * @module
 */

import type { Logger } from "../../pkg/log.ts";
import type { KubeClient } from "../../kube/client.ts";
import type { EventInit, Pod } from "../../kube/objects.ts";
import { NetworkAllocator } from "./allocator.ts";
import type { Access } from "./config.ts";
import { type MetricSink, noMetrics, type PoolMetrics, poolMetrics } from "./metrics.ts";

/** What a host process offers the allocations it runs. */
export interface PoolHostOptions {
  client: KubeClient;
  nodeName: string;
  metrics?: MetricSink;
  log?: Logger;
  /** Reads a pod (from a cache when there is one); throws as the API client would. */
  readPod?: (
    namespace: string,
    name: string,
    uid: string | undefined,
    timeoutMs: number,
  ) => Promise<Pod>;
  /** Records an Event on a pod; defaults to writing it with `client`. */
  recordEvent?: (pod: Pod, init: EventInit) => void;
}

/** The context one invocation allocates in. */
export interface PoolContext {
  client: KubeClient;
  nodeName: string;
  metrics: PoolMetrics;
  log?: Logger;
  /** True when this process is the node's host (so nothing is forwarded). */
  hosted: boolean;
  readPod?: PoolHostOptions["readPod"];
  recordEvent?: PoolHostOptions["recordEvent"];
  allocator(network: string): NetworkAllocator;
}

let host: PoolContext | undefined;
/** Contexts of a non-host process, by kubeconfig and node. */
const own = new Map<string, Promise<PoolContext>>();

function contextOf(
  client: KubeClient,
  nodeName: string,
  metrics: PoolMetrics,
  hosted: boolean,
  extra: Partial<PoolContext> = {},
): PoolContext {
  const allocators = new Map<string, NetworkAllocator>();
  return {
    client,
    nodeName,
    metrics,
    hosted,
    ...extra,
    allocator(network) {
      let a = allocators.get(network);
      if (!a) {
        a = new NetworkAllocator({
          client,
          network,
          node: nodeName,
          metrics,
          log: extra.log,
          settleDoubts: hosted,
        });
        allocators.set(network, a);
      }
      return a;
    },
  };
}

/** Makes this process the node's allocation host (undefined: stop being one). */
export function servePoolsHere(opts: PoolHostOptions | undefined): void {
  host = opts
    ? contextOf(
      opts.client,
      opts.nodeName,
      opts.metrics ? poolMetrics(opts.metrics) : noMetrics,
      true,
      {
        log: opts.log,
        readPod: opts.readPod,
        recordEvent: opts.recordEvent,
      },
    )
    : undefined;
}

/** True when this process is the node's allocation host. */
export function isPoolHost(): boolean {
  return host !== undefined;
}

/**
 * The context for an invocation: the host's when this process is one,
 * else this process's own client for the config's kubeconfig (or the
 * in-cluster account). Throws KubeconfigError-like errors when there is no
 * way to reach the API.
 */
export async function poolContext(access: Access): Promise<PoolContext> {
  if (host) return host;
  const key = `${access.kubeconfig ?? ""}|${access.nodeName}`;
  let ctx = own.get(key);
  if (!ctx) {
    ctx = (async () => {
      const { resolveConnection } = await import("../../kube/kubeconfig.ts");
      const { createKubeClient } = await import("../../kube/client.ts");
      const conn = await resolveConnection(access.kubeconfig);
      if (!conn) {
        throw new Error(
          "no ipam.kubeconfig (nor whereabouts' ipam.kubernetes.kubeconfig) and not running in a " +
            "cluster: cannot reach the API server",
        );
      }
      const client = createKubeClient(conn, { userAgent: "hydra-pool" });
      return contextOf(client, access.nodeName, noMetrics, false);
    })();
    own.set(key, ctx);
    ctx.catch(() => own.delete(key));
  }
  return await ctx;
}

/** Closes this process's own API clients (tests; a host's client belongs to the host). */
export async function closePoolContexts(): Promise<void> {
  const all = [...own.values()];
  own.clear();
  for (const ctx of await Promise.allSettled(all)) {
    if (ctx.status === "fulfilled") ctx.value.client.close();
  }
}
