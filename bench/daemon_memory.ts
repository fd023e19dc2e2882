/**
 * Node daemon memory benchmark: the peak resident memory of `hydra daemon`
 * through a burst of concurrent pod starts, with 100 and with 1,000 other
 * pods on the node, against a real kube-apiserver. Prints JSON.
 *
 * Multus thick's daemon goes through the same burst at each level, after
 * hydra's (a fresh one each time, its shim exec'd with the conf it wrote,
 * the reference plugins for the same three networks).
 *
 * Method, for each level (a fresh daemon each time, in one run):
 * 1. The node has `level` pods bound to it in the API server, shaped like
 *    pods a kubelet runs (two containers with env, mounts and resources,
 *    labels, an owner, a status with conditions and container statuses,
 *    the API server's managed fields), plus every NAD.
 * 2. `hydra daemon` starts in the node namespace and lists them; its memory
 *    once synced is the "rest" figure.
 * 3. `--burst` more pods are created and their CNI ADDs exec'd all at once
 *    (the meta-CNI with `daemonExec`, the daemon running each whole
 *    invocation with hydra-bridge + hydra-ipam: cluster network and two NAD
 *    networks per pod, as deployed), each checked; then their DELs, all at
 *    once. The daemon's peak (VmHWM) over its whole life is the figure.
 *
 * With `--heap-snapshots DIR` the daemon writes a heap snapshot there once
 * synced and once after the burst's ADDs (SIGUSR2; see
 * tools/heap_summary.ts to read them); those runs' figures include the
 * snapshots' own cost.
 *
 * `--v8-flags` adds V8 flags to the daemon's (through DENO_V8_FLAGS) and
 * `--env NAME=VALUE` (repeatable) sets its environment, to try settings
 * before making them the launcher's.
 *
 *   deno run -A bench/daemon_memory.ts [--levels 100,1000] [--burst 100] [--heap-snapshots DIR]
 *                                      [--v8-flags FLAGS] [--env NAME=VALUE]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startControlPlane } from "../tests/infra/cluster.ts";
import { spawnDaemon, stopProcessGroup } from "../tests/infra/process.ts";
import { nodeAgentKubeconfig } from "../tests/kube/helpers.ts";
import { API_ANYWHERE_ARGS, apiIntoNetns, jsonKubeconfig } from "../tests/meta_kube/api_access.ts";
import { connectNodeDaemon } from "../daemonclient/client.ts";
import { closeHandle, listLinks, openHandle } from "../netlink/mod.ts";
import { machineInfo } from "./machine.ts";
import { getFromEndpoint } from "../pkg/http.ts";
import { createPod, createWorld, deletePod, destroyWorld, type PodNetns } from "./world.ts";
import { bridgeNetwork, processMemory, registerNode, runKubeCni } from "./kube_mode_lib.ts";
import { fatPod } from "./daemon_memory_lib.ts";
import { type MultusThick, startMultusThick } from "../tests/infra/multus_thick.ts";
import { havePeers, referencePluginDir } from "../tests/infra/peers.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    levels: { type: "string", default: "100,1000" },
    burst: { type: "string", default: "100" },
    "heap-snapshots": { type: "string" },
    "v8-flags": { type: "string" },
    env: { type: "string", multiple: true },
  },
});
const LEVELS = flags.levels.split(",").map(Number);
const BURST = Number(flags.burst);
const SNAPSHOTS = flags["heap-snapshots"];
const PEAK_TARGET_MIB = 80;
const GROWTH_TARGET = 0.1;
const hydraBin = fileURLToPath(new URL("../bin", import.meta.url));
const encoder = new TextEncoder();

function progress(msg: string): void {
  console.error(`[bench daemon_memory] ${msg}`);
}

const mib = (kib: number) => Math.round(kib / 1024 * 10) / 10;

/** Resident memory of a process now, KiB: in all, anonymous, and file-backed (its executable's pages). */
function residentKiB(pid: number): { rss: number; anon: number; file: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
  return { rss: kib("VmRSS"), anon: kib("RssAnon"), file: kib("RssFile") };
}

