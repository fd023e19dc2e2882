/**
 * Kubernetes-mode benchmark: pod ADD+DEL with two secondary networks
 * selected through NetworkAttachmentDefinitions, hydra's meta-CNI against
 * Multus thin in the same run, on the same real kube-apiserver, with the
 * same delegates.
 *
 * Cases (each pod's annotation selects two NADs; the cluster network is a
 * conf file named by path):
 * - `multus_thin_reference`: Multus thin (built from its Go module) with a
 *   kubeconfig, exec'ing the reference bridge + host-local;
 * - `multus_thick_reference`: Multus thick (same module and version) as its
 *   DaemonSet runs it (tests/infra/multus_thick.ts), its shim exec'd with
 *   the conf its daemon wrote, the daemon running the same delegates;
 * - `hydra_direct_reference` / `hydra_daemon_reference`: hydra asking the
 *   API server itself / through `hydra daemon`, same reference delegates;
 * - `hydra_direct_builtin` / `hydra_daemon_builtin`: the same with
 *   hydra-bridge + hydra-ipam run in-process;
 * - `delegates_alone_reference` / `alone_daemonexec_builtin`: no
 *   meta-plugin, one exec per network of the reference bridge + host-local
 *   / of hydra-bridge + hydra-ipam with `daemonExec`, handed to the daemon;
 * - `macvlan_alone_reference` / `macvlan_alone_daemonexec_builtin`: the
 *   same with three macvlan networks on the node's uplink (the reference
 *   macvlan + host-local / hydra-macvlan + hydra-ipam with `daemonExec`).
 *
 * Every process runs in a node network namespace that reaches the API
 * server through a veth pair (kernel forwarding only), the daemon too. Cases take turns pod by pod so load changes hit them alike.
 * Each ADD and DEL is checked (interfaces present, then gone) and each
 * pod's network-status is checked at the end. Peak RSS of each process
 * (GNU time, separate untimed pods) and the daemon's memory and CPU are
 * reported. Prints JSON.
 *
 *   deno run -A bench/kube_mode.ts [--pods 100] [--rss-pods 10] [--warmup 5] [--only key,...]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { startControlPlane } from "../tests/infra/cluster.ts";
import { peersDir, referencePluginDir, versions } from "../tests/infra/peers.ts";
import { spawnDaemon } from "../tests/infra/process.ts";
import { type MultusThick, startMultusThick } from "../tests/infra/multus_thick.ts";
import { nodeAgentKubeconfig } from "../tests/kube/helpers.ts";
import { API_ANYWHERE_ARGS, apiIntoNetns, jsonKubeconfig } from "../tests/meta_kube/api_access.ts";
import { connectNodeDaemon } from "../daemonclient/client.ts";
import { getFromEndpoint } from "../pkg/http.ts";
import { closeHandle, listLinks, openHandle } from "../netlink/mod.ts";
import { isFresh as bundleIsFresh } from "../tools/bundle.ts";
import { haveGnuTime } from "./cni_exec.ts";
import { machineInfo } from "./machine.ts";
import { histogramMeanMs, judge, summarize } from "./stats.ts";
import { createPod, createWorld, deletePod, destroyWorld } from "./world.ts";
import {
  bridgeNetwork,
  type DelegateKind,
  type KubeCall,
  type KubeCase,
  macvlanNetwork,
  processCpuSeconds,
  processMemory,
  registerNode,
  runAlone,
  runKubeCni,
} from "./kube_mode_lib.ts";
import { kubeCases } from "./kube_mode_cases.ts";

/** `ms` to two decimals; undefined stays undefined. */
function round2(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.round(ms * 100) / 100;
}

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    pods: { type: "string", default: "100" },
    "rss-pods": { type: "string", default: "10" },
    warmup: { type: "string", default: "5" },
    only: { type: "string" },
  },
});
const PODS = Number(flags.pods);
const RSS_PODS = Number(flags["rss-pods"]);
const WARMUP = Number(flags.warmup);
const hydraBin = fileURLToPath(new URL("../bin", import.meta.url));
const multusExe = `${peersDir()}/bin/multus`;
const referenceBin = referencePluginDir();
const pinned = versions();
const machine = await machineInfo();
const notes: string[] = [];

/**
 * Multus thick in the node namespace, its cluster network the reference one
 * (the only conf in its conf folder), watching this node's pods.
 */
