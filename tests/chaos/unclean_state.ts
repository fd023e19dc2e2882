/**
 * Unclean shutdown: the state files a crash (or a power cut, the files
 * being unsynced) can leave behind. Each cycle attaches a container through
 * the meta-CNI, then damages one of its state files the way an interrupted
 * write leaves it — cut short at any length, zeroed, gone, or a temporary
 * file of a writer that died beside it — and then does what the node does
 * next: another container's ADD (which must work, and must not get the
 * first one's address), the first one's DEL (which must complete and free
 * everything), the second one's DEL. The checks are the node's: nothing
 * left for a container that is gone, no address twice. Temp files of dead
 * writers and files set aside as damaged are GC's to remove once old
 * enough: they are judged after a GC that sees them a week old.
 *
 * @module
 */

import { runKillable } from "./kill.ts";
import {
  BIN,
  checkEmptyPod,
  checkNode,
  type Container,
  createNodeWorld,
  NETWORK,
  type NodeWorld,
  removePod,
  reservations,
  sweepResidue,
} from "./node_world.ts";
import type { ChaosReport } from "./report.ts";
import type { Rng } from "./rng.ts";
import type { TestNetns } from "../helpers/netns.ts";

const SCENARIO = "unclean-state";

/** How a file is damaged. */
type Damage = "truncated" | "zeroed" | "missing" | "temp-beside";

const DAMAGES: readonly Damage[] = ["truncated", "zeroed", "missing", "temp-beside"];

async function meta(w: NodeWorld, command: "ADD" | "DEL", cid: string, pod: TestNetns) {
  const run = w.inNode(`${BIN}/hydra`);
  return await runKillable({
    program: run.program,
    args: run.args,
    env: w.env(command, { cid, pod }),
    stdin: JSON.stringify(w.metaConf()),
    timeoutMs: 60_000,
  });
}

async function add(
  w: NodeWorld,
  report: ChaosReport,
  rng: Rng,
  cycle: number,
  what: string,
): Promise<Container | undefined> {
  const cid = w.newCid(rng);
  const pod = await w.newPod();
  const out = await meta(w, "ADD", cid, pod);
  if (out.code !== 0) {
    report.find("stuck", SCENARIO, `${what}: ADD of ${cid} failed: ${out.stdout.trim()}`, cycle);
    await meta(w, "DEL", cid, pod);
    await removePod(pod);
    return undefined;
  }
  const r = JSON.parse(out.stdout) as {
    ips?: { address: string }[];
    interfaces?: { name: string; sandbox?: string }[];
  };
  const c: Container = {
    cid,
    pod,
    ifName: "eth0",
    ips: (r.ips ?? []).map((i) => i.address.split("/")[0]),
    hostVeth: (r.interfaces ?? []).find((i) => !i.sandbox && i.name.startsWith("veth"))?.name,
  };
  w.live.set(cid, c);
  return c;
}

async function del(w: NodeWorld, report: ChaosReport, c: Container, cycle: number, what: string) {
  w.live.delete(c.cid);
  const out = await meta(w, "DEL", c.cid, c.pod);
  if (out.code !== 0 || out.timedOut) {
    report.find("stuck", SCENARIO, `${what}: DEL of ${c.cid} failed: ${out.stdout.trim()}`, cycle);
  }
  await checkEmptyPod(report, `${SCENARIO} (${what})`, cycle, c.pod, c.cid);
  await removePod(c.pod);
}

/** The state files the container's ADD left, by what they are. */
async function stateFiles(w: NodeWorld, c: Container): Promise<[string, string][]> {
  const out: [string, string][] = [];
  const add = (what: string, path: string) => {
    try {
      if (Deno.statSync(path).isFile) out.push([what, path]);
    } catch {
      // not written by this version
    }
  };
  add("attachment record", `${w.cacheDir}/attachments/${c.cid}-${c.ifName}`);
  try {
    for (const e of Deno.readDirSync(`${w.cacheDir}/results`)) {
      if (e.name.includes(c.cid)) add("result cache", `${w.cacheDir}/results/${e.name}`);
    }
  } catch {
    // no cache
  }
  for (const [ip, holder] of await reservations(w)) {
    if (holder === c.cid) add("IPAM reservation", `${w.ipamDir}/${NETWORK}/${ip}`);
  }
  add("IPAM last reserved", `${w.ipamDir}/${NETWORK}/last_reserved_ip.0`);
  add("tuning backup", `${w.tuningDir}/${c.cid}_${c.ifName}.json`);
  return out;
}

/** Leaves `path` as `damage` says; returns a description. */
function damage(path: string, how: Damage, rng: Rng): string {
  const bytes = Deno.readFileSync(path);
  switch (how) {
    case "truncated": {
      const len = rng.int(Math.max(1, bytes.length));
      Deno.writeFileSync(path, bytes.subarray(0, len));
      return `cut to ${len} of ${bytes.length} bytes`;
    }
    case "zeroed":
      Deno.writeFileSync(path, new Uint8Array(bytes.length));
      return `${bytes.length} zero bytes`;
    case "missing":
      Deno.removeSync(path);
      return "gone";
    case "temp-beside": {
      // The name each writer gives its temporary file: the IPAM store's own, or pkg/fsutil's.
      const slash = path.lastIndexOf("/");
      const name = path.slice(slash + 1);
      const pid = 1000 + rng.int(90000);
      const rand = rng.hex(6);
      const tmpName = path.includes("/ipam/")
        ? `.hydra-tmp-${name}-${pid}-${rand}`
        : `.${name}.tmp-${pid}-${rand}`;
      Deno.writeFileSync(
        `${path.slice(0, slash)}/${tmpName}`,
        bytes.subarray(0, rng.int(Math.max(1, bytes.length))),
      );
      return `a dead writer's temp file beside it (${tmpName})`;
    }
  }
}

/** Runs `cycles` cycles. */
export async function runUncleanState(
  report: ChaosReport,
  rng: Rng,
  cycles: number,
): Promise<void> {
  const w = await createNodeWorld(rng);
  try {
    for (let cycle = 0; cycle < cycles; cycle++) {
      report.counts.cycles++;
      const a = await add(w, report, rng, cycle, "before the damage");
      if (!a) continue;
      const files = await stateFiles(w, a);
      const [what, path] = rng.pick(files);
      const how = rng.pick(DAMAGES);
      const desc = `${what} of ${a.cid} ${damage(path, how, rng)}`;
      const b = await add(w, report, rng, cycle, desc);
      await checkNode(w, report, `${SCENARIO} (${desc})`, cycle);
      await del(w, report, a, cycle, desc);
      if (b) await del(w, report, b, cycle, desc);
      await checkNode(w, report, `${SCENARIO} (${desc})`, cycle, "no-residue");
      // Temp and quarantined files are GC's (docs/reliability.md): judged after one.
      const gc = await sweepResidue(w);
      if (gc.code !== 0) {
        report.find("stuck", SCENARIO, `${desc}: GC failed: ${gc.stdout.trim()}`, cycle);
      }
      await checkNode(w, report, `${SCENARIO} (${desc})`, cycle, "residue");
    }
  } finally {
    await w.close();
  }
}