/**
 * Samples a process's resident memory every 20 ms until stopped; the
 * largest of each kind. VmHWM gives the peak in all, not how it splits.
 */
function sampleResident(pid: number): () => { rss: number; anon: number; file: number } {
  const max = { rss: 0, anon: 0, file: 0 };
  const take = () => {
    try {
      const now = residentKiB(pid);
      for (const k of ["rss", "anon", "file"] as const) max[k] = Math.max(max[k], now[k]);
    } catch {
      // gone
    }
  };
  take();
  const timer = setInterval(take, 20);
  return () => {
    clearInterval(timer);
    take();
    return max;
  };
}

/** Creates pods `from`..`to`-1 bound to the node, 20 requests at a time. */
async function createPods(
  api: { must(m: string, p: string, b?: unknown): Promise<unknown> },
  ns: string,
  nodeName: string,
  prefix: string,
  from: number,
  to: number,
  networks?: string,
): Promise<{ name: string; uid: string }[]> {
  const made: { name: string; uid: string }[] = [];
  for (let i = from; i < to; i += 20) {
    const batch = [];
    for (let j = i; j < Math.min(to, i + 20); j++) {
      batch.push((async () => {
        const pod = fatPod(ns, `${prefix}-${j}`, nodeName, j, networks);
        const created = await api.must("POST", `/api/v1/namespaces/${ns}/pods`, pod) as {
          metadata: { uid: string; resourceVersion: string };
        };
        await api.must("PUT", `/api/v1/namespaces/${ns}/pods/${pod.metadata.name}/status`, {
          ...pod,
          metadata: { ...pod.metadata, resourceVersion: created.metadata.resourceVersion },
        });
        return { name: pod.metadata.name, uid: created.metadata.uid };
      })());
    }
    made.push(...await Promise.all(batch));
  }
  return made;
}

function podLinks(path: string): string[] {
  const h = openHandle({ netnsPath: path });
  try {
    return listLinks(h).map((l) => l.name).filter((n) => n !== "lo").sort();
  } finally {
    closeHandle(h);
  }
}

