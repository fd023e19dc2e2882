/**
 * Cluster-wide IPAM benchmark: hydra-pool against whereabouts, one run, one
 * kube-apiserver, the same pods for both (see cluster_ipam_lib.ts for the
 * simulation and cluster_ipam_peers_lib.ts for how each runs).
 *
 * 10 simulated nodes, 1,000 Pod objects in 100 Deployment-like groups of
 * 10, an IPAM ADD per pod with at most 10 at once per node (exec'd as a
 * runtime does); then every pod replaced (re-create), then replaced again
 * with every node-side process SIGKILLed while ADDs are in flight and
 * restarted (power cycle: the DELs it cut are lost, as on a node that lost
 * power), then every pod deleted. A phase a peer cannot finish within 10
 * minutes is marked `failed` with how far it got.
 *
 *   deno run -A bench/cluster_ipam.ts [--nodes 10] [--pods 1000] [--group 10]
 *       [--per-node 10] [--phase-timeout 600] [--reclaim-wait 150] [--only hydra,whereabouts]
 *
 * Prints JSON: {"hydra": {"create": {"podsPerSecond", "seconds", "duplicates", ...},
 * "recreate": {...}, "powercycle": {..., "leakedAfterReclaimSeconds"}, "delete": {...},
 * "rssMiB"}, "whereabouts": {same keys}, "hydraNodeProcess": {same keys}, "targets": {...}}.
 * `hydra` execs hydra-pool per ADD and DEL exactly as whereabouts is exec'd (the exec hands the
 * invocation to its node's daemon); `hydraNodeProcess` hands the invocations to the node's
 * daemon without an exec, which is what IPAM costs under `hydra nri serve` or a meta-CNI run by
 * the daemon (`daemonExec`), where one exec per pod, or none, serves all its networks.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { createKubeClient } from "../kube/client.ts";
import { loadKubeconfig } from "../kube/kubeconfig.ts";
import { poolPath } from "../ipam/pool/objects.ts";
import { startControlPlane } from "../tests/infra/cluster.ts";
import { versions } from "../tests/infra/peers.ts";
import { waitUntil } from "../tests/infra/process.ts";
import { whereaboutsBin, whereaboutsCrds } from "../tests/infra/whereabouts.ts";
import { machineInfo } from "./machine.ts";
import { nodeName, type PeerResult, type RunOptions, runPeer } from "./cluster_ipam_lib.ts";
import { hydraPeer, podApi, processCpuSeconds, whereaboutsPeer } from "./cluster_ipam_peers_lib.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    nodes: { type: "string", default: "10" },
    pods: { type: "string", default: "1000" },
    group: { type: "string", default: "10" },
    "per-node": { type: "string", default: "10" },
    "phase-timeout": { type: "string", default: "600" },
    "reclaim-wait": { type: "string", default: "150" },
    "rss-samples": { type: "string", default: "5" },
    only: { type: "string", default: "hydra,hydraNodeProcess,whereabouts" },
  },
});

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const log = (msg: string) => console.error(`[cluster_ipam] ${msg}`);
const opts: RunOptions = {
  nodes: Number(flags.nodes),
  pods: Number(flags.pods),
  groupSize: Number(flags.group),
  perNode: Number(flags["per-node"]),
  phaseTimeoutMs: Number(flags["phase-timeout"]) * 1000,
  reclaimWaitMs: Number(flags["reclaim-wait"]) * 1000,
  rssSamples: Number(flags["rss-samples"]),
  log,
  cpuSeconds: () => ({
    apiserver: processCpuSeconds(cp.record.apiserverPid),
    etcd: processCpuSeconds(cp.record.etcdPid),
  }),
};
const only = new Set(flags.only!.split(","));
const machine = await machineInfo();
const pinned = versions();

const cp = await startControlPlane({ manifests: [`${ROOT}/deploy/crds/address-pools.yaml`] });
const dir = await Deno.makeTempDir({ prefix: "hydra-bench-ipam-" });
const netnsName = `hyb${crypto.randomUUID().slice(0, 6)}`;
const client = createKubeClient(await loadKubeconfig(cp.kubeconfigPath), {
  userAgent: "hydra-bench",
});
const results: Record<string, PeerResult> = {};
try {
  await new Deno.Command("ip", { args: ["netns", "add", netnsName] }).output();
  const env = { client, kubeconfig: cp.kubeconfigPath, dir, netns: `/var/run/netns/${netnsName}` };
  if (only.has("whereabouts")) {
    for (const crd of await whereaboutsCrds()) await cp.kubectl("apply", "-f", crd);
  }
  await waitUntil(
    "hydra's CRDs served",
    () => client.list(poolPath()).then(() => true, () => false),
    30_000,
  );
  const api = podApi(client);
  // The simulated nodes exist as Node objects, as real ones do (the controller releases the
  // blocks of nodes that have none).
  for (let i = 0; i < opts.nodes; i++) {
    await client.create("/api/v1/nodes", {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: nodeName(i) },
    });
  }
  if (only.has("hydra")) {
    await cp.createNamespace("bench-hydra");
    const peer = hydraPeer(env, { bin: `${ROOT}/bin`, range: "10.80.0.0/21", network: "bench" });
    results.hydra = await runPeer(peer, api, opts, "bench-hydra");
  }
  if (only.has("hydraNodeProcess")) {
    await cp.createNamespace("bench-hydra-np");
    const peer = hydraPeer(env, {
      bin: `${ROOT}/bin`,
      range: "10.84.0.0/21",
      network: "bench-np",
      transport: "socket",
    });
    results.hydraNodeProcess = await runPeer(peer, api, opts, "bench-hydra-np");
  }
  if (only.has("whereabouts")) {
    await cp.createNamespace("bench-whereabouts");
    const peer = await whereaboutsPeer(env, {
      bin: whereaboutsBin(),
      range: "10.90.0.0/21",
      network: "bench",
    });
    results.whereabouts = await runPeer(peer, api, opts, "bench-whereabouts");
  }
} finally {
  client.close();
  await cp.stop();
  await new Deno.Command("ip", { args: ["netns", "delete", netnsName] }).output();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

const w = results.whereabouts;
const phases = ["create", "recreate", "powercycle"] as const;

/** The targets for one hydra variant (bench/README.md), judged on this run. */
function judged(h: PeerResult | undefined) {
  if (!h) return null;
  const ratio = (p: (typeof phases)[number]) => {
    const a = h[p]?.podsPerSecond;
    const b = w?.[p]?.podsPerSecond;
    return a !== undefined && b ? Math.round((a / b) * 10) / 10 : null;
  };
  return {
    ">= 31 pods/s in create and re-create": (h.create?.podsPerSecond ?? 0) >= 31 &&
      (h.recreate?.podsPerSecond ?? 0) >= 31,
    "x whereabouts (>= 10)": Object.fromEntries(phases.map((p) => [p, ratio(p)])),
    "0 duplicates in every phase": [...phases, "delete" as const].every((p) =>
      h[p]?.duplicates === 0
    ),
    "every power-cycle leak reclaimed within 2 minutes": h.powercycle
      ? h.powercycle.leakedAfterReclaimSeconds !== null &&
        (h.powercycle.leakedAfterReclaimSeconds ?? 0) <= 120
      : false,
  };
}

console.log(JSON.stringify(
  {
    ...results,
    targets: { hydra: judged(results.hydra), hydraNodeProcess: judged(results.hydraNodeProcess) },
    setup: {
      nodes: opts.nodes,
      pods: opts.pods,
      groupSize: opts.groupSize,
      perNode: opts.perNode,
      phaseTimeoutSeconds: opts.phaseTimeoutMs / 1000,
      whereabouts: pinned.WHEREABOUTS_VERSION,
      kubernetes: pinned.KUBERNETES_VERSION,
    },
    machine,
  },
  null,
  2,
));
