/**
 * kill -9 of `hydra nri serve` mid-RunPodSandbox, with a real containerd:
 * each cycle asks for a pod sandbox selecting hydra's `blue` network and
 * kills the plugin at a random point of that request, then starts it again
 * (as the kubelet restarts its pod). Once the plugin has synchronized, a
 * sandbox that exists has its network (else it is stuck without it); once
 * the sandbox is stopped and removed, nothing of it may be left: no
 * address held in the IPAM store, no port on the bridge, no record in the
 * plugin's cache.
 *
 * @module
 */

import { type HydraProcess, type NriWorld, withNriWorld } from "../nri/serve_world.ts";
import { uniqueName } from "../helpers/netns.ts";
import type { ChaosReport } from "./report.ts";
import type { Rng } from "./rng.ts";

const SCENARIO = "kill-nri";
const NETWORKS = "k8s.v1.cni.cncf.io/networks";

/** Files in the plugin's cache folder (records of attachments), recursively. */
function cacheFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory) walk(`${d}/${e.name}`);
      else out.push(`${d}/${e.name}`);
    }
  };
  walk(dir);
  return out;
}

/** The sandbox's links beside lo and eth0. */
async function extraLinks(w: NriWorld, id: string): Promise<string[]> {
  const addrs = await w.addrs(await w.netnsOf(id));
  return addrs.map((l) => l.ifname).filter((n) => n !== "lo" && n !== "eth0");
}

async function oneCycle(
  w: NriWorld,
  report: ChaosReport,
  rng: Rng,
  plugin: { p: HydraProcess },
  runpMs: number,
  cycle: number,
): Promise<void> {
  const name = uniqueName("chx");
  const runp = w.runp(name, { [NETWORKS]: "blue" }).then((id) => id, (err) => err as Error);
  await new Promise((r) => setTimeout(r, rng.next() * runpMs * 1.3));
  await plugin.p.kill();
  report.counts.killed++;
  const outcome = await runp;
  plugin.p = await w.startHydra();
  if (typeof outcome === "string") {
    // The plugin synchronized on start: an existing sandbox has its network now.
    if (!(await extraLinks(w, outcome)).includes("net1")) {
      report.find(
        "stuck",
        SCENARIO,
        `sandbox ${name} runs without its network after the restart`,
        cycle,
      );
    }
    await w.ctd.crictl("stopp", outcome);
    await w.ctd.crictl("rmp", outcome);
  }
  const held = w.reserved("blue");
  for (const ip of held) {
    report.findOnce(
      "leakedAddresses",
      `blue/${ip}/${cycle}`,
      SCENARIO,
      `blue still holds ${ip} with no sandbox`,
      cycle,
    );
  }
  for (const port of await w.bridgePorts()) {
    report.findOnce(
      "leakedLinks",
      `port/${port}`,
      SCENARIO,
      `bridge port ${port} with no sandbox`,
      cycle,
    );
  }
  for (const f of cacheFiles(w.cacheDir)) {
    report.findOnce(
      "leakedFiles",
      f,
      SCENARIO,
      `${f.slice(w.tmp.length + 1)} left with no sandbox`,
      cycle,
    );
  }
}

/** Runs `cycles` cycles. */
export async function runNriKill(report: ChaosReport, rng: Rng, cycles: number): Promise<void> {
  await withNriWorld(async (w) => {
    const plugin = { p: await w.startHydra() };
    // How long a RunPodSandbox with the network takes.
    const t0 = performance.now();
    const id = await w.runp(uniqueName("chx"), { [NETWORKS]: "blue" });
    const runpMs = performance.now() - t0;
    await w.ctd.crictl("stopp", id);
    await w.ctd.crictl("rmp", id);
    for (let cycle = 0; cycle < cycles; cycle++) {
      report.counts.cycles++;
      await oneCycle(w, report, rng, plugin, runpMs, cycle);
    }
  });
}
