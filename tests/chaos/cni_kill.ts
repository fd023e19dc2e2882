/**
 * kill -9 at random points of the processes a runtime execs: the meta-CNI
 * (its conf wraps a bridge + tuning network), the built-in bridge plugin
 * exec'd on its own, and the hydra-ipam plugin. Each cycle starts an ADD
 * (sometimes a DEL) of a fresh container and kills it after a random time
 * between 0 and a little over what the command takes; then does what a
 * runtime does after a failed ADD — DEL, sometimes another ADD first — and
 * checks the node: the pod namespace empty, nothing held for a container
 * that is not alive, no address twice. Some containers stay alive for a
 * while (their DEL comes later, maybe killed too), so the checks also see
 * live state beside the damage. Temp files of the writes killed are left
 * to the GC that sweeps them (docs/reliability.md): they are judged at the
 * end, after one that sees them a week old.
 *
 * @module
 */

import { type KillableOutcome, median, runKillable } from "./kill.ts";
import {
  BIN,
  checkEmptyPod,
  checkNode,
  type Container,
  createNodeWorld,
  type NodeWorld,
  removePod,
  sweepResidue,
} from "./node_world.ts";
import type { ChaosReport } from "./report.ts";
import type { Rng } from "./rng.ts";
import type { TestNetns } from "../helpers/netns.ts";

/** The processes killed here. */
export type CniRole = "meta" | "bridge" | "ipam";

const ROLES: readonly CniRole[] = ["meta", "bridge", "ipam"];

/** At most this many containers stay alive at once. */
const MAX_LIVE = 4;

interface Call {
  role: CniRole;
  command: "ADD" | "DEL";
  cid: string;
  pod: TestNetns;
  killAfterMs?: number;
}

function program(role: CniRole): string {
  return `${BIN}/${role === "meta" ? "hydra" : role === "bridge" ? "hydra-bridge" : "hydra-ipam"}`;
}

function conf(w: NodeWorld, role: CniRole): Record<string, unknown> {
  return role === "meta" ? w.metaConf() : role === "bridge" ? w.bridgeConf() : w.ipamConf();
}

/** Execs one CNI command in the node, killed when asked. */
function call(w: NodeWorld, c: Call): Promise<KillableOutcome & { timedOut: boolean }> {
  const run = w.inNode(program(c.role));
  return runKillable({
    program: run.program,
    args: run.args,
    env: w.env(c.command, { cid: c.cid, pod: c.pod }),
    stdin: JSON.stringify(conf(w, c.role)),
    killAfterMs: c.killAfterMs,
    timeoutMs: 60_000,
  });
}

/** What an ADD result says about the container (addresses, the host veth). */
function containerOf(cid: string, pod: TestNetns, stdout: string): Container {
  const r = JSON.parse(stdout) as {
    ips?: { address: string }[];
    interfaces?: { name: string; sandbox?: string }[];
  };
  const host = (r.interfaces ?? []).find((i) => !i.sandbox && i.name.startsWith("veth"));
  return {
    cid,
    pod,
    ifName: "eth0",
    ips: (r.ips ?? []).map((i) => i.address.split("/")[0]),
    hostVeth: host?.name,
  };
}

/** A DEL once the fault is gone: it must complete; else the container is stuck. */
async function recoverDel(
  w: NodeWorld,
  report: ChaosReport,
  role: CniRole,
  cid: string,
  pod: TestNetns,
  cycle: number,
): Promise<void> {
  const out = await call(w, { role, command: "DEL", cid, pod });
  if (out.code !== 0 || out.timedOut) {
    report.find(
      "stuck",
      `kill-${role}`,
      `${cid}: DEL after the fault ${
        out.timedOut ? "never ended" : `failed: ${out.stdout.trim()}`
      }`,
      cycle,
    );
  }
}

