/**
 * The arms of the pod start benchmark (pod_start_lib.ts): what each node
 * runs besides its containerd and kubelet.
 *
 * - `default`: the default network alone (reference bridge + host-local as
 *   containerd's first conf): the baseline.
 * - `multus_thick`: Multus thick as its DaemonSet runs it
 *   (tests/infra/multus_thick.ts): the daemon writes its shim's conf over the
 *   default one and runs every delegate.
 * - `multus_thin`: Multus thin as containerd's first conf, with a
 *   kubeconfig, the default conf as its cluster network.
 * - `hydra_meta`: hydra as deploy/hydra-meta.yaml runs it: `hydra install`
 *   with the installer container's arguments writes the meta-CNI conf
 *   wrapping the default conf, and `hydra daemon` runs with the daemon
 *   container's arguments. Only the paths differ (this node's folders and
 *   socket), and `hydra` is this tree's launcher (bin/hydra, the CNI
 *   build) rather than the image's compiled executable.
 * - `hydra_nri`: `hydra nri serve` as deploy/hydra-nri.yaml runs it, beside
 *   the default network, attaching the two NADs.
 * - `hydra_nri_builtin`: the same with the two NADs naming hydra's
 *   built-ins (hydra-bridge + hydra-ipam, same bridges and subnets), which
 *   the NRI plugin runs in its process instead of exec'ing. containerd
 *   calls NRI plugins under one lock for all pods, so what the plugin spends
 *   per pod in RunPodSandbox is paid in turn by every pod of a burst.
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ControlPlane } from "../tests/infra/cluster.ts";
import type { Containerd } from "../tests/infra/containerd.ts";
import { startMultusThick } from "../tests/infra/multus_thick.ts";
import { peersDir, referencePluginDir } from "../tests/infra/peers.ts";
import { spawnDaemon, stopProcessGroup, waitUntil } from "../tests/infra/process.ts";
import { nodeAgentKubeconfig } from "../tests/kube/helpers.ts";
import { jsonKubeconfig } from "../tests/meta_kube/api_access.ts";
import { connectNodeDaemon } from "../daemonclient/client.ts";
import { getFromEndpoint } from "../pkg/http.ts";
import { deployedArgs, flagValue } from "./deployed.ts";
import { bridgeNetwork } from "./kube_mode_lib.ts";

/** The arms, in the order a run takes them. */
export const ARM_NAMES = [
  "default",
  "multus_thick",
  "multus_thin",
  "hydra_meta",
  "hydra_nri",
  "hydra_nri_builtin",
] as const;
export type ArmName = typeof ARM_NAMES[number];

/** One arm's node, as far as the benchmark needs to know it. */
export interface ArmContext {
  cp: ControlPlane;
  arm: ArmName;
  /** The arm's namespace: its NADs and pods. */
  ns: string;
  dir: string;
  /** containerd's CNI conf folder. */
  confDir: string;
  /** Folders before the reference plugins on containerd's CNI path. */
  binDirs: string[];
  /** The default network's conf file (in confDir). */
  defaultConf: string;
  /** host-local's folder for every network of the arm. */
  ipamDir: string;
  /** A kubeconfig of hydra's node account (JSON). */
  kubeconfig: string;
  /** Set once the kubelet runs. */
  nodeName: string;
}

/** A long-running process an arm started. */
export interface ArmProcess {
  name: string;
  pid: number;
  stop(): Promise<void>;
}

interface ArmSpec {
  description: string;
  /**
   * Entries of a Ready pod's network-status: the meta-plugins write all
   * three networks, the NRI plugin the two it attaches (the default CNI
   * writes none), the baseline none.
   */
  statusEntries: number;
  /** Namespace, NADs and confs, before containerd starts. */
  prepare(cp: ControlPlane, arm: ArmName, dir: string): Promise<ArmContext>;
  /** What runs beside containerd and the kubelet, once they run. */
  start(ctx: ArmContext, ctd: Containerd): Promise<ArmProcess[]>;
  /** After the waves: throws unless the arm ran as it says (`pods` pods started and deleted). */
  check?(ctx: ArmContext, pods: number): Promise<void>;
}

const HYDRA_BIN = fileURLToPath(new URL("../bin", import.meta.url));

function octet(): number {
  return 1 + crypto.getRandomValues(new Uint8Array(1))[0] % 250;
}

