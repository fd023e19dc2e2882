/**
 * The DRA benchmark's measurement (bench/dra.ts runs it; a short run is a
 * step of tests/dra/claims_test.ts): the time from creating a Pod to its
 * sandbox running, for pods that claim a host NIC (`claimed`) and the same
 * pods without claims (`plain`), in one world (tests/dra/world.ts: real
 * API server, kubelet, containerd, `hydra dra serve` and `hydra nri
 * serve`), the two kinds alternating pod by pod so load falls on both
 * alike. Each sample runs from the Pod's creation (its claim already
 * exists, unallocated, its selector naming the NIC whose turn it is; both
 * kinds of pod are scheduled by kube-scheduler, which allocates the claim
 * from hydra's ResourceSlices) to the moment containerd creates the
 * pod's container, which the kubelet asks for once RunPodSandbox has
 * returned: for a claimed pod after hydra moved the NIC in, for a plain
 * one after the same runtime path without it. The moment is when the
 * benchmark reads containerd's `/containers/create` event (`ctr events`,
 * one stream for the whole run; pods start one at a time, and each pod
 * makes two: its sandbox's, then its container's). Outside the timed
 * region each pod is waited for Running, a claimed pod is checked to hold
 * its NIC, then deleted, and the NIC is waited for back on the host before
 * it is claimed again, and the claim is waited for gone (the controller
 * manager deallocates it first). RSS is that of both hydra processes together at the
 * end (`hydra dra serve` and `hydra nri serve`).
 *
 * @module
 */

import { poll } from "../tests/infra/process.ts";
import { peerBin } from "../tests/infra/peers.ts";
import { type DraWorld, type HydraProc, type TestNic, withDraWorld } from "../tests/dra/world.ts";
import { claimPath } from "../dra/claim.ts";
import { histogramMeanMs, percentile } from "./stats.ts";

/** The benchmark's JSON document. */
export interface DraBenchResult {
  pods: number;
  claimedMs: { p50: number; p99: number };
  plainMs: { p50: number; p99: number };
  rssMiB: number;
}

/** Settings of a run. */
export interface DraBenchOptions {
  /** Pods of each kind measured. */
  pods: number;
  /** Pods of each kind run first and not measured. */
  warmup: number;
  /** NICs the claimed pods take in turn. */
  nics: number;
  progress?: (msg: string) => void;
}

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/^VmRSS:\s*(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
}

/** Receipt times of containerd's `/containers/create` events. */
interface CreateEvents {
  times: number[];
  close(): Promise<void>;
}