async function waitSynced(socket: string, logPath: string): Promise<number> {
  const t0 = performance.now();
  for (let i = 0;; i++) {
    const conn = await connectNodeDaemon(socket).catch(() => undefined);
    const res = conn ? await conn.call({ op: "ping" }, 2_000).catch(() => undefined) : undefined;
    conn?.close();
    if (res?.ok && (res.body as { synced: boolean }).synced) return performance.now() - t0;
    if (i > 600) throw new Error(`hydra daemon did not sync: ${await Deno.readTextFile(logPath)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The daemon's extra environment: --v8-flags and --env. */
function daemonEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  if (flags["v8-flags"]) env.DENO_V8_FLAGS = flags["v8-flags"];
  for (const kv of flags.env ?? []) {
    const i = kv.indexOf("=");
    if (i < 1) throw new Error(`--env wants NAME=VALUE, got ${kv}`);
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return env;
}

/**
 * Throws unless the daemon ran `n` invocations (a burst's ADDs and DELs): an
 * exec'd meta-CNI no daemon answers runs the invocation itself, which would
 * leave the daemon's figures without the burst.
 */
async function ranInDaemon(metricsSocket: string, n: number): Promise<void> {
  const metrics = (await getFromEndpoint({ transport: "unix", path: metricsSocket }, "/metrics"))
    .body;
  const ran = Number(
    /^hydra_daemon_requests_total\{op="cni",result="ok"\} (\S+)/m.exec(metrics)?.[1] ?? 0,
  );
  if (ran < n) throw new Error(`only ${ran} of ${n} daemonExec invocations ran in the daemon`);
}

/** With --heap-snapshots: asks the daemon for a snapshot and waits until it is written. */
async function snapshot(pid: number, logPath: string): Promise<void> {
  if (!SNAPSHOTS) return;
  const count = async () =>
    (await Deno.readTextFile(logPath)).split("heap snapshot written").length - 1;
  const before = await count();
  Deno.kill(pid, "SIGUSR2");
  for (let i = 0; i < 600 && await count() === before; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What one burst runs against: the daemon measured and the plugin a runtime execs. */
interface BurstTarget {
  pid: number;
  exe: string;
  path: string[];
  config: Uint8Array;
  /** The burst pods' networks annotation. */
  networks: string;
  /** Called at rest and after the ADDs (heap snapshots). */
  snapshot?: () => Promise<void>;
}

/**
 * The daemon at rest, then `BURST` pods created and their ADDs exec'd all at
 * once (each checked), then their DELs: its memory at rest, after the ADDs,
 * the peak, and how the burst's largest samples split.
 */
async function burstOf(
  cp: Awaited<ReturnType<typeof startControlPlane>>,
  world: Awaited<ReturnType<typeof createWorld>>,
  ns: string,
  nodeName: string,
  prefix: string,
  t: BurstTarget,
): Promise<Record<string, number>> {
  await new Promise((r) => setTimeout(r, 2_000));
  const rest = await processMemory(t.pid);
  const restSplit = residentKiB(t.pid);
  await t.snapshot?.();
  progress(`${prefix}: at rest ${mib(rest.nowKiB)} MiB; burst`);
  const burst = await createPods(cp.api, ns, nodeName, `burst-${prefix}`, 0, BURST, t.networks);
  const netnses: PodNetns[] = burst.map(() => createPod(world));
  try {
    const calls = burst.map((p, i) => ({
      exe: t.exe,
      containerId: `${prefix}-${i}-${world.id}`,
      netns: netnses[i].path,
      path: t.path,
      config: t.config,
      pod: { namespace: ns, ...p },
    }));
    const sampling = sampleResident(t.pid);
    const t0 = performance.now();
    const adds = await Promise.all(
      calls.map((c) => runKubeCni(world.nodePath, { ...c, command: "ADD" })),
    );
    const addWallMs = performance.now() - t0;
    for (const [i, a] of adds.entries()) {
      if (a.code !== 0) throw new Error(`ADD of ${calls[i].pod.name}: ${a.stdout}${a.stderr}`);
      const got = podLinks(netnses[i].path).join();
      if (got !== "eth0,net1,net2") throw new Error(`${calls[i].pod.name} has ${got}`);
    }
    const afterAdd = await processMemory(t.pid);
    await t.snapshot?.();
    const dels = await Promise.all(
      calls.map((c) => runKubeCni(world.nodePath, { ...c, command: "DEL" })),
    );
    for (const [i, r] of dels.entries()) {
      if (r.code !== 0) throw new Error(`DEL of ${calls[i].pod.name}: ${r.stdout}${r.stderr}`);
    }
    const end = await processMemory(t.pid);
    const sampled = sampling();
    return {
      burst: BURST,
      restRssMiB: mib(rest.nowKiB),
      restAnonMiB: mib(restSplit.anon),
      restFileMiB: mib(restSplit.file),
      // The peak before the burst: the start and the first list of the node's pods.
      peakBeforeBurstMiB: mib(rest.peakKiB),
      afterBurstAddRssMiB: mib(afterAdd.nowKiB),
      // The peak through the starts alone, before the DELs.
      peakThroughAddsMiB: mib(afterAdd.peakKiB),
      peakRssMiB: mib(end.peakKiB),
      // From samples every 20 ms during the burst: how the peak splits.
      burstMaxAnonMiB: mib(sampled.anon),
      burstMaxFileMiB: mib(sampled.file),
      burstAddWallMs: Math.round(addWallMs),
    };
  } finally {
    for (const n of netnses) deletePod(world, n);
    for (const p of burst) {
      await cp.api.must("DELETE", `/api/v1/namespaces/${ns}/pods/${p.name}`, undefined);
    }
  }
}

/**
 * Multus thick for the same node (tests/infra/multus_thick.ts, as its
 * DaemonSet runs it), its cluster network the same bridge network with the
 * reference plugins, and NADs blue-ref and green-ref beside hydra's;
 * undefined when multus-daemon is not built.
 */
async function multusThickConf(
  cp: Awaited<ReturnType<typeof startControlPlane>>,
  world: Awaited<ReturnType<typeof createWorld>>,
  server: string,
  nodeName: string,
  ns: string,
): Promise<{ start(): Promise<MultusThick> } | undefined> {
  if (!havePeers("multus-daemon", "multus-shim")) return undefined;
  const confDir = `${world.dir}/thick-net.d`;
  const shimDir = `${world.dir}/thick-bin`;
  await Deno.mkdir(confDir);
  await Deno.mkdir(shimDir);
  const ref = (name: string, bridge: string, subnet: string, gw = false) =>
    bridgeNetwork(
      "reference",
      name,
      bridge,
      subnet,
      `${world.dir}/ipam`,
      gw ? { isGateway: true } : {},
    );
  await Deno.writeTextFile(
    `${confDir}/10-cluster.conf`,
    JSON.stringify(ref("cluster-ref", `hrc${world.id}`, "10.220.0.0/20", true)),
  );
  for (const [j, color] of ["blue", "green"].entries()) {
    await cp.api.must(
      "POST",
      `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
      {
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name: `${color}-ref`, namespace: ns },
        spec: {
          config: JSON.stringify(
            ref(`${color}-ref`, `hr${color[0]}${world.id}`, `10.${221 + j}.0.0/20`),
          ),
        },
      },
    );
  }
  return {
    start: () =>
      startMultusThick(cp, {
        cniConfDir: confDir,
        shimBinDir: shimDir,
        netns: world.nodeNetns,
        server,
        nodeName,
        config: { logLevel: "error" },
      }),
  };
}