/** Typical time of an ADD and a DEL of each role, from a few runs without faults. */
async function calibrate(
  w: NodeWorld,
  rng: Rng,
): Promise<Record<CniRole, { add: number; del: number }>> {
  const out = {} as Record<CniRole, { add: number; del: number }>;
  for (const role of ROLES) {
    const adds: number[] = [];
    const dels: number[] = [];
    for (let i = 0; i < 3; i++) {
      const cid = w.newCid(rng);
      const pod = await w.newPod();
      const add = await call(w, { role, command: "ADD", cid, pod });
      if (add.code !== 0) {
        throw new Error(`calibration ADD (${role}) failed: ${add.stdout}${add.stderr}`);
      }
      adds.push(add.ms);
      const del = await call(w, { role, command: "DEL", cid, pod });
      dels.push(del.ms);
      await removePod(pod);
    }
    out[role] = { add: median(adds), del: median(dels) };
  }
  return out;
}

/** Runs `cycles` fault cycles; returns the processes killed. */
export async function runCniKill(
  report: ChaosReport,
  rng: Rng,
  cycles: number,
): Promise<void> {
  const w = await createNodeWorld(rng);
  try {
    const times = await calibrate(w, rng);
    for (let cycle = 0; cycle < cycles; cycle++) {
      const role = rng.pick(ROLES);
      await oneCycle(w, report, rng, role, times[role], cycle);
      report.counts.cycles++;
      // Temp files of the writes killed are GC's to sweep: judged at the end, after one.
      await checkNode(w, report, `kill-${role}`, cycle, "no-residue");
    }
    // The end: every container goes, and nothing of any may stay.
    for (const c of [...w.live.values()]) {
      w.live.delete(c.cid);
      await recoverDel(w, report, addedBy.get(c.cid) ?? "meta", c.cid, c.pod, cycles);
      await checkEmptyPod(report, "kill-end", cycles, c.pod, c.cid);
      await removePod(c.pod);
    }
    await checkNode(w, report, "kill-end", cycles, "no-residue");
    const gc = await sweepResidue(w);
    if (gc.code !== 0) report.find("stuck", "kill-end", `GC failed: ${gc.stdout.trim()}`, cycles);
    await checkNode(w, report, "kill-end", cycles, "residue");
  } finally {
    await w.close();
  }
}

/** Which role a live container was added by (its DEL goes the same way). */
const addedBy = new Map<string, CniRole>();

async function oneCycle(
  w: NodeWorld,
  report: ChaosReport,
  rng: Rng,
  role: CniRole,
  time: { add: number; del: number },
  cycle: number,
): Promise<void> {
  // Now and then a live container goes, its DEL maybe killed and then run again.
  if (w.live.size >= MAX_LIVE || (w.live.size > 0 && rng.chance(0.3))) {
    const c = rng.pick([...w.live.values()]);
    const by = addedBy.get(c.cid) ?? "meta";
    const kill = rng.chance(0.5) ? rng.next() * time.del * 1.2 : undefined;
    const del = await call(w, {
      role: by,
      command: "DEL",
      cid: c.cid,
      pod: c.pod,
      killAfterMs: kill,
    });
    if (del.killed) report.counts.killed++;
    w.live.delete(c.cid);
    if (del.killed || del.code !== 0) await recoverDel(w, report, by, c.cid, c.pod, cycle);
    await checkEmptyPod(report, `kill-${by}`, cycle, c.pod, c.cid);
    await removePod(c.pod);
  }
  const cid = w.newCid(rng);
  const pod = await w.newPod();
  const keep = rng.chance(0.2);
  const killAfterMs = keep ? undefined : rng.next() * time.add * 1.3;
  const add = await call(w, { role, command: "ADD", cid, pod, killAfterMs });
  if (add.killed) report.counts.killed++;
  if (add.timedOut) report.find("stuck", `kill-${role}`, `${cid}: ADD never ended`, cycle);
  if (!add.killed && add.code === 0 && keep) {
    w.live.set(cid, containerOf(cid, pod, add.stdout));
    addedBy.set(cid, role);
    return;
  }
  // A second ADD before the DEL (a runtime that retries, or the meta-CNI asked twice): it may
  // fail (the interface exists), but must not take away what the DEL needs to clean up.
  if (role === "meta" && rng.chance(0.25)) await call(w, { role, command: "ADD", cid, pod });
  await recoverDel(w, report, role, cid, pod, cycle);
  await checkEmptyPod(report, `kill-${role}`, cycle, pod, cid);
  await removePod(pod);
}
