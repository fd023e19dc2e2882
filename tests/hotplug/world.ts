/**
 * The world of the hot-plug tests and benchmark: a real kube-apiserver, a
 * real containerd and kubelet, and hydra in one of its two setups with hot
 * plug on:
 *
 * - "meta": hydra is the CNI conf containerd loads (Kubernetes mode, its
 *   cluster network a reference bridge conf named by path, `daemonSocket`
 *   set), and `hydra daemon --hotplug on` runs in containerd's network
 *   namespace (as on a node), asking containerd's CRI socket for sandboxes;
 * - "nri": containerd's own CNI conf is a reference bridge (eth0), and
 *   `hydra nri serve --kubeconfig … --hotplug on` runs in containerd's
 *   network namespace.
 *
 * Networks pods select, as NADs of the test namespace: `blue` and `green`
 * (reference bridge + host-local, or hydra-bridge + hydra-ipam with
 * `plugins: "hydra"`; each its own bridge and /24), `slow`
 * (the same on a third bridge, behind a wrapper plugin whose ADD first
 * touches `slowMarker` and sleeps `SLOW_ADD_S` seconds). The node account
 * has exactly the RBAC of the setup's deploy manifest.
 *
 * @module
 */

import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { type Containerd, startContainerd } from "../infra/containerd.ts";
import { type Kubelet, startKubelet } from "../infra/kubelet.ts";
import { referencePluginDir, versions } from "../infra/peers.ts";
import { type Daemon, logTail, poll, spawnDaemon, stopProcessGroup } from "../infra/process.ts";
import { run, uniqueName } from "../helpers/netns.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { jsonKubeconfig } from "../meta_kube/api_access.ts";
import type { Pod } from "../../kube/objects.ts";
import { getFromEndpoint } from "../../pkg/http.ts";
import { probeAll } from "../../cmd/icmp_probe.ts";
import { LOCK_DIR } from "../../plugins/host_lock.ts";

/** The launcher. */
export const HYDRA = `${REPO_ROOT}/bin/hydra`;
export const NETWORKS = "k8s.v1.cni.cncf.io/networks";
export const NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";
export const HOTPLUG = "hydra.clusternet.io/hotplug";
/** How long the `slow` network's ADD sleeps first. */
export const SLOW_ADD_S = 4;

export type Setup = "meta" | "nri";

