/**
 * Router benchmark (JSON on stdout): N nodes, one router in a node
 * namespace.
 *
 * - file: hydra with the static node list (JSON): start to all routes in
 *   the kernel, node update (file replaced) to route change, CPU and RSS at
 *   rest.
 * - kube (--kube): the same with N Node objects in a real kube-apiserver;
 *   the update is a merge patch of a node's InternalIP.
 * - peer (--kube with the xcluster-cni router built, see --peer): the same
 *   measurements of the peer router in the same run, in a fresh namespace.
 *
 * Usage: deno run -A --config deno.json bench/route.ts [--nodes 5000] [--updates 100]
 *          [--kube] [--peer PATH] [--peer-updates 20] [--heap-snapshots DIR]
 *
 * With --heap-snapshots, hydra's router (kube) writes a V8 heap snapshot
 * there at rest, after the figures are taken (tools/heap_summary.ts reads it).
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  atRest,
  type BenchNode,
  countRoutes,
  createBenchNode,
  destroyBenchNode,
  gatewayFor,
  hydraBin,
  nodeEntry,
  pause,
  percentiles,
  podCidr,
  pollUntil,
  pollUntilAsync,
  rssMiB,
  spawnIn,
  stopChild,
  underlayAddress,
} from "./route_lib.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    nodes: { type: "string", default: "5000" },
    updates: { type: "string", default: "100" },
    kube: { type: "boolean", default: false },
    peer: { type: "string" },
    "peer-updates": { type: "string", default: "20" },
    "rest-ms": { type: "string", default: "10000" },
    "heap-snapshots": { type: "string" },
  },
});
const N = Number(flags.nodes);
const UPDATES = Number(flags.updates);
const REST_MS = Number(flags["rest-ms"]);
const PEER = flags.peer ??
  `${Deno.env.get("HOME")}/.cache/hydra-bench/xcluster-cni`;

/** The node updated by the k-th update, and the first address of its CIDR (to look up). */
function target(k: number): { i: number; probe: string } {
  const i = 1 + (k * 97) % (N - 1);
  return { i, probe: podCidr(i).replace(".0/24", ".1") };
}

/**
 * Milliseconds from `t0` until all N-1 routes are in. A full dump costs the
 * machine several ms with thousands of routes, so it polls a few sample
 * destinations (a cheap lookup each) and dumps only once they are all in.
 */
async function startTiming(node: BenchNode, protocol: number, t0: number, timeoutMs: number) {
  const samples = Array.from({ length: 16 }, (_, k) => podCidr(1 + Math.floor(k * (N - 2) / 15)));
  const routed = (cidr: string) => gatewayFor(node, cidr.replace(".0/24", ".1")) !== undefined;
  const ms = await pollUntilAsync(
    () => samples.every(routed) && countRoutes(node, protocol) >= N - 1,
    t0,
    timeoutMs,
  );
  return Math.round(ms);
}