const machine = await machineInfo();
const cp = await startControlPlane({ apiserverArgs: API_ANYWHERE_ARGS });
const world = await createWorld();
const levels: Record<string, unknown>[] = [];
const thickLevels: Record<string, unknown>[] = [];
try {
  const dir = world.dir;
  const nodeServer = await apiIntoNetns(world.nodeNetns, cp.server);
  const ns = `bench-${world.id}`;
  await cp.createNamespace(ns);
  const account = await nodeAgentKubeconfig(cp, ns);
  const kubeconfig = await jsonKubeconfig(account, `${dir}/node.kubeconfig`, nodeServer);
  const nodeName = `bench-${world.id}`;
  await registerNode(cp.api, nodeName);
  const cluster = bridgeNetwork(
    "builtin",
    "cluster",
    `hkc${world.id}`,
    "10.200.0.0/20",
    `${dir}/ipam`,
    { isGateway: true },
  );
  const clusterPath = `${dir}/cluster.conf`;
  await Deno.writeTextFile(clusterPath, JSON.stringify(cluster));
  for (const [j, color] of ["blue", "green"].entries()) {
    const conf = bridgeNetwork(
      "builtin",
      color,
      `hk${color[0]}${world.id}`,
      `10.${210 + j}.0.0/20`,
      `${dir}/ipam`,
    );
    await cp.api.must(
      "POST",
      `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
      {
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name: color, namespace: ns },
        spec: { config: JSON.stringify(conf) },
      },
    );
  }
  const socket = `${dir}/daemon.sock`;
  const metaConfObject = {
    cniVersion: "1.0.0",
    name: "hydra",
    type: "hydra",
    kubeconfig,
    clusterNetwork: clusterPath,
    cacheDir: `${dir}/hydra-cache`,
    confDir: `${dir}/confdir`,
    daemonSocket: socket,
    daemonExec: true,
    apiTimeout: 10,
    // The NADs keep their state (IPAM data) in the run's scratch folder.
    nadPathRoots: { state: [dir] },
  };
  const metaConf = encoder.encode(JSON.stringify(metaConfObject));
  // The daemon runs a daemonExec invocation only with a conf it finds in the node's conf folder.
  const nodeConfDir = `${dir}/node-net.d`;
  await Deno.mkdir(nodeConfDir);
  await Deno.writeTextFile(`${nodeConfDir}/00-hydra.conf`, JSON.stringify(metaConfObject));

  const multusThick = await multusThickConf(cp, world, nodeServer, nodeName, ns);
  let resident = 0;
  for (const level of LEVELS) {
    progress(`${level} pods on the node: creating them`);
    await createPods(cp.api, ns, nodeName, "resident", resident, level);
    resident = Math.max(resident, level);
    const logPath = `${dir}/daemon-${level}.log`;
    const metricsSocket = `${dir}/daemon-metrics-${level}.sock`;
    const d = spawnDaemon("hydra daemon", "ip", {
      args: [
        "netns",
        "exec",
        world.nodeNetns,
        `${hydraBin}/hydra`,
        "daemon",
        "--kubeconfig",
        kubeconfig,
        "--node-name",
        nodeName,
        "--socket",
        socket,
        "--listen",
        `unix:${metricsSocket}`,
        "--spool-dir",
        `${dir}/hydra-cache/reports`,
        "--cni-conf-dir",
        nodeConfDir,
        "--cni-bin-dir",
        hydraBin,
        "--log-level",
        SNAPSHOTS ? "info" : "warn",
        ...(SNAPSHOTS ? ["--heap-snapshot-dir", SNAPSHOTS] : []),
      ],
      logPath,
      env: daemonEnv(),
    });
    try {
      const syncMs = await waitSynced(socket, logPath);
      levels.push({
        podsOnNode: level,
        syncMs: Math.round(syncMs),
        ...await burstOf(cp, world, ns, nodeName, `hydra${level}`, {
          pid: d.pid,
          exe: `${hydraBin}/hydra`,
          path: [hydraBin],
          config: metaConf,
          networks: "blue,green",
          snapshot: () => snapshot(d.pid, logPath),
        }),
      });
      await ranInDaemon(metricsSocket, 2 * BURST);
    } finally {
      await stopProcessGroup(d.pid);
      await d.status;
    }
    if (!multusThick) continue;
    const thick = await multusThick.start();
    try {
      thickLevels.push({
        podsOnNode: level,
        ...await burstOf(cp, world, ns, nodeName, `thick${level}`, {
          pid: thick.pid,
          exe: thick.shimPath,
          path: [referencePluginDir()],
          config: await Deno.readFile(thick.confPath),
          networks: "blue-ref,green-ref",
        }),
      });
    } finally {
      await thick.stop();
    }
  }
  const peaks = levels.map((l) => l.peakRssMiB as number);
  const growth = peaks.length > 1 ? peaks[peaks.length - 1] / peaks[0] - 1 : 0;
  console.log(JSON.stringify(
    {
      bench: "daemon_memory",
      machine,
      setup: {
        ...(Object.keys(daemonEnv()).length ? { daemonEnv: daemonEnv() } : {}),
        nad: "2 NAD networks + the cluster network (conf file), hydra-bridge + hydra-ipam",
        mode: "meta-CNI with daemonExec: the daemon runs every invocation",
      },
      levels,
      multusThick: thickLevels.length
        ? {
          what: "Multus thick's daemon through the same burst (its shim exec'd with the conf " +
            "its daemon wrote, reference bridge + host-local for the same three networks)",
          levels: thickLevels,
        }
        : "not measured: multus-daemon is not built (tests/infra/build-peers.sh)",
      targets: [
        {
          what: `daemon peak ≤ ${PEAK_TARGET_MIB} MiB at every level`,
          met: peaks.every((p) => p <= PEAK_TARGET_MIB),
        },
        {
          what: `peak grows ≤ ${GROWTH_TARGET * 100} % from the first level to the last`,
          growthPercent: Math.round(growth * 1000) / 10,
          met: growth <= GROWTH_TARGET,
        },
      ],
    },
    null,
    2,
  ));
} finally {
  await destroyWorld(world);
  await cp.stop();
}