async function startThick(
  cp: Awaited<ReturnType<typeof startControlPlane>>,
  world: { dir: string; nodeNetns: string },
  server: string,
  nodeName: string,
  clusterConf: string,
): Promise<MultusThick> {
  const confDir = `${world.dir}/thick-net.d`;
  const shimDir = `${world.dir}/thick-bin`;
  await Deno.mkdir(confDir);
  await Deno.mkdir(shimDir);
  await Deno.copyFile(clusterConf, `${confDir}/10-cluster.conf`);
  return await startMultusThick(cp, {
    cniConfDir: confDir,
    shimBinDir: shimDir,
    binDir: referenceBin,
    netns: world.nodeNetns,
    server,
    nodeName,
    config: { logLevel: "error" },
  });
}

const cp = await startControlPlane({ apiserverArgs: API_ANYWHERE_ARGS });
const world = await createWorld();
let daemonPid: number | undefined;
let thick: MultusThick | undefined;
let daemonStatus: Promise<Deno.CommandStatus> | undefined;
try {
  const dir = world.dir;
  const nodeServer = await apiIntoNetns(world.nodeNetns, cp.server);
  const ns = `bench-${world.id}`;
  await cp.createNamespace(ns);
  const account = await nodeAgentKubeconfig(cp, ns);
  const kcNode = await jsonKubeconfig(account, `${dir}/node.kubeconfig`, nodeServer);
  const nodeName = `bench-${world.id}`;
  await registerNode(cp.api, nodeName);

  // Networks per delegate kind: the cluster network (a file) and two NADs.
  const clusterPath: Record<DelegateKind, string> = { reference: "", builtin: "" };
  /** Each kind's three networks (cluster, blue, green) as confs, for the delegates-alone case. */
  const netConfs: Record<DelegateKind, Record<string, unknown>[]> = { reference: [], builtin: [] };
  for (const [k, kind] of (["reference", "builtin"] as const).entries()) {
    const plugin = bridgeNetwork(
      kind,
      `cluster-${kind}`,
      `hkc${world.id}${k}`,
      `10.${200 + k}.0.0/20`,
      `${dir}/ipam`,
      { isGateway: true },
    );
    // A single-plugin .conf: Multus thin v4.3.0 loses a .conflist cluster network's plugin
    // fields in its DEL cache ("no IP ranges specified"), which would fail every DEL.
    clusterPath[kind] = `${dir}/cluster-${kind}.conf`;
    await Deno.writeTextFile(clusterPath[kind], JSON.stringify(plugin));
    netConfs[kind].push(plugin);
    for (const [j, color] of ["blue", "green"].entries()) {
      const conf = bridgeNetwork(
        kind,
        `${color}-${kind}`,
        `hk${color[0]}${world.id}${k}`,
        `10.${210 + k}.${j * 16}.0/20`,
        `${dir}/ipam`,
      );
      netConfs[kind].push(conf);
      await cp.api.must(
        "POST",
        `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
        {
          apiVersion: "k8s.cni.cncf.io/v1",
          kind: "NetworkAttachmentDefinition",
          metadata: { name: `${color}-${kind}`, namespace: ns },
          spec: { config: JSON.stringify(conf) },
        },
      );
    }
  }

  /** Each kind's three macvlan networks on the node's uplink, for the macvlan-alone cases. */
  const macvlanConfs: Record<DelegateKind, Record<string, unknown>[]> = {
    reference: [],
    builtin: [],
  };
  for (const [k, kind] of (["reference", "builtin"] as const).entries()) {
    for (let j = 0; j < 3; j++) {
      macvlanConfs[kind].push(
        macvlanNetwork(
          kind,
          `mv${j}-${kind}`,
          world.uplink,
          `10.${220 + k}.${j * 16}.0/20`,
          `${dir}/ipam`,
        ),
      );
    }
  }

  const daemonSocket = `${dir}/daemon.sock`;
  const metricsSocket = `${dir}/daemon-metrics.sock`;
  const only = flags.only ? new Set(flags.only.split(",")) : undefined;
  if (!only || only.has("multus_thick_reference")) {
    thick = await startThick(cp, world, nodeServer, nodeName, clusterPath.reference);
  }
  const all = kubeCases({
    dir,
    kubeconfig: kcNode,
    clusterPath,
    netConfs,
    macvlanConfs,
    referenceBin,
    hydraBin,
    multusExe,
    multusVersion: pinned.MULTUS_VERSION,
    daemonSocket,
    multusThick: thick && { shim: thick.shimPath, conf: await Deno.readFile(thick.confPath) },
  });
  let selected = all.filter((c) => !only || only.has(c.key));
  try {
    Deno.statSync(multusExe);
  } catch {
    selected = selected.filter((c) => c.key !== "multus_thin_reference");
    notes.push("Multus thin is not built (tests/infra/build-peers.sh multus): no Multus case");
  }

  // Pod objects: each case its own, all selecting its kind's two NADs.
  const perCase = WARMUP + PODS + RSS_PODS;
  const cases: KubeCase[] = [];
  for (const c of selected) {
    const pods = [];
    for (let i = 0; i < perCase && !c.alone; i++) {
      const name = `${c.key.replaceAll("_", "-")}-${i}`;
      const pod = await cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: {
          name,
          namespace: ns,
          annotations: {
            "k8s.v1.cni.cncf.io/networks": `blue-${c.delegates},green-${c.delegates}`,
          },
        },
        spec: { nodeName, containers: [{ name: "main", image: "localhost/hydra/pause:1.0" }] },
      }) as { metadata: { uid: string } };
      pods.push({ name, uid: pod.metadata.uid });
    }
    cases.push({ ...c, pods });
  }

  // The daemon runs a daemonExec invocation only with a conf it finds in the node's conf
  // folder, as the runtime found it: each such case's conf is a file there.
  const nodeConfDir = `${dir}/node-net.d`;
  await Deno.mkdir(nodeConfDir);
  const execCases = cases.filter((c) => c.key.includes("daemonexec"));
  for (const c of execCases) {
    for (const config of c.alone ? c.alone.map((s) => s.config) : [c.config]) {
      const conf = JSON.parse(new TextDecoder().decode(config));
      await Deno.writeTextFile(`${nodeConfDir}/${conf.name}.conf`, JSON.stringify(conf));
    }
  }

  if (cases.some((c) => c.key.includes("daemon"))) {
    // In the node namespace, as hostNetwork on a node: with daemonExec it attaches pods itself.
    const d = spawnDaemon("hydra daemon", "ip", {
      args: [
        "netns",
        "exec",
        world.nodeNetns,
        `${hydraBin}/hydra`,
        "daemon",
        "--kubeconfig",
        kcNode,
        "--node-name",
        nodeName,
        "--socket",
        daemonSocket,
        "--health-addr",
        `unix:${metricsSocket}`,
        "--spool-dir",
        `${dir}/hydra-cache/reports`,
        "--cni-conf-dir",
        nodeConfDir,
        "--cni-bin-dir",
        `${hydraBin}:${referenceBin}`,
        "--log-level",
        "warn",
      ],
      logPath: `${dir}/daemon.log`,
    });
    daemonPid = d.pid;
    daemonStatus = d.status;
    for (let i = 0;; i++) {
      const conn = await connectNodeDaemon(daemonSocket).catch(() => undefined);
      const res = conn ? await conn.call({ op: "ping" }, 2_000).catch(() => undefined) : undefined;
      conn?.close();
      if (res?.ok && (res.body as { synced: boolean }).synced) break;
      if (i > 300) {
        throw new Error(
          `hydra daemon did not start: ${await Deno.readTextFile(`${dir}/daemon.log`)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const ifaces = (path: string): string[] => {
    const h = openHandle({ netnsPath: path });
    try {
      return listLinks(h).map((l) => l.name).filter((n) => n !== "lo").sort();
    } finally {
      closeHandle(h);
    }
  };

  /**
   * After a DEL the pod's interfaces are gone; links the daemon set aside for its deletion after
   * the answer (renamed hy-del-<n>, out of use, no addresses) may take a moment more under load.
   */
  const noLinksLeft = async (key: string, path: string) => {
    let left = ifaces(path);
    for (let i = 0; i < 100 && left.length && left.every((n) => n.startsWith("hy-del-")); i++) {
      await new Promise((r) => setTimeout(r, 20));
      left = ifaces(path);
    }
    if (left.length) throw new Error(`${key}: after DEL the pod still has ${left}`);
  };

  const samples = new Map(
    cases.map((
      c,
    ) => [c.key, {
      add: [] as number[],
      del: [] as number[],
      addDel: [] as number[],
      rssAdd: [] as number[],
      rssDel: [] as number[],
    }]),
  );
  const runPod = async (c: KubeCase, index: number, mode: "warmup" | "timed" | "rss") => {
    const netns = createPod(world);
    const rssFile = mode === "rss" ? `${dir}/rss` : undefined;
    try {
      const call: KubeCall = {
        exe: c.exe,
        command: "ADD",
        containerId: `${c.key}-${index}-${world.id}`,
        netns: netns.path,
        path: c.path,
        config: c.config,
        pod: { namespace: ns, ...(c.pods[index] ?? { name: `alone-${index}`, uid: "" }) },
      };
      const add = c.alone
        ? await runAlone(world.nodePath, c, call, "ADD", rssFile)
        : await runKubeCni(world.nodePath, call, rssFile);
      if (add.code !== 0 || !JSON.parse(add.stdout).cniVersion) {
        throw new Error(
          `${c.key} ADD of ${call.pod.name} failed (${add.code}): ${add.stdout}${add.stderr}`,
        );
      }
      const got = ifaces(netns.path);
      if (got.join() !== "eth0,net1,net2") {
        throw new Error(`${c.key}: after ADD the pod has ${got}`);
      }
      const del = c.alone
        ? await runAlone(world.nodePath, c, call, "DEL", rssFile)
        : await runKubeCni(world.nodePath, { ...call, command: "DEL" }, rssFile);
      if (del.code !== 0) {
        throw new Error(`${c.key} DEL failed (${del.code}): ${del.stdout}${del.stderr}`);
      }
      await noLinksLeft(c.key, netns.path);
      const s = samples.get(c.key)!;
      if (mode === "timed") {
        s.add.push(add.ms);
        s.del.push(del.ms);
        s.addDel.push(add.ms + del.ms);
      } else if (mode === "rss") {
        if (add.rssKiB) s.rssAdd.push(add.rssKiB);
        if (del.rssKiB) s.rssDel.push(del.rssKiB);
      }
    } finally {
      deletePod(world, netns);
    }
  };

  for (let i = 0; i < WARMUP; i++) for (const c of cases) await runPod(c, i, "warmup");
  const daemonCpuBefore = daemonPid ? await processCpuSeconds(daemonPid, true) : 0;
  const thickCpuBefore = thick ? await processCpuSeconds(thick.pid, true) : 0;
  for (let i = 0; i < PODS; i++) for (const c of cases) await runPod(c, WARMUP + i, "timed");
  const daemonCpu = daemonPid ? await processCpuSeconds(daemonPid, true) - daemonCpuBefore : 0;
  const thickCpu = thick ? await processCpuSeconds(thick.pid, true) - thickCpuBefore : 0;
  if (haveGnuTime()) {
    for (let i = 0; i < RSS_PODS; i++) {
      for (const c of cases) await runPod(c, WARMUP + PODS + i, "rss");
    }
  } else notes.push("GNU time is missing: no per-process RSS");

  // Every pod's network-status (the daemon writes in the background).
  const statusCount = async (c: KubeCase) => {
    const list = await cp.api.must("GET", `/api/v1/namespaces/${ns}/pods`) as {
      items: { metadata: { name: string; annotations?: Record<string, string> } }[];
    };
    const mine = new Set(c.pods.map((p) => p.name));
    return list.items.filter((p) =>
      mine.has(p.metadata.name) &&
      JSON.parse(p.metadata.annotations?.["k8s.v1.cni.cncf.io/network-status"] ?? "[]").length === 3
    ).length;
  };
  const statusWritten: Record<string, string> = {};
  for (const c of cases.filter((c) => !c.alone)) {
    let n = 0;
    for (let i = 0; i < 300 && (n = await statusCount(c)) < perCase; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    statusWritten[c.key] = `${n}/${perCase}`;
  }

  const report: Record<string, unknown> = {};
  for (const c of cases) {
    const s = samples.get(c.key)!;
    const rss = (xs: number[]) =>
      xs.length ? { medianKiB: summarize(xs).median, maxKiB: Math.max(...xs) } : null;
    report[c.key] = {
      description: c.description,
      addMs: summarize(s.add),
      delMs: summarize(s.del),
      addDelMs: summarize(s.addDel),
      peakRss: { add: rss(s.rssAdd), del: rss(s.rssDel) },
    };
  }
  let daemon: Record<string, unknown> | undefined;
  if (daemonPid) {
    const mem = await processMemory(daemonPid);
    const metrics =
      (await getFromEndpoint({ transport: "unix", path: metricsSocket }, "/metrics")).body;
    const pick = (re: RegExp) => metrics.split("\n").filter((l) => re.test(l));
    // Every daemonExec ADD and DEL must have run in the daemon, not fallen back to the exec.
    const ran = Number(
      pick(/^hydra_daemon_requests_total\{op="cni",result="ok"\} /)[0]?.split(" ")[1] ?? 0,
    );
    const perPod = execCases.reduce((n, c) => n + 2 * (c.alone?.length ?? 1), 0);
    const expected = perPod * (WARMUP + PODS + (haveGnuTime() ? RSS_PODS : 0));
    if (ran < expected) {
      throw new Error(`only ${ran} of ${expected} daemonExec invocations ran in the daemon`);
    }
    daemon = {
      peakRssKiB: mem.peakKiB,
      rssKiBAtEnd: mem.nowKiB,
      cpuSecondsDuringTimedPods: Math.round(daemonCpu * 100) / 100,
      metrics: pick(
        /^hydra_daemon_(reads_total|reports_total|cached_objects|requests_total|request_duration_seconds_(sum|count))/,
      ),
      // The daemon's own share of every daemonExec invocation (all cases, warm-up included),
      // from its answer-time histogram: the rest of an exec's time is the exec'd process.
      cniAnswerMeanMs: round2(
        histogramMeanMs(metrics, "hydra_daemon_request_duration_seconds", 'op="cni"'),
      ),
    };
  }
  const multusThickDaemon = thick
    ? {
      peakRssKiB: (await processMemory(thick.pid)).peakKiB,
      rssKiBAtEnd: (await processMemory(thick.pid)).nowKiB,
      // With the delegates it ran (its reaped children), as the hydra daemon's.
      cpuSecondsDuringTimedPods: Math.round(thickCpu * 100) / 100,
    }
    : undefined;
  /** A case's ADD+DEL summary; undefined when it did not run. */
  const addDelOf = (key: string) =>
    (report[key] as { addDelMs: ReturnType<typeof summarize> } | undefined)?.addDelMs;
  /** `subject` ≤ `limit` × `baseline` on ADD+DEL medians; none when either did not run. */
  const ratioTarget = (subject: string, baseline: string, limit: number) => {
    const s = addDelOf(subject);
    const b = addDelOf(baseline);
    return s && b
      ? [judge(
        `${subject} ≤ ${limit} × ${baseline} (ADD+DEL median)`,
        { label: subject, summary: s },
        { label: baseline, summary: b },
        limit,
      )]
      : [];
  };
  const targets = [
    ...cases.filter((c) => c.key.startsWith("hydra"))
      .flatMap((c) => ratioTarget(c.key, "multus_thin_reference", 0.5)),
    // hydra's plugins exec'd alone, handing their invocations to the daemon: at most 1.5 × the
    // reference plugins exec'd alone on the same networks.
    ...ratioTarget("alone_daemonexec_builtin", "delegates_alone_reference", 1.5),
    ...ratioTarget("macvlan_alone_daemonexec_builtin", "macvlan_alone_reference", 1.5),
    // Against Multus thick: the daemon with built-ins at most half, with the reference plugins at
    // most as much.
    ...cases.filter((c) => c.key.startsWith("hydra_daemon")).flatMap((c) =>
      ratioTarget(c.key, "multus_thick_reference", c.delegates === "builtin" ? 0.5 : 1.0)
    ),
  ];
  console.log(JSON.stringify(
    {
      bench: "kube_mode",
      machine,
      setup: {
        pods: PODS,
        warmupPods: WARMUP,
        rssPods: RSS_PODS,
        secondaryNetworks: 2,
        kubernetes: pinned.KUBERNETES_VERSION,
        multus: `${pinned.MULTUS_VERSION} thin (cmd/multus, built by tests/infra/build-peers.sh)`,
        referencePlugins: `${pinned.CNI_PLUGINS_VERSION} (built from the Go module by tests/infra)`,
        launcher: (await bundleIsFresh())
          ? "bin/hydra running the single-file CNI build"
          : "bin/hydra running main.ts (CNI build stale or missing)",
        apiPath:
          "node namespace (CNI processes and hydra daemon) → veth → kube-apiserver (DNAT, no relay)",
      },
      cases: report,
      daemon,
      multusThickDaemon,
      statusWritten,
      targets,
      notes,
    },
    null,
    2,
  ));
} finally {
  await thick?.stop().catch(() => {});
  if (daemonPid) {
    try {
      Deno.kill(daemonPid, "SIGTERM");
    } catch {
      // already gone
    }
    await daemonStatus;
  }
  await destroyWorld(world);
  await cp.stop();
}
