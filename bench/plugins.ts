/**
 * Plugin benchmark: ADD+DEL latency and peak RSS of hydra's meta-CNI and
 * plugins beside the reference plugins and Multus thin, measured in one run
 * on this machine, printed as one JSON document on stdout (progress on
 * stderr). See cases.ts for what is measured.
 *
 * Usage: deno run -A bench/plugins.ts [--pods N] [--warmup N] [--rss-pods N]
 *        [--kinds bridge,macvlan,host-device,loopback,vxlan] [--cases a,b,c,d]
 *
 * Method: every pod is a fresh network namespace made and removed outside
 * the timed region; plugins run inside a "node" namespace, exec'd as a
 * runtime execs them (minimal environment, config on stdin). A pod's ADD and
 * DEL are timed from fork to exit and added. Cases are interleaved pod by
 * pod, in an order that rotates, so background load on the machine falls on
 * all of them alike. Warm-up pods (not recorded) fill every cache first.
 * After each ADD the pod must have the expected interfaces, after each DEL
 * they must be gone, and at the end every IPAM address must be released:
 * a case that does not do its work fails the run instead of looking fast.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { closeHandle, listLinks, openHandle } from "../netlink/mod.ts";
import { peersDir, versions } from "../tests/infra/peers.ts";
import {
  type BenchCase,
  type Binaries,
  type Kind,
  META_KINDS,
  metaCase,
  multusCase,
  singleCase,
} from "./cases.ts";
import { assertSucceeded, type CniCall, haveGnuTime, runCni } from "./cni_exec.ts";
import { machineInfo } from "./machine.ts";
import { isFresh as bundleIsFresh } from "../tools/bundle.ts";
import { judge, summarize, type Summary, type Target } from "./stats.ts";
import {
  type BenchWorld,
  createPod,
  createSpare,
  createWorld,
  deletePod,
  deleteSpare,
  destroyWorld,
} from "./world.ts";

const ALL_KINDS: readonly Kind[] = ["bridge", "macvlan", "host-device", "loopback", "vxlan"];

const HELP = `Usage: deno run -A bench/plugins.ts [options]

  --pods N        pods per case (default 200)
  --warmup N      unrecorded warm-up pods per case (default 3)
  --rss-pods N    extra pods per case run under GNU time for peak RSS (default 5; 0: none)
  --kinds LIST    plugin kinds for (d) (default ${ALL_KINDS.join(",")})
  --cases LIST    cases to run, of a,b,c,d (default all)
hydra runs from the tree this file is in (bin/hydra and its role symlinks);
bench/main.ts runs this file from a private copy of the tree.`;

interface Options {
  help: boolean;
  pods: number;
  warmup: number;
  rssPods: number;
  kinds: Kind[];
  cases: Set<string>;
}

function count(name: string, raw: string, min: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      pods: { type: "string", default: "200" },
      warmup: { type: "string", default: "3" },
      "rss-pods": { type: "string", default: "5" },
      kinds: { type: "string", default: ALL_KINDS.join(",") },
      cases: { type: "string", default: "a,b,c,d" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  const kinds = values.kinds.split(",").filter(Boolean) as Kind[];
  for (const k of kinds) {
    if (!ALL_KINDS.includes(k)) throw new Error(`--kinds: unknown kind "${k}"`);
  }
  return {
    help: values.help,
    pods: count("pods", values.pods, 1),
    warmup: count("warmup", values.warmup, 0),
    rssPods: count("rss-pods", values["rss-pods"], 0),
    kinds,
    cases: new Set(values.cases.split(",").filter(Boolean)),
  };
}

function log(msg: string): void {
  console.error(`[bench/plugins] ${msg}`);
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Asks a plugin executable which CNI versions it speaks; undefined if it cannot answer. */
async function versionsOf(exe: string): Promise<string[] | undefined> {
  try {
    const out = await new Deno.Command(exe, {
      env: { CNI_COMMAND: "VERSION" },
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const w = out.stdin.getWriter();
    await w.write(new TextEncoder().encode(`{"cniVersion":"1.0.0"}`)).catch(() => {});
    await w.close().catch(() => {});
    const res = await out.output();
    if (!res.success) return undefined;
    const info = JSON.parse(new TextDecoder().decode(res.stdout));
    return Array.isArray(info.supportedVersions) ? info.supportedVersions : undefined;
  } catch {
    return undefined;
  }
}

/** Where the peers are and what they are. */
interface Peers {
  bins: Binaries;
  referenceSource: string;
  multusSource?: string;
}

function locatePeers(): Peers {
  const override = Deno.env.get("HYDRA_BENCH_REFERENCE_BIN");
  const built = `${peersDir()}/cni-bin`;
  const pinned = versions();
  let referenceBin: string;
  let referenceSource: string;
  if (override) {
    referenceBin = override;
    referenceSource = `reference plugins from HYDRA_BENCH_REFERENCE_BIN`;
  } else if (isFile(`${built}/bridge`)) {
    referenceBin = built;
    referenceSource = `containernetworking/plugins ${pinned.CNI_PLUGINS_VERSION} (built from ` +
      `the Go module by tests/infra/build-peers.sh)`;
  } else {
    referenceBin = "/usr/lib/cni";
    referenceSource = "Debian containernetworking-plugins in /usr/lib/cni (build-peers.sh not run)";
  }
  const multus = `${peersDir()}/bin/multus`;
  const haveMultus = isFile(multus);
  return {
    bins: {
      hydraBin: fileURLToPath(new URL("../bin", import.meta.url)),
      referenceBin,
      multus: haveMultus ? multus : undefined,
    },
    referenceSource,
    multusSource: haveMultus
      ? `Multus thin ${pinned.MULTUS_VERSION} (gopkg.in/k8snetworkplumbingwg/multus-cni.v4, ` +
        `cmd/multus, built by tests/infra/build-peers.sh)`
      : undefined,
  };
}

function checkPodLinks(c: BenchCase, podPath: string, after: "ADD" | "DEL"): void {
  const h = openHandle({ netnsPath: podPath });
  try {
    const names = new Set(listLinks(h).map((l) => l.name));
    for (const want of c.expectIfaces) {
      if (want === "lo") continue; // always there; loopback only changes its state
      if (after === "ADD" && !names.has(want)) {
        throw new Error(`${c.key}: after ADD the pod has no ${want} (has ${[...names]})`);
      }
      if (after === "DEL" && names.has(want)) {
        throw new Error(`${c.key}: after DEL the pod still has ${want}`);
      }
    }
  } finally {
    closeHandle(h);
  }
}

interface Samples {
  add: number[];
  del: number[];
  addDel: number[];
  cpuAddDel: number[];
  rssAdd: number[];
  rssDel: number[];
}

/** One pod through one case: fresh netns, ADD, checks, DEL, checks, teardown. */
async function runPod(
  world: BenchWorld,
  c: BenchCase,
  samples?: Samples,
  rss = false,
): Promise<void> {
  const pod = createPod(world);
  const spare = c.needsSpare ? createSpare(world) : undefined;
  const rssFile = rss ? `${world.dir}/rss` : undefined;
  try {
    const call: CniCall = {
      exe: c.exe,
      command: "ADD",
      containerId: `hbench-${world.id}-${pod.name.slice(pod.name.lastIndexOf("-") + 1)}`,
      netns: pod.path,
      ifName: c.ifName,
      path: c.path,
      config: c.config(spare),
    };
    const add = await runCni(world.nodePath, call, rssFile);
    assertSucceeded(c.key, call, add);
    const result = JSON.parse(add.stdout);
    if (typeof result?.cniVersion !== "string") {
      throw new Error(`${c.key}: ADD printed no CNI result: ${add.stdout.slice(0, 500)}`);
    }
    checkPodLinks(c, pod.path, "ADD");
    const delCall: CniCall = { ...call, command: "DEL" };
    const del = await runCni(world.nodePath, delCall, rssFile);
    assertSucceeded(c.key, delCall, del);
    checkPodLinks(c, pod.path, "DEL");
    if (samples && !rss) {
      samples.add.push(add.ms);
      samples.del.push(del.ms);
      samples.addDel.push(add.ms + del.ms);
      samples.cpuAddDel.push(add.cpuMs + del.cpuMs);
    }
    if (samples && rss) {
      if (add.rssKiB !== undefined) samples.rssAdd.push(add.rssKiB);
      if (del.rssKiB !== undefined) samples.rssDel.push(del.rssKiB);
    }
  } finally {
    if (spare) deleteSpare(world, spare);
    deletePod(world, pod);
  }
}

/** Files host-local/hydra-ipam keep per allocated address (not their bookkeeping files). */
async function leftoverAllocations(dir: string): Promise<string[]> {
  const left: string[] = [];
  try {
    for await (const net of Deno.readDir(dir)) {
      if (!net.isDirectory) continue;
      for await (const f of Deno.readDir(`${dir}/${net.name}`)) {
        if (f.name.startsWith("last_reserved_ip") || f.name === "lock") continue;
        if (f.name.startsWith(".")) continue;
        left.push(`${net.name}/${f.name}`);
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return left;
}

interface CaseReport {
  description: string;
  execsPerAdd: number;
  addDelMs: Summary;
  addMs: Summary;
  delMs: Summary;
  /** CPU time (user + system) of ADD+DEL's process trees. */
  addDelCpuMs: Summary;
  peakRssKiB: { add: number | null; del: number | null; samples: number };
}

function report(c: BenchCase, s: Samples): CaseReport {
  const max = (xs: number[]) => (xs.length ? Math.max(...xs) : null);
  return {
    description: c.description,
    execsPerAdd: c.execsPerAdd,
    addDelMs: summarize(s.addDel),
    addMs: summarize(s.add),
    delMs: summarize(s.del),
    addDelCpuMs: summarize(s.cpuAddDel),
    peakRssKiB: { add: max(s.rssAdd), del: max(s.rssDel), samples: s.rssAdd.length },
  };
}

/** Which hydra plugin kinds this tree has (answering VERSION through their symlink). */
async function hydraKinds(bins: Binaries): Promise<Set<Kind>> {
  const have = new Set<Kind>();
  for (const k of ALL_KINDS) {
    if (await versionsOf(`${bins.hydraBin}/hydra-${k}`)) have.add(k);
  }
  return have;
}

/** Runs the benchmark and returns its JSON document. */
export async function benchPlugins(argv: string[]): Promise<Record<string, unknown>> {
  const opts = parseOptions(argv);
  if (opts.help) return { help: HELP };
  const peers = locatePeers();
  const notes: string[] = [];
  const world = await createWorld();
  notes.push(
    "hydra-vxlan has no reference twin (the reference plugins have no vxlan plugin); " +
      "it is reported alone, and host-device is the third attachment of (a)-(c)",
  );
  const rss = opts.rssPods > 0 && haveGnuTime();
  if (opts.rssPods > 0 && !rss) notes.push("GNU time (/usr/bin/time) is missing: no peak RSS");
  let aborted = false;
  const onSignal = () => {
    aborted = true;
    log("interrupted; cleaning up");
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const bins: Binaries = peers.bins;
    const bundled = await bundleIsFresh();
    const refVersions = await versionsOf(`${bins.referenceBin}/bridge`);
    if (!refVersions) throw new Error(`no working reference bridge plugin in ${bins.referenceBin}`);
    const cniVersion = refVersions.includes("1.1.0") ? "1.1.0" : "1.0.0";
    const hydraHas = await hydraKinds(bins);
    if (!hydraHas.has("bridge") || !hydraHas.has("macvlan")) {
      throw new Error("hydra-bridge and hydra-macvlan must exist to run this benchmark");
    }
    let metaKinds: Kind[] = [...META_KINDS];
    if (!hydraHas.has("host-device") || !isFile(`${bins.referenceBin}/host-device`)) {
      metaKinds = ["bridge", "macvlan", "bridge"];
      notes.push("third attachment is a second bridge network: host-device is missing");
    }
    const cases: BenchCase[] = [];
    if (opts.cases.has("a")) cases.push(metaCase(world, bins, "hydra", metaKinds, cniVersion));
    if (opts.cases.has("b")) cases.push(metaCase(world, bins, "reference", metaKinds, cniVersion));
    if (opts.cases.has("c")) {
      if (bins.multus) {
        cases.push(multusCase(world, { ...bins, multus: bins.multus }, metaKinds, cniVersion));
      } else {
        notes.push("Multus thin is not built (tests/infra/build-peers.sh multus): no case (c)");
      }
    }
    const singles: Kind[] = [];
    if (opts.cases.has("d")) {
      for (const k of opts.kinds) {
        if (!hydraHas.has(k)) {
          notes.push(`hydra-${k} does not exist yet: not measured`);
          continue;
        }
        singles.push(k);
        cases.push(singleCase(world, bins, "hydra", k, cniVersion));
        if (k !== "vxlan" && isFile(`${bins.referenceBin}/${k}`)) {
          cases.push(singleCase(world, bins, "reference", k, cniVersion));
        }
      }
    }
    const samples = new Map<string, Samples>(
      cases.map((
        c,
      ) => [c.key, { add: [], del: [], addDel: [], cpuAddDel: [], rssAdd: [], rssDel: [] }]),
    );

    const started = performance.now();
    log(
      `world ${world.id}: ${cases.length} cases, ${opts.warmup} warm-up + ${opts.pods} pods each`,
    );
    for (let i = 0; i < opts.warmup; i++) {
      for (const c of cases) await runPod(world, c);
    }
    for (let i = 0; i < opts.pods; i++) {
      for (let j = 0; j < cases.length; j++) {
        if (aborted) throw new Error("interrupted");
        const c = cases[(i + j) % cases.length];
        await runPod(world, c, samples.get(c.key));
      }
      if ((i + 1) % 20 === 0 || i + 1 === opts.pods) {
        log(`${i + 1}/${opts.pods} pods, ${((performance.now() - started) / 1000).toFixed(0)} s`);
      }
    }
    if (rss) {
      for (let i = 0; i < opts.rssPods; i++) {
        for (const c of cases) await runPod(world, c, samples.get(c.key), true);
      }
    }
    const leftovers = await leftoverAllocations(`${world.dir}/ipam`);
    if (leftovers.length) {
      throw new Error(`addresses still allocated after every DEL: ${leftovers.join(", ")}`);
    }

    const reports: Record<string, CaseReport> = {};
    for (const c of cases) reports[c.key] = report(c, samples.get(c.key)!);
    const targets: Target[] = [];
    const ratios: Record<string, number> = {};
    const a = reports.a_meta_inprocess;
    const b = reports.b_meta_exec_reference;
    const cc = reports.c_multus_thin_reference;
    const ratio = (x: CaseReport, y: CaseReport) =>
      Math.round((x.addDelMs.median / y.addDelMs.median) * 1000) / 1000;
    if (a && cc) {
      targets.push(
        judge(
          "(a) meta-CNI in-process ≤ 0.5 × (c) Multus thin",
          {
            label: "a_meta_inprocess",
            summary: a.addDelMs,
          },
          { label: "c_multus_thin_reference", summary: cc.addDelMs },
          0.5,
        ),
      );
    }
    if (b && cc) ratios["b/c"] = ratio(b, cc);
    if (a && b) ratios["a/b"] = ratio(a, b);
    const single: Record<string, unknown> = {};
    for (const k of singles) {
      const hydra = reports[`${k}.hydra`];
      const ref = reports[`${k}.reference`];
      delete reports[`${k}.hydra`];
      delete reports[`${k}.reference`];
      const entry: Record<string, unknown> = { hydra };
      if (ref) {
        entry.reference = ref;
        const t = judge(
          `(d) hydra-${k} ≤ 1.5 × ${k}`,
          {
            label: `hydra-${k}`,
            summary: hydra.addDelMs,
          },
          { label: k, summary: ref.addDelMs },
          1.5,
        );
        targets.push(t);
        entry.ratio = t.ratio;
        entry.targetMet = t.met;
      }
      single[k] = entry;
    }
    return {
      bench: "plugins",
      unit: "ms",
      pods: opts.pods,
      warmupPods: opts.warmup,
      cniVersion,
      machine: await machineInfo(),
      peers: {
        reference: peers.referenceSource,
        ...(peers.multusSource ? { multus: peers.multusSource } : {}),
      },
      attachments: metaKinds,
      hydra: {
        launcher: bundled
          ? "bin/hydra running the single-file CNI build (tools/bundle.ts)"
          : "bin/hydra running main.ts (no fresh CNI build)",
        bundleFreshAtEnd: await bundleIsFresh(),
      },
      method: "each pod a fresh netns (made/removed outside the timed region); plugins exec'd " +
        "inside a node netns with a minimal environment; ADD+DEL = fork-to-exit time of ADD " +
        "plus that of DEL; CPU = user+system time of their process trees; cases interleaved per " +
        "pod; ratios and targets on medians of latency; peak RSS " +
        "= GNU time %M (largest single process of the invocation) over separate untimed pods",
      cases: reports,
      single,
      ratios,
      targets,
      allTargetsMet: targets.every((t) => t.met),
      notes,
      seconds: Math.round((performance.now() - started) / 100) / 10,
    };
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await destroyWorld(world);
  }
}

if (import.meta.main) {
  try {
    const doc = await benchPlugins(Deno.args);
    if (typeof doc.help === "string") console.error(doc.help);
    else console.log(JSON.stringify(doc, null, 2));
  } catch (err) {
    console.error(`[bench/plugins] error: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
