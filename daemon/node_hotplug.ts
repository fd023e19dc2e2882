/**
 * `hydra daemon --hotplug on`: the hot-plug agent (hotplug/) in the node
 * daemon, beside a runtime that runs hydra as the meta-CNI. It follows this
 * node's pods through the daemon's pod cache, reads networks through the
 * daemon's own caches (as a meta-CNI under the daemon does), finds each
 * pod's sandbox and namespace through the runtime's CRI socket, and acts
 * on the meta-CNI's records. Loaded only when turned on.
 *
 * @module
 */

import type { KubeClient } from "../kube/client.ts";
import type { Logger } from "../pkg/log.ts";
import type { Registry } from "../pkg/metrics.ts";
import { type DaemonConnection, daemonKubeClient } from "../daemonclient/client.ts";
import type { NodeCache } from "../kube/node_cache.ts";

/** What the daemon hands the agent. */
export interface DaemonHotplugDeps {
  cache: NodeCache;
  /** The daemon served in process: network reads from its caches. */
  connection: DaemonConnection;
  client: KubeClient;
  log: Logger;
  registry: Registry;
  nodeName: string;
  /** The meta-CNI's cache folder (its records). */
  cacheDir: string;
  criSocket: string;
  apiTimeoutMs: number;
}

/** A running agent; `stop` waits for its passes and closes the runtime connection. */
export interface DaemonHotplug {
  stop(): Promise<void>;
}

/** Starts the agent on every pod the cache holds and will hold. */
export async function startDaemonHotplug(deps: DaemonHotplugDeps): Promise<DaemonHotplug> {
  const [{ createHotplugAgent }, { criSandboxes }, { BUILTINS }] = await Promise.all([
    import("../hotplug/agent.ts"),
    import("../hotplug/sandboxes.ts"),
    import("../engine/builtins.ts"),
  ]);
  const sandboxes = criSandboxes(deps.criSocket, deps.apiTimeoutMs);
  const agent = createHotplugAgent({
    kind: "meta",
    cacheDir: deps.cacheDir,
    sandboxes,
    reads: daemonKubeClient(deps.connection, deps.apiTimeoutMs),
    writes: deps.client,
    builtins: BUILTINS,
    log: deps.log.with({ component: "hotplug" }),
    registry: deps.registry,
    host: deps.nodeName,
    apiTimeoutMs: deps.apiTimeoutMs,
  });
  deps.cache.watchPods((type, pod) => {
    if (type === "DELETED") agent.podDeleted(pod);
    else agent.podChanged(pod);
  });
  deps.log.info("hot plug on", { cacheDir: deps.cacheDir, criSocket: deps.criSocket });
  return {
    async stop() {
      await agent.stop();
      sandboxes.close();
    },
  };
}
