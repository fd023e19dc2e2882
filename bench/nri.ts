/**
 * NRI benchmark: the time `hydra nri serve` adds to `crictl runp` when it
 * attaches two networks (hydra-bridge + hydra-ipam, hydra-macvlan +
 * hydra-ipam) beside the runtime's default CNI, and the daemon's memory,
 * measured against the same containerd without the plugin in one run.
 * Prints one JSON document on stdout (progress on stderr).
 *
 * Usage: deno run -A bench/nri.ts [--pods N] [--blocks N] [--warmup N]
 *
 * Method: one real containerd (CRI + NRI, reference bridge + host-local as
 * its default CNI) and the tests' NRI world (tests/nri/serve_world.ts).
 * Three arms, run in alternating blocks so background load falls on all
 * alike: `baseline` (no plugin connected), then hydra is started and `idle`
 * (the pod selects nothing: the NRI round trip alone) and `attach2` (the pod
 * selects two networks) alternate pod by pod. Each sample is one `crictl runp`, timed from spawn to exit;
 * the sandbox is then checked (two extra interfaces exactly when expected)
 * and removed, outside the timed region. hydra is restarted for every
 * block it serves. Its own attach time per pod comes from its log. RSS is
 * the daemon's (VmRSS at the end, VmHWM peak) after all attach blocks of
 * its last run.
 *
 * Needs root and the built peers (tests/infra/build-peers.sh).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { uniqueName } from "../tests/helpers/netns.ts";
import {
  extraLinks,
  type HydraProcess,
  type NriWorld,
  requireNriPeers,
  withNriWorld,
} from "../tests/nri/serve_world.ts";
import { machineInfo } from "./machine.ts";
import { summarize, type Summary } from "./stats.ts";

type Arm = "baseline" | "idle" | "attach2";

const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const P99_ADDED_TARGET_MS = 20;
const RSS_TARGET_MB = 80;

function progress(msg: string): void {
  console.error(`[bench nri] ${msg}`);
}

/** One timed `crictl runp`; returns ms and the sandbox id. */
async function timedRunp(
  w: NriWorld,
  name: string,
  annotations: Record<string, string>,
): Promise<{ ms: number; id: string }> {
  const config = join(w.tmp, `${name}.json`);
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      metadata: { name, namespace: "nri-bench", uid: crypto.randomUUID() },
      annotations,
      log_directory: join(w.tmp, "logs", name),
      linux: { cgroup_parent: w.ctd.cgroupParent },
    }),
  );
  const t0 = performance.now();
  const id = (await w.ctd.crictl("runp", config)).trim();
  const ms = performance.now() - t0;
  await Deno.remove(config);
  return { ms, id };
}

/** Checks the sandbox got exactly what the arm promises, then removes it. */
async function verifyAndRemove(w: NriWorld, arm: Arm, id: string): Promise<void> {
  const extra = [...extraLinks(await w.addrs(await w.netnsOf(id))).keys()].sort();
  const want = arm === "attach2" ? ["net1", "net2"] : [];
  if (extra.join() !== want.join()) {
    throw new Error(`${arm}: sandbox ${id} has extra interfaces [${extra}], expected [${want}]`);
  }
  await w.ctd.crictl("stopp", id);
  await w.ctd.crictl("rmp", id);
}