/** The namespace, both NADs, the default conf and the node account, common to every arm. */
async function prepareCommon(cp: ControlPlane, arm: ArmName, dir: string): Promise<ArmContext> {
  const id = dir.slice(-6).replace(/[^a-z0-9]/gi, "").toLowerCase();
  const ns = `ps-${arm.replaceAll("_", "-")}-${id}`;
  await cp.createNamespace(ns);
  const confDir = join(dir, "net.d");
  const ipamDir = join(dir, "ipam");
  await Deno.mkdir(confDir);
  const [a, b, c] = [octet(), octet(), octet()];
  // A single-plugin .conf: Multus v4.3.0 loses a .conflist cluster network's plugin settings in
  // its DEL cache, for thin and thick alike.
  const defaultConf = join(confDir, "10-default.conf");
  await Deno.writeTextFile(
    defaultConf,
    JSON.stringify(
      bridgeNetwork("reference", "default", `psd${id}`, `10.241.${a}.0/24`, ipamDir, {
        isGateway: true,
      }),
    ),
  );
  // The NADs name the reference plugins, or hydra's built-ins for the arm that measures them.
  const kind = arm === "hydra_nri_builtin" ? "builtin" : "reference";
  for (const [color, third] of [["blue", b], ["green", c]] as const) {
    const subnet = `10.${color === "blue" ? 242 : 243}.${third}.0/24`;
    await cp.api.must(
      "POST",
      `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
      {
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name: color, namespace: ns },
        spec: {
          config: JSON.stringify(bridgeNetwork(kind, color, `ps${color[0]}${id}`, subnet, ipamDir)),
        },
      },
    );
  }
  const kubeconfig = await jsonKubeconfig(
    await nodeAgentKubeconfig(cp, ns),
    join(dir, "node.kubeconfig"),
  );
  return { cp, arm, ns, dir, confDir, binDirs: [], defaultConf, ipamDir, kubeconfig, nodeName: "" };
}

/** Starts a process in containerd's network namespace (the node's). */
function inNode(ctd: Containerd, name: string, dir: string, argv: string[]): ArmProcess {
  const d = spawnDaemon(name, "nsenter", {
    args: [`--net=/var/run/netns/${ctd.netnsName}`, "--", ...argv],
    logPath: join(dir, `${name}.log`),
  });
  return {
    name,
    pid: d.pid,
    async stop() {
      await stopProcessGroup(d.pid);
      await d.status;
    },
  };
}

/** Waits for `hydra daemon` to answer and have its caches synced. */
async function daemonSynced(socket: string, log: string): Promise<void> {
  await waitUntil("hydra daemon synced", async () => {
    const conn = await connectNodeDaemon(socket).catch(() => undefined);
    const res = conn ? await conn.call({ op: "ping" }, 2_000).catch(() => undefined) : undefined;
    conn?.close();
    return res?.ok === true && (res.body as { synced: boolean }).synced;
  }, 60_000).catch(async (err) => {
    throw new Error(`${(err as Error).message}: ${await Deno.readTextFile(log).catch(() => "")}`);
  });
}

/**
 * deploy/'s argument list (`--flag=value` form) with this node's values put
 * over some flags, others added, and those set to null dropped.
 */
function withFlags(args: string[], over: Record<string, string | null>): string[] {
  const kept = args.filter((a) => {
    const name = /^--([^=]+)/.exec(a)?.[1];
    return !name || !(name in over);
  });
  const added = Object.entries(over).filter(([, v]) => v !== null).map(([k, v]) => `--${k}=${v}`);
  return [...kept, ...added];
}

/** Where `hydra install` puts things on a test node, and how it reaches the API server. */
export interface InstallPaths {
  dir: string;
  confDir: string;
  tokenFile: string;
  caFile: string;
  server: string;
  /** The node daemon's socket. */
  socket: string;
}

/**
 * `hydra install --once` arguments as deploy/hydra-meta.yaml's installer
 * container has them, with a test node's paths over the host's and its
 * daemon socket added to the conf's keys; nothing else changes.
 */
export function hydraMetaInstallArgs(p: InstallPaths): string[] {
  const deployed = deployedArgs("hydra-meta.yaml", "install");
  const metaJson = JSON.parse(flagValue(deployed, "meta-json") ?? "{}");
  return withFlags(deployed, {
    "bin-dir": join(p.dir, "installed-bin"),
    "conf-dir": p.confDir,
    "state-dir": join(p.dir, "hydra.d"),
    "kubeconfig": join(p.dir, "hydra.kubeconfig"),
    "token-file": p.tokenFile,
    "ca-file": p.caFile,
    "server": p.server,
    "health-addr": null,
    // The test node authenticates with the token file it is given; minting one for the
    // hydra-node ServiceAccount needs that account and the Node, which the benchmark's cluster
    // has no use for. It changes who the node is, not what runs.
    "node-service-account": null,
    // This node's daemon socket instead of /run/hydra/daemon.sock, and the NADs' IPAM state in
    // the run's folder instead of /var/lib/cni.
    "meta-json": JSON.stringify({
      ...metaJson,
      daemonSocket: p.socket,
      nadPathRoots: { state: [p.dir] },
    }),
  });
}

/** Runs `hydra install --once` with {@link hydraMetaInstallArgs}; throws with its stderr. */
export async function installHydraMeta(p: InstallPaths): Promise<void> {
  await Deno.mkdir(join(p.dir, "installed-bin"), { recursive: true });
  const out = await new Deno.Command(`${HYDRA_BIN}/hydra`, {
    args: ["install", "--once", ...hydraMetaInstallArgs(p)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`hydra install failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** The arms. */
export const ARMS: Record<ArmName, ArmSpec> = {
  default: {
    description: "the default network only (reference bridge + host-local): the baseline",
    statusEntries: 0,
    prepare: prepareCommon,
    start: () => Promise.resolve([]),
  },
  multus_thick: {
    description: "Multus thick (daemon + shim) as its DaemonSet runs it, reference delegates",
    statusEntries: 3,
    async prepare(cp, arm, dir) {
      const ctx = await prepareCommon(cp, arm, dir);
      const shimDir = join(dir, "shim-bin");
      await Deno.mkdir(shimDir);
      return { ...ctx, binDirs: [shimDir] };
    },
    async start(ctx, ctd) {
      const thick = await startMultusThick(ctx.cp, {
        cniConfDir: ctx.confDir,
        shimBinDir: ctx.binDirs[0],
        netns: ctd.netnsName,
        nodeName: ctx.nodeName,
        config: { logLevel: "error" },
      });
      return [{ name: "multus-daemon", pid: thick.pid, stop: () => thick.stop() }];
    },
  },
  multus_thin: {
    description: "Multus thin as the first conf, with a kubeconfig, reference delegates",
    statusEntries: 3,
    async prepare(cp, arm, dir) {
      const ctx = await prepareCommon(cp, arm, dir);
      const binDir = join(dir, "multus-bin");
      await Deno.mkdir(binDir);
      await Deno.symlink(`${peersDir()}/bin/multus`, join(binDir, "multus"));
      await Deno.writeTextFile(
        join(ctx.confDir, "00-multus.conf"),
        JSON.stringify({
          cniVersion: "1.0.0",
          name: "multus",
          type: "multus",
          kubeconfig: ctx.kubeconfig,
          clusterNetwork: ctx.defaultConf,
          cniDir: join(dir, "multus-cache"),
          binDir: referencePluginDir(),
          confDir: ctx.confDir,
          logToStderr: false,
        }),
      );
      return { ...ctx, binDirs: [binDir] };
    },
    start: () => Promise.resolve([]),
  },
  hydra_meta: {
    description: "hydra meta-CNI and hydra daemon as deploy/hydra-meta.yaml runs them " +
      "(daemonExec: the daemon runs every ADD and DEL), reference delegates",
    statusEntries: 3,
    async prepare(cp, arm, dir) {
      const ctx = { ...await prepareCommon(cp, arm, dir), binDirs: [HYDRA_BIN] };
      const tokenFile = join(dir, "sa-token");
      await Deno.writeTextFile(tokenFile, await cp.mintServiceAccountToken(ctx.ns, "hydra-node"));
      await installHydraMeta({
        dir,
        confDir: ctx.confDir,
        tokenFile,
        caFile: cp.caPath,
        server: cp.server,
        socket: join(dir, "daemon.sock"),
      });
      return ctx;
    },
    async start(ctx, ctd) {
      const socket = join(ctx.dir, "daemon.sock");
      const args = withFlags(deployedArgs("hydra-meta.yaml", "daemon"), {
        socket,
        "health-addr": `unix:${join(ctx.dir, "daemon-metrics.sock")}`,
        kubeconfig: join(ctx.dir, "hydra.kubeconfig"),
        "node-name": ctx.nodeName,
        "spool-dir": join(ctx.dir, "spool"),
        // The node's folders, as /etc/cni/net.d and /opt/cni/bin are on a node.
        "cni-conf-dir": ctx.confDir,
        "cni-bin-dir": `${HYDRA_BIN}:${referencePluginDir()}`,
        "log-level": "warn",
      });
      const p = inNode(ctd, "hydra-daemon", ctx.dir, [`${HYDRA_BIN}/hydra`, ...args]);
      try {
        await daemonSynced(socket, join(ctx.dir, "hydra-daemon.log"));
      } catch (err) {
        await p.stop();
        throw err;
      }
      return [p];
    },
    async check(ctx, pods) {
      // The deployed conf asks for daemonExec: every ADD and DEL must have run in the daemon, not
      // in the exec'd hydra's fallback.
      const ranInDaemon = async () => {
        const metrics = (await getFromEndpoint(
          { transport: "unix", path: join(ctx.dir, "daemon-metrics.sock") },
          "/metrics",
        )).body;
        return Number(
          /^hydra_daemon_requests_total\{op="cni",result="ok"\} (\S+)/m.exec(metrics)?.[1] ?? 0,
        );
      };
      // The last DEL's count may land a moment after its addresses are released.
      const t0 = performance.now();
      let ran = 0;
      while ((ran = await ranInDaemon()) < 2 * pods && performance.now() - t0 < 10_000) {
        await new Promise((r) => setTimeout(r, 200));
      }
      if (ran < 2 * pods) {
        throw new Error(`hydra_meta: ${ran} invocations ran in the daemon, ${2 * pods} expected`);
      }
    },
  },
  hydra_nri: {
    description: "hydra nri serve as deploy/hydra-nri.yaml runs it beside the default network, " +
      "reference delegates",
    statusEntries: 2,
    prepare: prepareCommon,
    start: startNri,
  },
  hydra_nri_builtin: {
    description: "hydra nri serve as deploy/hydra-nri.yaml runs it beside the default network, " +
      "the NADs naming hydra-bridge + hydra-ipam (run in its process)",
    statusEntries: 2,
    prepare: prepareCommon,
    start: startNri,
  },
};

/** `hydra nri serve` with deploy/hydra-nri.yaml's arguments, this node's paths. */
async function startNri(ctx: ArmContext, ctd: Containerd): Promise<ArmProcess[]> {
  const confDir = join(ctx.dir, "nri-confs");
  await Deno.mkdir(confDir);
  const args = withFlags(deployedArgs("hydra-nri.yaml", "nri"), {
    "in-cluster": null,
    socket: ctd.nriSocket,
    kubeconfig: ctx.kubeconfig,
    "conf-dir": confDir,
    "cache-dir": join(ctx.dir, "nri-cache"),
    "cni-bin-dir": referencePluginDir(),
    // The NADs' IPAM state in the run's folder instead of /var/lib/cni.
    "nad-path-roots": JSON.stringify({ state: [ctx.dir] }),
    "health-addr": `unix:${join(ctx.dir, "nri-health.sock")}`,
    // deploy/ sets NODE_NAME from the pod's spec.nodeName.
    "node-name": ctx.nodeName,
    "log-level": "warn",
  });
  const p = inNode(ctd, "hydra-nri", ctx.dir, [`${HYDRA_BIN}/hydra`, ...args]);
  const health = { transport: "unix" as const, path: join(ctx.dir, "nri-health.sock") };
  try {
    await waitUntil(
      "hydra nri serve ready",
      async () => (await getFromEndpoint(health, "/readyz").catch(() => undefined))?.status === 200,
      60_000,
    );
    // A deployed plugin has listed long before pods arrive, as the daemon arm waits for its sync.
    await waitUntil(
      "hydra nri serve's watch caches listed",
      async () =>
        /^hydra_nri_watch_synced 1$/m.test(
          (await getFromEndpoint(health, "/metrics").catch(() => undefined))?.body ?? "",
        ),
      60_000,
    );
  } catch (err) {
    await p.stop();
    throw err;
  }
  return [p];
}
