/**
 * Faults of a cluster node with `hydra daemon` running whole invocations
 * (daemonExec): each cycle starts a few pods' ADDs at once and, while they
 * are in flight, injects one fault —
 *
 * - `daemon`: kill -9 of the daemon (requests in flight die with it); the
 *   kubelet starts it again a moment later;
 * - `api`: the API server killed, or frozen, or etcd killed, for a random
 *   while, then back;
 * - `flood`: hundreds of connections at the daemon's socket sending garbage,
 *   endless lines, half requests and requests of the wrong shape.
 *
 * Then the runtime's part: a pod whose ADD failed gets its DEL (which must
 * complete once the fault is gone); some live pods go. The checks are the
 * node's, plus: the daemon must not have died of anything but the kill
 * (a crash), and must answer again after a flood (else stuck); a live pod's
 * network status must reach its Pod object once the API is back.
 *
 * @module
 */

import { median, runKillable } from "./kill.ts";
import { BIN, checkEmptyPod, checkNode, type Container, removePod } from "./node_world.ts";
import { createKubeWorld, type KubePod, type KubeWorld } from "./kube_world.ts";
import type { ChaosReport } from "./report.ts";
import type { Rng } from "./rng.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { floodDaemon } from "./flood.ts";

/** The faults of this module. */
export type DaemonFault = "daemon" | "api" | "flood";

interface PodRun {
  cid: string;
  pod: KubePod;
  netns: TestNetns;
}

const NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";

async function cni(kw: KubeWorld, command: "ADD" | "DEL", p: PodRun) {
  const run = kw.w.inNode(`${BIN}/hydra`);
  return await runKillable({
    program: run.program,
    args: run.args,
    env: kw.env(command, p.cid, p.pod, p.netns),
    stdin: JSON.stringify(kw.conf()),
    timeoutMs: 90_000,
  });
}

/** A DEL after the fault is gone: it must complete. */
async function recoverDel(
  kw: KubeWorld,
  report: ChaosReport,
  scenario: string,
  p: PodRun,
  cycle: number,
) {
  kw.w.live.delete(p.cid);
  const out = await cni(kw, "DEL", p);
  if (out.code !== 0 || out.timedOut) {
    report.find(
      "stuck",
      scenario,
      `${p.cid}: DEL after the fault failed: ${out.stdout.trim()}`,
      cycle,
    );
  }
  await checkEmptyPod(report, scenario, cycle, p.netns, p.cid);
  await removePod(p.netns);
}

/** Whether the pod's network status reached its object within `ms`. */
async function statusReported(kw: KubeWorld, pod: KubePod, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const res = await kw.cp.api.request("GET", `/api/v1/namespaces/${kw.ns}/pods/${pod.name}`)
      .catch(() => undefined);
    const ann = (res?.body as { metadata?: { annotations?: Record<string, string> } })?.metadata
      ?.annotations;
    if (ann?.[NETWORK_STATUS]) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** Injects `fault` after `ms`; resolves once it is over (the peer back). */
async function inject(
  kw: KubeWorld,
  report: ChaosReport,
  rng: Rng,
  fault: DaemonFault,
  ms: number,
  cycle: number,
): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  if (fault === "daemon") {
    if (kw.daemonAlive()) {
      await kw.killDaemon();
      report.counts.killed++;
    }
    await new Promise((r) => setTimeout(r, rng.int(1500)));
    return;
  }
  if (fault === "flood") {
    await floodDaemon(kw.socket, rng, 100 + rng.int(300));
    return;
  }
  const peer = rng.pick(["apiserver-kill", "apiserver-freeze", "etcd-kill"] as const);
  if (peer === "apiserver-freeze") kw.apiserver.freeze(true);
  else if (peer === "apiserver-kill") await kw.apiserver.kill();
  else await kw.etcd.kill();
  if (peer.endsWith("kill")) report.counts.killed++;
  await new Promise((r) => setTimeout(r, 500 + rng.int(3000)));
  try {
    if (peer.startsWith("etcd")) await kw.etcd.start();
    else await kw.apiserver.start();
  } catch (err) {
    report.find(
      "stuck",
      `fault-api`,
      `${peer}: the control plane did not come back: ${err}`,
      cycle,
    );
  }
}

/** Runs `cycles` cycles of `fault`. */
export async function runDaemonFaults(
  report: ChaosReport,
  rng: Rng,
  cycles: number,
  fault: DaemonFault,
): Promise<void> {
  const scenario = `fault-${fault}`;
  const kw = await createKubeWorld(rng);
  let podSeq = 0;
  try {
    await kw.startDaemon();
    const newRun = async (): Promise<PodRun> => ({
      cid: kw.w.newCid(rng),
      pod: await kw.createPod(`p${podSeq++}`),
      netns: await kw.w.newPod(),
    });
    // A few ADDs without faults: how long one takes.
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const p = await newRun();
      const out = await cni(kw, "ADD", p);
      if (out.code !== 0) throw new Error(`calibration ADD failed: ${out.stdout}${out.stderr}`);
      times.push(out.ms);
      await recoverDel(kw, report, scenario, p, -1);
    }
    const live = new Map<string, PodRun>();
    for (let cycle = 0; cycle < cycles; cycle++) {
      report.counts.cycles++;
      const runs = await Promise.all(Array.from({ length: 1 + rng.int(4) }, newRun));
      const adds = Promise.all(runs.map((p) => cni(kw, "ADD", p)));
      const faultDone = inject(kw, report, rng, fault, rng.next() * median(times) * 1.3, cycle);
      const outs = await adds;
      await faultDone;
      // Not killed by the scenario, yet gone: a request killed it.
      if (fault !== "daemon" && !kw.daemonAlive()) {
        report.find("crashes", scenario, `hydra daemon died: ${kw.daemonLog().slice(-600)}`, cycle);
      }
      if (!kw.daemonAlive()) {
        await kw.startDaemon().catch((err) => {
          report.find("stuck", scenario, `hydra daemon does not start again: ${err}`, cycle);
        });
      }
      for (const [i, out] of outs.entries()) {
        const p = runs[i];
        if (out.code === 0 && rng.chance(0.6)) {
          const r = JSON.parse(out.stdout) as {
            ips?: { address: string }[];
            interfaces?: { name: string; sandbox?: string }[];
          };
          const c: Container = {
            cid: p.cid,
            pod: p.netns,
            ifName: "eth0",
            ips: (r.ips ?? []).map((x) => x.address.split("/")[0]),
            hostVeth: (r.interfaces ?? []).find((x) => !x.sandbox && x.name.startsWith("veth"))
              ?.name,
          };
          kw.w.live.set(p.cid, c);
          live.set(p.cid, p);
          if (!(await statusReported(kw, p.pod, 30_000))) {
            report.find(
              "stuck",
              scenario,
              `${p.cid}: network status never reached pod ${p.pod.name}`,
              cycle,
            );
          }
        } else {
          await recoverDel(kw, report, scenario, p, cycle);
        }
      }
      while (live.size > 4 || (live.size && rng.chance(0.3))) {
        const p = rng.pick([...live.values()]);
        live.delete(p.cid);
        await recoverDel(kw, report, scenario, p, cycle);
      }
      await checkNode(kw.w, report, scenario, cycle);
    }
    for (const p of live.values()) await recoverDel(kw, report, scenario, p, cycles);
    await checkNode(kw.w, report, scenario, cycles);
  } finally {
    await kw.close();
  }
}