function watchCreates(w: DraWorld): CreateEvents {
  const child = new Deno.Command(peerBin("ctr"), {
    args: ["--address", w.ctd.address, "--namespace", "k8s.io", "events"],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const times: number[] = [];
  const reading = (async () => {
    let rest = "";
    const dec = new TextDecoder();
    for await (const chunk of child.stdout) {
      const now = performance.now();
      const lines = (rest + dec.decode(chunk, { stream: true })).split("\n");
      rest = lines.pop() ?? "";
      for (const l of lines) if (l.includes(" /containers/create ")) times.push(now);
    }
  })();
  return {
    times,
    async close() {
      child.kill();
      await child.status;
      await reading.catch(() => {});
    },
  };
}

async function timedStart(
  w: DraWorld,
  events: CreateEvents,
  name: string,
  nic?: TestNic,
): Promise<{ ms: number; retried: boolean }> {
  const claims = nic ? [{ name: "nic", claim: name }] : [];
  if (nic) {
    await w.createClaim(name, [{
      name: "nic",
      deviceClassName: "hydra-nic",
      selector: `device.attributes["hydra.clusternet.io"].ifName == "${nic.name}"`,
    }], { interface: "data0", addresses: ["198.51.100.7/24"] });
  }
  const seen = events.times.length;
  const t0 = performance.now();
  await w.createPod(name, claims);
  // The sandbox's container, then the pod's own.
  const ok = await poll(() => events.times.length >= seen + 2, 60_000, 2);
  if (!ok) throw new Error(`pod ${name} did not start: ${JSON.stringify(await w.events(name))}`);
  const ms = events.times[seen + 1] - t0;
  await w.waitRunning(name);
  // A pod the scheduler or the kubelet had to try again explains an outlier.
  const retried = (await w.events(name)).some((e) =>
    e.reason === "FailedScheduling" || e.reason === "FailedPrepareDynamicResources"
  );
  return { ms, retried };
}

async function checkAndDelete(w: DraWorld, name: string, nic?: TestNic): Promise<void> {
  if (nic) {
    const links = await w.addrs(await w.podNetns(name));
    const data0 = links.find((l) => l.ifname === "data0");
    if (data0?.address !== nic.mac) throw new Error(`pod ${name} runs without its NIC`);
  }
  await w.deletePod(name);
  if (!nic) return;
  await w.cp.api.must("DELETE", claimPath(w.ns, name));
  const back = await poll(
    async () => {
      const links = await w.nodeIp<{ ifname: string }[]>("link", "show");
      return links.some((l) => l.ifname === nic.name);
    },
    30_000,
    20,
  );
  if (!back) throw new Error(`NIC ${nic.name} not back on the host`);
  // Gone only once deallocated: the NIC is free for the scheduler again.
  const gone = await poll(
    async () => (await w.cp.api.request("GET", claimPath(w.ns, name))).status === 404,
    30_000,
    20,
  );
  if (!gone) throw new Error(`claim ${name} not deleted`);
}

function p50p99(samples: number[]): { p50: number; p99: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return { p50: r(percentile(sorted, 50)), p99: r(percentile(sorted, 99)) };
}

/** Runs the benchmark in a fresh world. */
export async function runDraBench(opts: DraBenchOptions): Promise<DraBenchResult> {
  let result: DraBenchResult | undefined;
  await withDraWorld(async (w) => {
    const dra = await w.startDra();
    const nri = await w.startNri(["--log-level=info"]);
    result = await measureDraBench(w, { dra, nri }, opts);
  });
  return result!;
}

/**
 * Runs the benchmark in a world whose `hydra dra serve` and `hydra nri
 * serve` are running and where no other pod starts meanwhile; makes its
 * own NICs.
 */
export async function measureDraBench(
  w: DraWorld,
  { dra, nri }: { dra: HydraProc; nri: HydraProc },
  opts: DraBenchOptions,
): Promise<DraBenchResult> {
  const progress = opts.progress ?? (() => {});
  const claimed: number[] = [];
  const plain: number[] = [];
  const nics: TestNic[] = [];
  for (let i = 0; i < opts.nics; i++) {
    nics.push(await w.nic({ addresses: [`192.0.2.${10 + i}/24`] }));
  }
  await poll(
    async () => {
      const list = await w.cp.api.must("GET", "/apis/resource.k8s.io/v1/resourceslices") as {
        items: { spec: { devices: { name: string }[] } }[];
      };
      const names = new Set(list.items.flatMap((s) => s.spec.devices.map((d) => d.name)));
      return nics.every((n) => names.has(n.device));
    },
    30_000,
    100,
  );
  let n = 0;
  const retries: Record<string, number> = { claimed: 0, plain: 0 };
  const total = opts.warmup + opts.pods;
  const events = watchCreates(w);
  try {
    for (let i = 0; i < total; i++) {
      const measure = i >= opts.warmup;
      // Alternate which kind goes first, so neither always follows the other.
      const order = i % 2 ? ["plain", "claimed"] : ["claimed", "plain"];
      for (const kind of order) {
        const name = `bench-${kind === "claimed" ? "c" : "p"}${n++}`;
        const nic = kind === "claimed" ? nics[i % nics.length] : undefined;
        const { ms, retried } = await timedStart(w, events, name, nic);
        await checkAndDelete(w, name, nic);
        if (!measure) continue;
        (kind === "claimed" ? claimed : plain).push(ms);
        if (retried) retries[kind]++;
      }
      if ((i + 1) % 10 === 0) progress(`${i + 1}/${total} pairs`);
    }
  } finally {
    await events.close();
  }
  progress(
    `pods tried again (FailedScheduling or FailedPrepareDynamicResources): ` +
      `claimed ${retries.claimed}, plain ${retries.plain}`,
  );
  // Where a claimed pod's extra time goes, as hydra sees it (stderr only).
  const setUp = nri.logLines().filter((l) => l.msg === "claimed devices set up")
    .map((l) => Number(l.ms)).slice(-opts.pods);
  const metrics = (await dra.get("/metrics")).body;
  const prepareMs = histogramMeanMs(
    metrics,
    "hydra_dra_request_duration_seconds",
    'method="prepare"',
  );
  if (setUp.length) {
    const s = p50p99(setUp);
    progress(`nri serve sets a NIC up in p50 ${s.p50} ms, p99 ${s.p99} ms`);
  }
  if (prepareMs !== undefined) {
    progress(`dra serve answers a prepare in ${prepareMs.toFixed(1)} ms on average`);
  }
  const [draRss, nriRss] = [rssMiB(dra.daemon.pid), rssMiB(nri.daemon.pid)];
  progress(`RSS: dra serve ${draRss.toFixed(1)} MiB, nri serve ${nriRss.toFixed(1)} MiB`);
  return {
    pods: opts.pods,
    claimedMs: p50p99(claimed),
    plainMs: p50p99(plain),
    rssMiB: Math.round((draRss + nriRss) * 10) / 10,
  };
}