/** One link of `ip -j addr`. */
export interface LinkAddrs {
  ifname: string;
  address?: string;
  operstate?: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

/** A network-status entry. */
export interface StatusEntry {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  default?: boolean;
}

/** An Event on a pod. */
export interface PodEvent {
  type: string;
  reason: string;
  message: string;
}

/** The running hot-plug agent (daemon or NRI plugin). */
export interface Agent {
  process: Daemon;
  /** Its metrics, Prometheus text. */
  metrics(): Promise<string>;
  /** SIGKILL to it and every process it started, and waits for the exit. */
  kill(): Promise<void>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number>;
}

/** A test world. */
export interface HotplugWorld {
  setup: Setup;
  cp: ControlPlane;
  ctd: Containerd;
  kubelet: Kubelet;
  ns: string;
  dir: string;
  /** Where the agent keeps its records. */
  cacheDir: string;
  /** Touched by the `slow` network's ADD when it starts. */
  slowMarker: string;
  agent: Agent;
  /** Starts the agent (again). */
  startAgent(): Promise<Agent>;
  /** Creates a pause pod accepting hot plug (unless `optIn` is false); waits until it runs. */
  runPod(name: string, networks: string, optIn?: boolean): Promise<Pod>;
  getPod(name: string): Promise<Pod>;
  /** Merge-patches the pod's annotations (null removes one). */
  annotate(name: string, annotations: Record<string, string | null>): Promise<void>;
  deletePod(name: string): Promise<void>;
  /** The pod's sandbox network namespace, from containerd. */
  netnsOf(pod: Pod): Promise<string>;
  /** `ip -j addr` in a namespace. */
  links(netns: string): Promise<LinkAddrs[]>;
  /** host-local's reservations of a network, as "ip containerId ifName" lines. */
  reservations(network: "blue" | "green" | "slow"): string[];
  /** Events of a pod. */
  events(name: string): Promise<PodEvent[]>;
  /** An ICMP echo to `to` from the namespace; true when answered. */
  ping(netns: string, to: string): Promise<boolean>;
  close(): Promise<void>;
}

/** The pod's network-status, parsed. */
export function statusOf(pod: Pod): StatusEntry[] {
  const text = pod.metadata.annotations?.[NETWORK_STATUS];
  return text ? JSON.parse(text) : [];
}

/** IPv4 addresses of a link, "a.b.c.d/len". */
export function v4(link: LinkAddrs | undefined): string[] {
  return (link?.addr_info ?? []).filter((a) => a.family === "inet").map((a) =>
    `${a.local}/${a.prefixlen}`
  );
}

function octet(): number {
  return 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
}

/** The deploy manifest's ClusterRole rules for hydra on a node in `setup`. */
async function manifestRules(setup: Setup): Promise<unknown[]> {
  const file = setup === "meta" ? "hydra-meta.yaml" : "hydra-nri.yaml";
  const wanted = setup === "meta" ? ["hydra", "hydra-daemon"] : ["hydra", "hydra-nri"];
  const docs = parseAllDocuments(await Deno.readTextFile(`${REPO_ROOT}/deploy/${file}`))
    .map((d) => d.toJSON());
  const roles = docs.filter((d) => d?.kind === "ClusterRole" && wanted.includes(d.metadata.name));
  if (roles.length !== wanted.length) throw new Error(`deploy/${file} lacks ${wanted}`);
  return roles.flatMap((r) => r.rules);
}

/** A ServiceAccount with the manifest's rules; its kubeconfig (JSON). */
async function nodeAccount(cp: ControlPlane, ns: string, setup: Setup, dir: string) {
  const name = uniqueName("hhp");
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name },
    rules: await manifestRules(setup),
  });
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
    subjects: [{ kind: "ServiceAccount", name, namespace: ns }],
  });
  return await jsonKubeconfig(
    await cp.mintServiceAccountKubeconfig(ns, name),
    join(dir, "node.kubeconfig"),
  );
}

/** A reference bridge network with host-local on its own /24. */
function bridgeConf(name: string, subnet: string, ipamDir: string, extra = {}) {
  return {
    cniVersion: "1.0.0",
    name,
    type: "bridge",
    bridge: uniqueName("hhb"),
    ipam: { type: "host-local", ranges: [[{ subnet: `${subnet}.0/24` }]], dataDir: ipamDir },
    ...extra,
  };
}

/** The wrapper plugin of `slow`: marks its start, sleeps on ADD, then runs the bridge. */
async function slowPlugin(binDir: string, marker: string): Promise<void> {
  await Deno.mkdir(binDir, { recursive: true });
  await Deno.writeTextFile(
    join(binDir, "slow-bridge"),
    `#!/bin/sh\nif [ "$CNI_COMMAND" = ADD ]; then touch ${marker}; sleep ${SLOW_ADD_S}; fi\n` +
      `exec ${join(referencePluginDir(), "bridge")}\n`,
    { mode: 0o755 },
  );
}

/** Which plugins blue and green run. */
export type Plugins =
  /** The reference bridge with host-local, exec'd. */
  | "reference"
  /** hydra-bridge with hydra-ipam, run in the agent's process. */
  | "hydra";

