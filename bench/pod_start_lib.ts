/**
 * The end-to-end pod start benchmark (bench/pod_start.ts runs it; a short
 * run is a test in tests/bench/pod_start_test.ts): Pods created through a
 * real API server, started by a real kubelet and containerd, each with the
 * default network and two NAD networks, in waves of `wave` Pods created at
 * once. A sample is the time from a Pod's creation to its Ready condition.
 *
 * Each arm gets its own containerd and kubelet (one node at a time, the
 * same control plane), the same NADs (reference bridge + host-local) and
 * the same default network (reference bridge + host-local, a conf file):
 * see pod_start_arms.ts for what each arm runs. After each wave every Pod's
 * network-status is checked (what the arm writes there: see
 * `statusEntries`), then the wave is deleted and its deletion awaited,
 * outside the timed region.
 *
 * CPU per pod is the user+system time, over the timed waves (ADD and DEL),
 * of every process the arm started: the plugins containerd exec'd (its
 * reaped children) and each long-running process the arm runs, with its
 * children. RSS is each long-running process's peak (VmHWM).
 *
 * @module
 */

import { createKubeClient, type KubeClient } from "../kube/client.ts";
import { loadKubeconfig } from "../kube/kubeconfig.ts";
import type { Pod } from "../kube/objects.ts";
import { watch } from "../kube/watch.ts";
import type { ControlPlane } from "../tests/infra/cluster.ts";
import { startContainerd } from "../tests/infra/containerd.ts";
import { startKubelet } from "../tests/infra/kubelet.ts";
import { referencePluginDir, versions } from "../tests/infra/peers.ts";
import { poll } from "../tests/infra/process.ts";
import { type ArmContext, type ArmName, type ArmProcess, ARMS } from "./pod_start_arms.ts";
import { percentile } from "./stats.ts";

/** One arm's figures (times in ms). */
export interface ArmResult {
  description: string;
  p50Ms: number;
  p99Ms: number;
  /** p50 minus the baseline's p50 (null for the baseline itself or without one). */
  addedP50Ms: number | null;
  podsPerSecond: number;
  cpuMsPerPod: number;
  /** Largest peak RSS of the arm's long-running processes; null when it runs none. */
  rssMiB: number | null;
  rssByProcessMiB: Record<string, number>;
  /** 1-minute load average before and after the arm's timed waves. */
  loadAverage: [number, number];
}

/** Settings of a run. */
export interface PodStartOptions {
  /** Timed pods per arm. */
  pods: number;
  /** Pods created at once. */
  wave: number;
  /** Untimed waves first, per arm. */
  warmupWaves: number;
  arms: ArmName[];
  progress?: (msg: string) => void;
}

const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";

/** user+system CPU of a process, with (`children`) that of the children it reaped, in ms. */
function cpuMs(pid: number, self: boolean): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  // Fields 14-17 (1-based): utime, stime, cutime, cstime, in clock ticks (100 per second).
  const ticks = (self ? f[11] + f[12] : 0) + f[13] + f[14];
  return ticks * 10;
}

function peakMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Math.round(Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024 * 10) / 10;
}

function isReady(pod: Pod): boolean {
  const conditions = (pod.status?.conditions ?? []) as { type: string; status: string }[];
  return conditions.some((c) => c.type === "Ready" && c.status === "True");
}

/** Ready times (performance.now()) of the namespace's pods, by name, from one watch. */
function watchReady(client: KubeClient, ns: string) {
  const readyAt = new Map<string, number>();
  const handle = watch<Pod>(client, `/api/v1/namespaces/${ns}/pods`, {}, (ev) => {
    const now = performance.now();
    if (ev.type === "ADDED" || ev.type === "MODIFIED") {
      const name = ev.object.metadata.name;
      if (!readyAt.has(name) && isReady(ev.object)) readyAt.set(name, now);
    }
  });
  return { readyAt, stop: () => handle.stop() };
}

