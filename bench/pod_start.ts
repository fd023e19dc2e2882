/**
 * End-to-end pod start benchmark: the time from creating a Pod to its being
 * Ready, with a real API server, kubelet and containerd, each Pod with the
 * default network and two NAD networks, created in waves; the arms (the
 * default network alone, Multus thick, Multus thin, hydra's meta-CNI as
 * deploy/ runs it, hydra's NRI plugin) in one run. bench/pod_start_lib.ts
 * says how. Prints one JSON document on stdout, progress on stderr:
 *
 *   {"arms": {"<arm>": {"p50Ms", "p99Ms", "addedP50Ms", "podsPerSecond",
 *                       "cpuMsPerPod", "rssMiB", …}}, …}
 *
 * Targets: hydra as deployed adds at most half of Multus thick's time over
 * the baseline (p50), with no more CPU per pod.
 *
 * Usage: deno run -A bench/pod_start.ts [--pods 50] [--wave 10] [--warmup-waves 1]
 *                                       [--arms default,multus_thick,…]
 *
 * Needs root and the built peers (tests/infra/build-peers.sh).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { startControlPlane } from "../tests/infra/cluster.ts";
import { havePeers } from "../tests/infra/peers.ts";
import { machineInfo } from "./machine.ts";
import { ARM_NAMES, type ArmName } from "./pod_start_arms.ts";
import { type ArmResult, runPodStart } from "./pod_start_lib.ts";

function count(v: string | undefined, min: number): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new Error(`not a whole number ≥ ${min}: ${v}`);
  return x;
}

function parseArms(v: string): ArmName[] {
  const arms = v.split(",").filter(Boolean);
  for (const a of arms) {
    if (!(ARM_NAMES as readonly string[]).includes(a)) {
      throw new Error(`--arms: unknown arm ${a} (${ARM_NAMES.join(", ")})`);
    }
  }
  return arms as ArmName[];
}

/** The targets, judged on the run's medians. */
function targets(arms: Record<string, ArmResult>) {
  const hydra = arms.hydra_meta;
  const thick = arms.multus_thick;
  const base = arms.default;
  if (!hydra || !thick || !base) return [];
  const [added, thickAdded] = [hydra.addedP50Ms!, thick.addedP50Ms!];
  return [
    {
      what: "hydra_meta adds ≤ 0.5 × multus_thick's time over the baseline (p50)",
      // Multus thick adding nothing measurable (under load, waves of pods differ by more than
      // the networks cost) leaves no ratio to take.
      ratio: thickAdded > 0 ? Math.round(added / thickAdded * 100) / 100 : null,
      met: added <= 0 || (thickAdded > 0 && added <= 0.5 * thickAdded),
    },
    {
      what: "hydra_meta CPU per pod ≤ multus_thick's",
      met: hydra.cpuMsPerPod <= thick.cpuMsPerPod,
    },
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      pods: { type: "string", default: "50" },
      wave: { type: "string", default: "10" },
      "warmup-waves": { type: "string", default: "1" },
      arms: { type: "string", default: ARM_NAMES.join(",") },
    },
  });
  if (Deno.uid() !== 0 || !havePeers("kubelet", "kube-apiserver", "etcd", "containerd")) {
    console.log(JSON.stringify({ bench: "pod_start", skipped: "needs root and the built peers" }));
    Deno.exit(0);
  }
  const opts = {
    pods: count(values.pods, 1),
    wave: count(values.wave, 1),
    warmupWaves: count(values["warmup-waves"], 0),
    arms: parseArms(values.arms),
    progress: (msg: string) => console.error(`[bench pod_start] ${msg}`),
  };
  const machine = await machineInfo();
  const cp = await startControlPlane();
  try {
    const arms = await runPodStart(cp, opts);
    console.log(JSON.stringify(
      {
        bench: "pod_start",
        machine,
        setup: {
          pods: opts.pods,
          wave: opts.wave,
          warmupWaves: opts.warmupWaves,
          networks: "default (reference bridge + host-local) + 2 NADs (the same)",
          sample: "Pod creation (POST) to its Ready condition, seen through a watch",
        },
        arms,
        targets: targets(arms),
      },
      null,
      2,
    ));
  } finally {
    await cp.stop();
  }
}