/** The NADs; returns the bridges hydra-bridge will make (their lock files are removed at the end). */
async function createNads(
  cp: ControlPlane,
  ns: string,
  dir: string,
  plugins: Plugins,
): Promise<string[]> {
  const ipamDir = join(dir, "ipam");
  const base = octet();
  const own = (conf: ReturnType<typeof bridgeConf>) =>
    plugins === "hydra"
      ? { ...conf, type: "hydra-bridge", ipam: { ...conf.ipam, type: "hydra-ipam" } }
      : conf;
  const blue = own(bridgeConf("blue-net", `10.231.${base}`, ipamDir));
  const green = own(bridgeConf("green-net", `10.232.${base}`, ipamDir));
  const nets: [string, Record<string, unknown>][] = [
    ["blue", blue],
    ["green", green],
    ["slow", { ...bridgeConf("slow-net", `10.233.${base}`, ipamDir), type: "slow-bridge" }],
  ];
  for (const [name, conf] of nets) {
    await cp.api.must(
      "POST",
      `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
      {
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name, namespace: ns },
        spec: { config: JSON.stringify(conf) },
      },
    );
  }
  return plugins === "hydra" ? [blue.bridge, green.bridge] : [];
}

/** containerd's CNI conf folder for the setup. */
async function containerdConf(setup: Setup, dir: string, kubeconfig: string): Promise<string> {
  const confDir = join(dir, "net.d");
  await Deno.mkdir(confDir);
  const cluster = bridgeConf("cluster", `10.230.${octet()}`, join(dir, "ipam"), {
    isGateway: true,
  });
  if (setup === "nri") {
    await Deno.writeTextFile(
      join(confDir, "10-default.conflist"),
      JSON.stringify({ cniVersion: "1.0.0", name: "cluster", plugins: [cluster] }),
    );
    return confDir;
  }
  const clusterPath = join(dir, "cluster.conflist");
  await Deno.writeTextFile(
    clusterPath,
    JSON.stringify({ cniVersion: "1.0.0", name: "cluster", plugins: [cluster] }),
  );
  await Deno.writeTextFile(
    join(confDir, "00-hydra.conflist"),
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "hydra",
      plugins: [{
        type: "hydra",
        kubeconfig,
        clusterNetwork: clusterPath,
        cacheDir: join(dir, "cache"),
        daemonSocket: join(dir, "daemon.sock"),
        logFile: join(dir, "hydra-cni.log"),
        logLevel: "info",
      }],
    }),
  );
  return confDir;
}

/** The agent's command line. */
function agentArgs(
  w: { setup: Setup; dir: string; ctd: Containerd; kubelet: Kubelet },
  kc: string,
) {
  const common = [`--node-name=${w.kubelet.nodeName}`, "--hotplug=on", "--log-level=debug"];
  if (w.setup === "meta") {
    return [
      "daemon",
      `--kubeconfig=${kc}`,
      `--socket=${join(w.dir, "daemon.sock")}`,
      `--listen=unix:${join(w.dir, "agent-metrics.sock")}`,
      `--spool-dir=${join(w.dir, "cache", "reports")}`,
      `--cache-dir=${join(w.dir, "cache")}`,
      `--cri-socket=${w.ctd.address}`,
      ...common,
    ];
  }
  return [
    "nri",
    "serve",
    `--socket=${w.ctd.nriSocket}`,
    `--kubeconfig=${kc}`,
    `--conf-dir=${join(w.dir, "multus.d")}`,
    `--cache-dir=${join(w.dir, "cache")}`,
    `--cni-bin-dir=${referencePluginDir()}:${join(w.dir, "bin")}`,
    `--health-addr=unix:${join(w.dir, "agent-metrics.sock")}`,
    ...common,
  ];
}

/** Waits until the agent serves its endpoint (and, for NRI, is connected). */
async function agentReady(w: { setup: Setup; dir: string }, d: Daemon): Promise<void> {
  const sock = join(w.dir, "agent-metrics.sock");
  const ok = await poll(
    async () => {
      try {
        Deno.statSync(`/proc/${d.pid}`);
      } catch {
        throw new Error(`agent exited: ${logTail(d, 40)}`);
      }
      try {
        return (await getFromEndpoint({ transport: "unix", path: sock }, "/readyz")).status === 200;
      } catch {
        return false;
      }
    },
    60_000,
    100,
  );
  if (!ok) throw new Error(`agent not ready: ${logTail(d, 40)}`);
}

/** Merge-patches of pod annotations over one kept connection (the first one made on use). */
function annotationPatcher(cp: ControlPlane) {
  let client: Deno.HttpClient | undefined;
  return {
    async patch(path: string, annotations: Record<string, string | null>): Promise<void> {
      client ??= Deno.createHttpClient({
        caCerts: [await Deno.readTextFile(cp.caPath)],
        cert: await Deno.readTextFile(cp.adminCertPath),
        key: await Deno.readTextFile(cp.adminKeyPath),
      });
      const res = await fetch(cp.server + path, {
        method: "PATCH",
        client,
        headers: { "content-type": "application/merge-patch+json" },
        body: JSON.stringify({ metadata: { annotations } }),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`PATCH ${path}: ${res.status} ${text}`);
    },
    close: () => client?.close(),
  };
}

/** Starts a world in `setup`; close() removes everything. */
export async function startHotplugWorld(
  setup: Setup,
  opts: { plugins?: Plugins } = {},
): Promise<HotplugWorld> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-hotplug-" });
  const cleanups: (() => Promise<void>)[] = [() => Deno.remove(dir, { recursive: true })];
  const closeAll = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  };
  try {
    const cp = await startControlPlane();
    cleanups.push(() => cp.stop());
    const ns = uniqueName("hp");
    await cp.createNamespace(ns);
    const bridges = await createNads(cp, ns, dir, opts.plugins ?? "reference");
    // hydra-bridge leaves a host lock file per bridge; these bridges go with containerd.
    cleanups.push(async () => {
      for (const b of bridges) {
        await Deno.remove(join(LOCK_DIR, `bridge-${b}.lock`)).catch(() => {});
      }
    });
    const kubeconfig = await nodeAccount(cp, ns, setup, dir);
    const slowMarker = join(dir, "slow-started");
    await slowPlugin(join(dir, "bin"), slowMarker);
    await Deno.mkdir(join(dir, "multus.d"));
    const confDir = await containerdConf(setup, dir, kubeconfig);
    const binDirs = setup === "meta"
      ? [`${REPO_ROOT}/bin`, referencePluginDir(), join(dir, "bin")]
      : [referencePluginDir()];
    const ctd = await startContainerd({ cniConfDir: confDir, cniBinDirs: binDirs });
    cleanups.push(() => ctd.stop());
    const kubelet = await startKubelet(cp, ctd);
    cleanups.push(() => kubelet.stop());
    return await assemble({ setup, cp, ctd, kubelet, ns, dir, slowMarker, kubeconfig }, cleanups);
  } catch (err) {
    await closeAll();
    throw err;
  }
}

interface Parts {
  setup: Setup;
  cp: ControlPlane;
  ctd: Containerd;
  kubelet: Kubelet;
  ns: string;
  dir: string;
  slowMarker: string;
  kubeconfig: string;
}

/** The world's handles, the agent started. */
async function assemble(
  p: Parts,
  cleanups: (() => Promise<void>)[],
): Promise<HotplugWorld> {
  const { cp, ctd, ns, dir } = p;
  const podPath = (name: string) => `/api/v1/namespaces/${ns}/pods/${name}`;
  const agents: Daemon[] = [];
  cleanups.push(async () => {
    for (const a of agents) await stopProcessGroup(a.pid).catch(() => {});
  });
  const patcher = annotationPatcher(cp);
  cleanups.push(() => Promise.resolve(patcher.close()));
  const inNetns = (netns: string, ...args: string[]) =>
    run("nsenter", `--net=${netns}`, "--", ...args);
  const w: HotplugWorld = {
    setup: p.setup,
    cp,
    ctd,
    kubelet: p.kubelet,
    ns,
    dir,
    cacheDir: join(dir, "cache"),
    slowMarker: p.slowMarker,
    agent: undefined as unknown as Agent,
    async startAgent() {
      const n = agents.length;
      const proc = spawnDaemon(`hydra ${p.setup}`, "nsenter", {
        args: [`--net=/var/run/netns/${ctd.netnsName}`, "--", HYDRA, ...agentArgs(p, p.kubeconfig)],
        logPath: join(dir, `agent-${n}.log`),
      });
      agents.push(proc);
      await agentReady(p, proc);
      w.agent = {
        process: proc,
        metrics: async () =>
          (await getFromEndpoint(
            { transport: "unix", path: join(dir, "agent-metrics.sock") },
            "/metrics",
          )).body,
        async kill() {
          // The whole process group, as when its container is killed: plugins it runs die too.
          Deno.kill(-proc.pid, "SIGKILL");
          await proc.status;
        },
        async stop() {
          Deno.kill(proc.pid, "SIGTERM");
          return (await proc.status!).code;
        },
      };
      return w.agent;
    },
    async runPod(name, networks, optIn = true) {
      const annotations: Record<string, string> = { [NETWORKS]: networks };
      if (optIn) annotations[HOTPLUG] = "true";
      await cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace: ns, annotations },
        spec: {
          nodeName: p.kubelet.nodeName,
          terminationGracePeriodSeconds: 0,
          containers: [{
            name: "main",
            image: versions().PAUSE_IMAGE,
            imagePullPolicy: "Never",
          }],
        },
      });
      let pod: Pod | undefined;
      const running = await poll(
        async () => {
          pod = await cp.api.must("GET", podPath(name)) as Pod;
          return pod.status?.phase === "Running";
        },
        120_000,
        200,
      );
      if (!running) throw new Error(`pod ${name} not running: ${JSON.stringify(pod?.status)}`);
      return pod!;
    },
    async getPod(name) {
      return await cp.api.must("GET", podPath(name)) as Pod;
    },
    annotate: (name, annotations) => patcher.patch(podPath(name), annotations),
    async deletePod(name) {
      await cp.api.must("DELETE", `${podPath(name)}?gracePeriodSeconds=0`, undefined, [404]);
      const gone = await poll(
        async () => (await cp.api.request("GET", podPath(name))).status === 404,
        90_000,
        250,
      );
      if (!gone) throw new Error(`pod ${name} not removed`);
    },
    async netnsOf(pod) {
      const uid = pod.metadata.uid!;
      const listed = JSON.parse(
        await ctd.crictl(
          "pods",
          "--label",
          `io.kubernetes.pod.uid=${uid}`,
          "--state",
          "ready",
          "-o",
          "json",
        ),
      ) as { items: { id: string }[] };
      const info = JSON.parse(await ctd.crictl("inspectp", "-o", "json", listed.items[0].id));
      const spaces = info.info.runtimeSpec.linux.namespaces as { type: string; path?: string }[];
      return spaces.find((s) => s.type === "network")!.path!;
    },
    async links(netns) {
      return JSON.parse(await inNetns(netns, "ip", "-j", "addr", "show"));
    },
    reservations(network) {
      const folder = join(dir, "ipam", `${network}-net`);
      const out: string[] = [];
      try {
        for (const e of Deno.readDirSync(folder)) {
          if (!/^[0-9.]+$/.test(e.name)) continue;
          const owner = Deno.readTextFileSync(join(folder, e.name)).replace(/\s+/g, " ").trim();
          out.push(`${e.name} ${owner}`);
        }
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      return out.sort();
    },
    async events(name) {
      const list = await cp.api.must("GET", `/api/v1/namespaces/${ns}/events`) as {
        items: (PodEvent & { involvedObject: { name: string } })[];
      };
      return list.items.filter((e) => e.involvedObject.name === name).map((e) => ({
        type: e.type,
        reason: e.reason,
        message: e.message,
      }));
    },
    ping(netns, to) {
      return Promise.resolve(probeAll(netns, [to], 2_000).get(to) === true);
    },
    async close() {
      for (const c of cleanups.reverse()) await c().catch(() => {});
    },
  };
  await w.startAgent();
  return w;
}