function memory(pid: number): { rssMiB: number; peakMiB: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s*(\\d+)`, "m").exec(status)?.[1]);
  const mib = (k: number) => Math.round((k / 1024) * 10) / 10;
  return { rssMiB: mib(kib("VmRSS")), peakMiB: mib(kib("VmHWM")) };
}

function attachTimes(hydra: HydraProcess): number[] {
  return hydra.logLines()
    .filter((l) => l.msg === "networks attached" && typeof l.ms === "number")
    .map((l) => l.ms as number);
}

interface Options {
  pods: number;
  blocks: number;
  warmup: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      pods: { type: "string", default: "100" },
      blocks: { type: "string", default: "4" },
      warmup: { type: "string", default: "5" },
    },
  });
  const n = (v: string | undefined, min: number) => {
    const x = Number(v);
    if (!Number.isInteger(x) || x < min) throw new Error(`bad number ${v}`);
    return x;
  };
  return { pods: n(values.pods, 1), blocks: n(values.blocks, 1), warmup: n(values.warmup, 0) };
}

async function main(): Promise<number> {
  const opts = parseOptions();
  try {
    requireNriPeers();
  } catch (err) {
    console.log(JSON.stringify({ bench: "nri", skipped: (err as Error).message }));
    return 0;
  }
  const machine = await machineInfo();
  const samples: Record<Arm, number[]> = { baseline: [], idle: [], attach2: [] };
  const daemonAttachMs: number[] = [];
  let mem = { rssMiB: 0, peakMiB: 0 };
  const perBlock = Math.ceil(opts.pods / opts.blocks);

  await withNriWorld(async (w) => {
    const runArm = async (arm: Arm, count: number, record: boolean) => {
      const annotations: Record<string, string> = arm === "attach2"
        ? { [NETWORKS]: "blue,red" }
        : {};
      for (let i = 0; i < count; i++) {
        const { ms, id } = await timedRunp(w, uniqueName(arm.slice(0, 4)), annotations);
        await verifyAndRemove(w, arm, id);
        if (record) samples[arm].push(ms);
      }
    };
    // Warm-up of every arm (image, CNI caches, the daemon's first attach).
    await runArm("baseline", opts.warmup, false);
    let hydra = await w.startHydra(["--log-level=info"]);
    await runArm("idle", opts.warmup, false);
    await runArm("attach2", opts.warmup, false);
    const warmAttaches = attachTimes(hydra).length;
    await hydra.terminate();
    for (let block = 0; block < opts.blocks; block++) {
      const quota = (arm: Arm) => Math.min(perBlock, opts.pods - samples[arm].length);
      progress(`block ${block + 1}/${opts.blocks}`);
      await runArm("baseline", quota("baseline"), true);
      hydra = await w.startHydra(["--log-level=info"]);
      // The two plugin arms alternate pod by pod, in a rotating order.
      const want: Record<Arm, number> = {
        baseline: 0,
        idle: quota("idle"),
        attach2: quota("attach2"),
      };
      for (let i = 0; i < Math.max(want.idle, want.attach2); i++) {
        const order: Arm[] = (block + i) % 2 ? ["attach2", "idle"] : ["idle", "attach2"];
        for (const arm of order) if (i < want[arm]) await runArm(arm, 1, true);
      }
      daemonAttachMs.push(...attachTimes(hydra));
      mem = memory(hydra.daemon.pid);
      if (block < opts.blocks - 1) await hydra.terminate();
    }
    await hydra.terminate();
    if (warmAttaches !== opts.warmup) {
      throw new Error(`warm-up attached ${warmAttaches} pods, expected ${opts.warmup}`);
    }
    if (w.reserved("blue").length || w.reserved("red").length) {
      throw new Error("addresses left reserved after every sandbox was removed");
    }
  });

  const runp: Record<Arm, Summary> = {
    baseline: summarize(samples.baseline),
    idle: summarize(samples.idle),
    attach2: summarize(samples.attach2),
  };
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const added = {
    p50: round(runp.attach2.median - runp.baseline.median),
    p95: round(runp.attach2.p95 - runp.baseline.p95),
    p99: round(runp.attach2.p99 - runp.baseline.p99),
  };
  const inDaemon = summarize(daemonAttachMs);
  const overIdle = {
    p50: round(runp.attach2.median - runp.idle.median),
    p99: round(runp.attach2.p99 - runp.idle.p99),
  };
  // Block-level baselines drift with the machine's load; the pod-by-pod
  // comparison with `idle` does not, but leaves out the NRI round trip.
  // The target is judged on the larger of the two.
  const judgedP99 = Math.max(added.p99, overIdle.p99);
  const loadEnd = (await machineInfo()).loadAverage;
  const doc = {
    bench: "nri",
    machine,
    loadAverageAtEnd: loadEnd,
    method: "crictl runp wall time per sandbox; baseline in blocks alternating with hydra " +
      "blocks, idle and attach2 alternating pod by pod within them",
    podsPerArm: opts.pods,
    blocks: opts.blocks,
    runpMs: runp,
    addedMs: added,
    attachOverIdleMs: overIdle,
    idleAddedMs: {
      p50: round(runp.idle.median - runp.baseline.median),
      p99: round(runp.idle.p99 - runp.baseline.p99),
    },
    daemonAttachMs: inDaemon,
    daemonMemory: mem,
    targets: [
      {
        name: `p99 added to runp <= ${P99_ADDED_TARGET_MS} ms (larger of vs baseline, vs idle)`,
        value: judgedP99,
        met: judgedP99 <= P99_ADDED_TARGET_MS,
      },
      {
        name: `daemon attach p99 <= ${P99_ADDED_TARGET_MS} ms`,
        value: inDaemon.p99,
        met: inDaemon.p99 <= P99_ADDED_TARGET_MS,
      },
      {
        name: `daemon peak RSS <= ${RSS_TARGET_MB} MB (value in MiB)`,
        value: mem.peakMiB,
        met: mem.peakMiB * 1.048576 <= RSS_TARGET_MB,
      },
    ],
  };
  console.log(JSON.stringify(doc, null, 2));
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