/** The pod manifest of every arm: a pause container asking for the two NADs. */
function podManifest(ns: string, name: string, nodeName: string) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace: ns, annotations: { [NETWORKS]: "blue,green" } },
    spec: {
      nodeName,
      terminationGracePeriodSeconds: 0,
      containers: [{ name: "main", image: versions().PAUSE_IMAGE, imagePullPolicy: "Never" }],
    },
  };
}

/** Checks every pod of a wave shows the networks its arm attaches. */
async function checkWave(cp: ControlPlane, ns: string, names: string[], entries: number) {
  for (const name of names) {
    const pod = await cp.api.must("GET", `/api/v1/namespaces/${ns}/pods/${name}`) as Pod;
    const status = JSON.parse(pod.metadata.annotations?.[NETWORK_STATUS] ?? "[]") as {
      name: string;
    }[];
    if (status.length !== entries) {
      throw new Error(`pod ${name} is Ready with network-status ${JSON.stringify(status)}`);
    }
  }
}

/** Addresses host-local holds under `ipamDir` (every arm's networks use it there). */
async function reservations(ipamDir: string): Promise<number> {
  let n = 0;
  try {
    for await (const net of Deno.readDir(ipamDir)) {
      if (!net.isDirectory) continue;
      for await (const f of Deno.readDir(`${ipamDir}/${net.name}`)) {
        if (/^[0-9a-f.:]+$/.test(f.name)) n++;
      }
    }
  } catch {
    // nothing allocated yet
  }
  return n;
}

/**
 * Deletes a wave's pods and waits until the API server has none of them and
 * every address of the arm is released (their networks' DELs have run: the
 * kubelet may stop a sandbox after the Pod object is gone).
 */
async function deleteWave(
  cp: ControlPlane,
  ipamDir: string,
  ns: string,
  names: string[],
): Promise<void> {
  await Promise.all(names.map((n) => cp.api.must("DELETE", `/api/v1/namespaces/${ns}/pods/${n}`)));
  const gone = await poll(
    async () => {
      const list = await cp.api.must("GET", `/api/v1/namespaces/${ns}/pods`) as { items: [] };
      return list.items.length === 0;
    },
    120_000,
    100,
  );
  if (!gone) throw new Error(`pods of ${ns} not deleted within 120 s`);
  const released = await poll(async () => await reservations(ipamDir) === 0, 120_000, 50);
  if (!released) throw new Error(`addresses of ${ns} not released within 120 s`);
}

/** Creates one wave at once; returns each pod's creation time. */
async function createWave(
  cp: ControlPlane,
  ns: string,
  names: string[],
  nodeName: string,
): Promise<Map<string, number>> {
  const created = new Map<string, number>();
  await Promise.all(names.map(async (name) => {
    created.set(name, performance.now());
    await cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, podManifest(ns, name, nodeName));
  }));
  return created;
}

interface Sampled {
  ms: number[];
  /** Sum over waves of first creation to last Ready. */
  busyMs: number;
}

/** Runs the waves of one arm on a started node; returns the timed samples. */
async function runWaves(
  ctx: ArmContext,
  client: KubeClient,
  opts: PodStartOptions,
  statusEntries: number,
  onTimedStart: () => void,
): Promise<Sampled> {
  const ready = watchReady(client, ctx.ns);
  const out: Sampled = { ms: [], busyMs: 0 };
  try {
    const waves = opts.warmupWaves + Math.ceil(opts.pods / opts.wave);
    let seq = 0;
    for (let w = 0; w < waves; w++) {
      const timed = w >= opts.warmupWaves;
      if (w === opts.warmupWaves) onTimedStart();
      const size = timed ? Math.min(opts.wave, opts.pods - out.ms.length) : opts.wave;
      const names = Array.from({ length: size }, () => `p${seq++}`);
      const created = await createWave(ctx.cp, ctx.ns, names, ctx.nodeName);
      const all = await poll(() => names.every((n) => ready.readyAt.has(n)), 180_000, 10);
      if (!all) {
        const late = names.filter((n) => !ready.readyAt.has(n));
        throw new Error(`${ctx.arm}: pods ${late} not Ready within 180 s`);
      }
      if (timed) {
        for (const n of names) out.ms.push(ready.readyAt.get(n)! - created.get(n)!);
        const first = Math.min(...names.map((n) => created.get(n)!));
        const last = Math.max(...names.map((n) => ready.readyAt.get(n)!));
        out.busyMs += last - first;
      }
      await checkWave(ctx.cp, ctx.ns, names, statusEntries);
      await deleteWave(ctx.cp, ctx.ipamDir, ctx.ns, names);
      opts.progress?.(`${ctx.arm}: wave ${w + 1}/${waves}${timed ? "" : " (warm-up)"}`);
    }
  } finally {
    await ready.stop();
  }
  return out;
}

