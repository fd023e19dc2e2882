/**
 * `hydra nri serve --hotplug on`: the hot-plug agent (hotplug/) in the NRI
 * plugin. It follows this node's pods through the plugin's watch cache
 * (nri/kube_cache.ts, the one attaches read), learns each
 * pod's sandbox and network namespace from NRI (RunPodSandbox and
 * Synchronize note them, Stop/RemovePodSandbox forget them), reads networks
 * and writes status and Events with the plugin's API access, and acts on
 * the plugin's records. A pod the plugin attached nothing to at creation
 * gets a record on its first hot plug, and the sandbox is noted as
 * attached (state.ts), so a restarted plugin keeps its networks. Loaded
 * only when turned on.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import type { Registry } from "../pkg/metrics.ts";
import { BUILTINS } from "../engine/builtins.ts";
import type { NodeAgentKube } from "../engine/kube_source.ts";
import { createHotplugAgent } from "../hotplug/agent.ts";
import type { Sandbox } from "../hotplug/options.ts";
import { sandboxTable } from "../hotplug/sandboxes.ts";
import type { PodArgs } from "../kube/delegate.ts";
import { podCniArgs } from "./attach.ts";
import type { NriServeOptions } from "./options.ts";
import { netnsPathOf, type PodSandbox } from "./pod.ts";
import { POD_STATE_KIND, savePodState } from "./state.ts";

/** The agent as the NRI hooks see it. */
export interface NriHotplug {
  /** A sandbox runs (its RunPodSandbox was handled). */
  started(pod: PodSandbox): void;
  /** A sandbox stopped or was removed. */
  stopped(sandboxId: string): void;
  /** Synchronize: the sandboxes that exist. */
  listed(pods: readonly PodSandbox[]): void;
  stop(): Promise<void>;
}

function noted(pod: PodSandbox) {
  const netns = netnsPathOf(pod);
  return { id: pod.id, uid: pod.uid, ...(netns ? { netns } : {}) };
}

/** Marks a sandbox as attached before hot plug makes its first record (see the module doc). */
function noteAttached(cacheDir: string, sandbox: Sandbox, pod: PodArgs, ifName: string): void {
  savePodState(cacheDir, {
    kind: POD_STATE_KIND,
    sandboxId: sandbox.id,
    pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid },
    netns: sandbox.netns,
    ifName,
    networks: [],
    attachedAt: new Date().toISOString(),
  });
}

/**
 * Starts the agent on the plugin's watch cache of this node's pods (the
 * one its attaches read) and its API client.
 */
export function startNriHotplug(
  opts: NriServeOptions,
  log: Logger,
  registry: Registry,
  kube: NodeAgentKube | undefined,
): NriHotplug {
  if (!kube) throw new Error("--hotplug needs API access (--kubeconfig or --in-cluster)");
  const client = kube.client;
  const table = sandboxTable();
  const agent = createHotplugAgent({
    kind: "nri",
    cacheDir: opts.cacheDir,
    sandboxes: table,
    reads: client,
    writes: client,
    builtins: BUILTINS,
    log: log.with({ component: "hotplug" }),
    registry,
    host: opts.nodeName,
    ...(opts.nadPathRoots ? { nadPathRoots: opts.nadPathRoots } : {}),
    newRecords: {
      rules: (sandbox, pod) => ({
        cniPath: [...opts.cniBinDirs],
        confDir: opts.confDir,
        namespaceIsolation: false,
        cniArgs: podCniArgs({ ...pod, id: sandbox.id }),
        cniVersion: "1.1.0",
        ...(opts.nadPathRoots ? { nadPathRoots: opts.nadPathRoots } : {}),
      }),
      prepare: (sandbox, pod, ifName) => noteAttached(opts.cacheDir, sandbox, pod, ifName),
    },
  });
  kube.cache.watchPods((type, pod) => {
    if (type === "DELETED") agent.podDeleted(pod);
    else agent.podChanged(pod);
  });
  log.info("hot plug on", { node: opts.nodeName });
  return {
    started(pod) {
      table.started(noted(pod));
      agent.resync();
    },
    stopped: (id) => table.stopped(id),
    listed(all) {
      table.listed(all.map(noted));
      agent.resync();
    },
    async stop() {
      await agent.stop();
    },
  };
}