async function benchFile(): Promise<Record<string, unknown>> {
  const node = createBenchNode("file");
  const dir = await Deno.makeTempDir({ prefix: "hydra-bench-route-" });
  let child: Deno.ChildProcess | undefined;
  try {
    const file = `${dir}/nodes.json`;
    const pools = new Array<number>(N).fill(0);
    const write = async () => {
      const text = JSON.stringify({ nodes: pools.map((p, i) => nodeEntry(i, p)) });
      await Deno.writeTextFile(`${file}.tmp`, text);
    };
    await write();
    await Deno.rename(`${file}.tmp`, file);
    const log = `${dir}/router.log`;
    const t0 = performance.now();
    child = spawnIn(node, hydraBin, [
      "route",
      "sync",
      "--nodes-file",
      file,
      "--node-name",
      "node0",
      "--allowed-cidrs",
      "10.0.0.0/8",
      "--health-addr",
      "off",
      "--log-file",
      log,
    ]);
    const initialMs = await startTiming(node, 202, t0, 120_000);
    const firstPass = (await Deno.readTextFile(log)).split("\n")
      .map((l) => (l ? JSON.parse(l) : {}))
      .find((e) => e.msg === "full sync")?.durationMs;
    const rssAfterSync = rssMiB(child.pid);
    await pause(500);
    const latencies: number[] = [];
    for (let k = 0; k < UPDATES; k++) {
      const { i, probe } = target(k);
      pools[i] = 1 - pools[i];
      const want = underlayAddress(i + 2, pools[i]);
      await write();
      const t = performance.now();
      await Deno.rename(`${file}.tmp`, file);
      latencies.push(pollUntil(() => gatewayFor(node, probe) === want, t, 10_000));
      await pause(20);
    }
    const rest = await atRest(child.pid, REST_MS);
    return {
      router: "hydra",
      source: "file (JSON node list)",
      nodes: N,
      initialSyncMs: initialMs,
      firstPassMs: firstPass,
      rssAfterSyncMiB: rssAfterSync,
      updateToRouteMs: percentiles(latencies),
      atRest: rest,
    };
  } finally {
    if (child) await stopChild(child);
    destroyBenchNode(node);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Asks the router for a heap snapshot (SIGUSR2) and waits until its log says it is written. */
async function heapSnapshot(pid: number, log: string): Promise<void> {
  const written = async () => (await Deno.readTextFile(log)).includes("heap snapshot written");
  Deno.kill(pid, "SIGUSR2");
  for (let i = 0; i < 600 && !await written(); i++) await pause(100);
}

interface KubeBench {
  cp: import("../tests/infra/cluster.ts").ControlPlane;
  client: import("../kube/client.ts").KubeClient;
  port: number;
}

async function startCluster(): Promise<KubeBench> {
  const { startControlPlane } = await import("../tests/infra/cluster.ts");
  const { createKubeClient } = await import("../kube/client.ts");
  const { loadKubeconfig } = await import("../kube/kubeconfig.ts");
  const cp = await startControlPlane();
  const client = createKubeClient(await loadKubeconfig(cp.kubeconfigPath), { timeoutMs: 60_000 });
  const port = Number(new URL(cp.server).port);
  const started = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < N) {
      const i = next++;
      const e = nodeEntry(i);
      await client.create("/api/v1/nodes", {
        metadata: { name: e.name },
        spec: { podCIDR: e.podCIDRs[0], podCIDRs: e.podCIDRs },
        status: { addresses: [{ type: "InternalIP", address: e.addresses[0] }] },
      });
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  console.error(
    `[bench] created ${N} Node objects in ${Math.round(performance.now() - started)} ms`,
  );
  return { cp, client, port };
}

async function benchKube(
  kb: KubeBench,
  router: "hydra" | "xcluster-cni",
  updates: number,
): Promise<Record<string, unknown>> {
  const { startRelay } = await import("../tests/route/relay.ts");
  const node = createBenchNode(router === "hydra" ? "kube" : "peer");
  const relay = startRelay(node.path, kb.port);
  const pools = new Array<number>(N).fill(0);
  const log = await Deno.makeTempFile({ prefix: "hydra-bench-route-", suffix: ".log" });
  let child: Deno.ChildProcess | undefined;
  try {
    const protocol = router === "hydra" ? 202 : 203;
    const t0 = performance.now();
    const wall0 = Date.now();
    child = router === "hydra"
      ? spawnIn(node, hydraBin, [
        "route",
        "sync",
        "--kubeconfig",
        kb.cp.kubeconfigPath,
        "--node-name",
        "node0",
        "--allowed-cidrs",
        "10.0.0.0/8",
        "--health-addr",
        "off",
        "--log-file",
        log,
        ...(flags["heap-snapshots"] ? ["--heap-snapshot-dir", flags["heap-snapshots"]] : []),
      ])
      : spawnIn(node, PEER, ["daemon"], {
        PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
        KUBECONFIG: kb.cp.kubeconfigPath,
        NODE_NAME: "node0",
        PROTOCOL: String(protocol),
        LOG_LEVEL: "error",
      });
    const initialMs = await startTiming(node, protocol, t0, 600_000);
    const rssAfterSync = rssMiB(child.pid);
    // Where the time went: until the list was in, and the first full pass.
    const lines = router === "hydra"
      ? (await Deno.readTextFile(log)).split("\n").filter((l) => l).map((l) => JSON.parse(l))
      : [];
    const listed = lines.find((e) => e.msg === "node objects listed");
    const firstPass = lines.find((e) => e.msg === "full sync");
    await pause(router === "hydra" ? 500 : 6000);
    const latencies: number[] = [];
    for (let k = 0; k < updates; k++) {
      const { i, probe } = target(k);
      pools[i] = 1 - pools[i];
      const want = underlayAddress(i + 2, pools[i]);
      const t = performance.now();
      await kb.client.patch(`/api/v1/nodes/node${i}/status`, {
        status: { addresses: [{ type: "InternalIP", address: want }] },
      }, "merge");
      // The relay runs on this event loop: poll without blocking it.
      latencies.push(await pollUntilAsync(() => gatewayFor(node, probe) === want, t, 60_000));
      await pause(20);
    }
    // Put the nodes back for the next router.
    for (let k = 0; k < updates; k++) {
      const { i } = target(k);
      if (pools[i] === 0) continue;
      pools[i] = 0;
      await kb.client.patch(`/api/v1/nodes/node${i}/status`, {
        status: { addresses: [{ type: "InternalIP", address: underlayAddress(i + 2) }] },
      }, "merge");
    }
    const rest = await atRest(child.pid, REST_MS);
    if (router === "hydra" && flags["heap-snapshots"]) await heapSnapshot(child.pid, log);
    return {
      router,
      source: "kube-apiserver (Node objects)",
      nodes: N,
      initialSyncMs: initialMs,
      ...(listed ? { listedAtMs: Date.parse(listed.time) - wall0 } : {}),
      ...(firstPass ? { firstPassMs: firstPass.durationMs } : {}),
      rssAfterSyncMiB: rssAfterSync,
      updateToRouteMs: percentiles(latencies),
      atRest: rest,
    };
  } finally {
    if (child) await stopChild(child);
    await relay.stop();
    destroyBenchNode(node);
    await Deno.remove(log).catch(() => {});
  }
}

async function peerAvailable(): Promise<string | undefined> {
  try {
    await Deno.stat(PEER);
    return undefined;
  } catch {
    return `xcluster-cni router not found at ${PEER}: its Go module is not served by the ` +
      `module proxy; pass --peer <path of an xcluster-cni router binary> to compare with it`;
  }
}

const results: Record<string, unknown>[] = [];
const notes: string[] = [];
results.push(await benchFile());
if (flags.kube) {
  const kb = await startCluster();
  try {
    results.push(await benchKube(kb, "hydra", UPDATES));
    const missing = await peerAvailable();
    if (missing) notes.push(missing);
    else {
      const n = Number(flags["peer-updates"]);
      results.push({ ...(await benchKube(kb, "xcluster-cni", n)), note: `${n} updates` });
    }
  } finally {
    kb.client.close();
    await kb.cp.stop();
  }
}
console.log(JSON.stringify(
  {
    bench: "route",
    machine: { cpus: navigator.hardwareConcurrency, loadavg: Deno.loadavg() },
    targets: { initialSyncMs: 2000, updateToRouteP99Ms: 50 },
    results,
    notes,
  },
  null,
  2,
));