const round = (x: number) => Math.round(x * 10) / 10;

/** Sets up one arm's node, runs its waves, tears it all down. */
async function runArm(
  cp: ControlPlane,
  client: KubeClient,
  arm: ArmName,
  opts: PodStartOptions,
): Promise<Omit<ArmResult, "addedP50Ms">> {
  const spec = ARMS[arm];
  const dir = await Deno.makeTempDir({ prefix: `hydra-podstart-${arm}-` });
  const processes: ArmProcess[] = [];
  try {
    const ctx = await spec.prepare(cp, arm, dir);
    const ctd = await startContainerd({
      cniConfDir: ctx.confDir,
      cniBinDirs: [...ctx.binDirs, referencePluginDir()],
    });
    try {
      const kubelet = await startKubelet(cp, ctd);
      try {
        ctx.nodeName = kubelet.nodeName;
        processes.push(...await spec.start(ctx, ctd));
        const pids = () => [
          { pid: ctd.record.pid, self: false },
          ...processes.map((p) => ({ pid: p.pid, self: true })),
        ];
        const cpuNow = () => pids().reduce((s, p) => s + cpuMs(p.pid, p.self), 0);
        let cpu0 = 0;
        let load0 = 0;
        const sampled = await runWaves(ctx, client, opts, spec.statusEntries, () => {
          cpu0 = cpuNow();
          load0 = Deno.loadavg()[0];
        });
        const cpu = cpuNow() - cpu0;
        // Every pod, warm-up waves included, was started and deleted.
        await spec.check?.(ctx, sampled.ms.length + opts.warmupWaves * opts.wave);
        const sorted = [...sampled.ms].sort((a, b) => a - b);
        const rssByProcessMiB = Object.fromEntries(processes.map((p) => [p.name, peakMiB(p.pid)]));
        const peaks = Object.values(rssByProcessMiB);
        return {
          description: spec.description,
          p50Ms: round(percentile(sorted, 50)),
          p99Ms: round(percentile(sorted, 99)),
          podsPerSecond: Math.round(sorted.length / (sampled.busyMs / 1000) * 100) / 100,
          cpuMsPerPod: round(cpu / sorted.length),
          rssMiB: peaks.length ? Math.max(...peaks) : null,
          rssByProcessMiB,
          loadAverage: [load0, Deno.loadavg()[0]],
        };
      } finally {
        for (const p of processes.reverse()) await p.stop().catch(() => {});
        await kubelet.stop();
      }
    } finally {
      await ctd.stop();
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Runs every arm in turn against one control plane. */
export async function runPodStart(
  cp: ControlPlane,
  opts: PodStartOptions,
): Promise<Record<string, ArmResult>> {
  const client = createKubeClient(await loadKubeconfig(cp.kubeconfigPath), { timeoutMs: 30_000 });
  const arms: Record<string, ArmResult> = {};
  try {
    for (const arm of opts.arms) {
      opts.progress?.(`${arm}: starting its node`);
      const r = await runArm(cp, client, arm, opts);
      arms[arm] = { ...r, addedP50Ms: null };
    }
  } finally {
    client.close();
  }
  const base = arms.default;
  if (base) {
    for (const [name, r] of Object.entries(arms)) {
      if (name !== "default") r.addedP50Ms = round(r.p50Ms - base.p50Ms);
    }
  }
  return arms;
}
