/**
 * Command line for the test peers:
 *
 *   cli.ts peers [name...]          build what is missing; prints PEERS_DIR=<folder>
 *   cli.ts cluster up [options]     start control plane + containerd in the background; prints
 *                                   KUBECONFIG=..., CONTAINERD_ADDRESS=... (shell-sourceable)
 *   cli.ts cluster down             stop what `cluster up` started
 *   cluster options: --state <file> (default <repo>/.cache/cluster.json),
 *                    --cni-conf-dir <dir>, --cni-bin-dir <dir> (repeatable), --no-containerd,
 *                    --kubelet (also join a kubelet using that containerd),
 *                    --control-loops (also run kube-scheduler and kube-controller-manager)
 *
 * @module
 */

import { parseArgs } from "node:util";
import { join } from "node:path";
import { type ControlPlaneRecord, startControlPlane, stopControlPlaneRecord } from "./cluster.ts";
import { cleanupContainerd, type ContainerdRecord, startContainerd } from "./containerd.ts";
import { type KubeletRecord, startKubelet, stopKubeletRecord } from "./kubelet.ts";
import { buildPeers, referencePluginDir, repoRoot } from "./peers.ts";
import { processGroupMembers } from "./process.ts";

/** What `cluster up` leaves behind for `cluster down`. */
interface ClusterState {
  controlPlane: ControlPlaneRecord;
  containerd?: ContainerdRecord;
  kubelet?: KubeletRecord;
  env: Record<string, string>;
}

const USAGE = `usage:
  cli.ts peers [name...]
  cli.ts cluster up [--state FILE] [--cni-conf-dir DIR] [--cni-bin-dir DIR]... [--no-containerd]
                   [--kubelet] [--control-loops]
  cli.ts cluster down [--state FILE]
  cli.ts cluster env [--state FILE]`;

function fail(message: string): never {
  console.error(message);
  Deno.exit(2);
}

function readState(path: string): ClusterState | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path)) as ClusterState;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

function printEnv(env: Record<string, string>): void {
  for (const [key, value] of Object.entries(env)) console.log(`${key}=${value}`);
}

async function clusterUp(statePath: string, values: ClusterFlags): Promise<void> {
  const existing = readState(statePath);
  if (existing) {
    const alive = processGroupMembers(existing.controlPlane.apiserverPid).length > 0;
    fail(
      alive
        ? `a cluster is already up (state ${statePath}); run \`cluster down\` first`
        : `stale state file ${statePath}; run \`cluster down\` to clean it up`,
    );
  }
  const withContainerd = !values["no-containerd"];
  const withKubelet = withContainerd && (values.kubelet ?? false);
  const controlLoops = values["control-loops"] ?? false;
  const peers = ["etcd", "kube"];
  if (controlLoops) peers.push("kube-control");
  if (withContainerd) peers.push("pause", "plugins", "crictl", "containerd");
  if (withKubelet) peers.push("kubelet");
  await buildPeers(peers);
  const cp = await startControlPlane({
    detach: true,
    scheduler: controlLoops,
    controllerManager: controlLoops,
  });
  const state: ClusterState = {
    controlPlane: cp.record,
    env: { KUBECONFIG: cp.kubeconfigPath, KUBE_SERVER: cp.server },
  };
  console.error(`control plane up in ${Math.round(cp.timings.total)}ms (${fmt(cp.timings)})`);
  try {
    if (withContainerd) {
      let confDir = values["cni-conf-dir"];
      if (!confDir) {
        confDir = join(cp.dir, "net.d");
        await Deno.mkdir(confDir, { recursive: true });
      }
      const binDirs = values["cni-bin-dir"]?.length
        ? values["cni-bin-dir"]
        : [referencePluginDir(), "/usr/lib/cni"];
      const ctd = await startContainerd({ cniConfDir: confDir, cniBinDirs: binDirs, detach: true });
      state.containerd = ctd.record;
      Object.assign(state.env, {
        CONTAINERD_ADDRESS: ctd.address,
        CONTAINERD_NRI_SOCKET: ctd.nriSocket,
        CONTAINERD_NETNS: ctd.netnsName,
        CONTAINERD_CGROUP_PARENT: ctd.cgroupParent,
        CRI_CONFIG_FILE: ctd.crictlConfig,
        CNI_CONF_DIR: confDir,
      });
      console.error(`containerd up in ${Math.round(ctd.timings.total)}ms (${fmt(ctd.timings)})`);
      if (withKubelet) {
        const kubelet = await startKubelet(cp, ctd, { detach: true });
        state.kubelet = kubelet.record;
        state.env.NODE_NAME = kubelet.nodeName;
        console.error(
          `kubelet ${kubelet.nodeName} registered in ${Math.round(kubelet.startupMs)}ms`,
        );
      }
    }
  } catch (err) {
    if (state.kubelet) await stopKubeletRecord(state.kubelet).catch(() => {});
    if (state.containerd) await cleanupContainerd(state.containerd).catch(() => {});
    await stopControlPlaneRecord(cp.record).catch(() => {});
    throw err;
  } finally {
    cp.api.close();
  }
  state.env.CLUSTER_STATE = statePath;
  await Deno.mkdir(join(statePath, ".."), { recursive: true });
  await Deno.writeTextFile(statePath, JSON.stringify(state, null, 2) + "\n");
  printEnv(state.env);
}

function fmt(timings: object): string {
  return Object.entries(timings).map(([k, v]) => `${k} ${Math.round(v as number)}ms`).join(", ");
}

async function clusterDown(statePath: string): Promise<void> {
  const state = readState(statePath);
  if (!state) {
    console.error(`no cluster state at ${statePath}; nothing to stop`);
    return;
  }
  const errors: unknown[] = [];
  if (state.kubelet) await stopKubeletRecord(state.kubelet).catch((e) => errors.push(e));
  if (state.containerd) await cleanupContainerd(state.containerd).catch((e) => errors.push(e));
  await stopControlPlaneRecord(state.controlPlane).catch((e) => errors.push(e));
  if (errors.length > 0) throw new AggregateError(errors, "cluster down failed");
  await Deno.remove(statePath);
  console.error("cluster down");
}

interface ClusterFlags {
  state?: string;
  "cni-conf-dir"?: string;
  "cni-bin-dir"?: string[];
  "no-containerd"?: boolean;
  kubelet?: boolean;
  "control-loops"?: boolean;
}

async function main(args: string[]): Promise<void> {
  const [command, ...rest] = args;
  if (command === "peers") {
    console.log(`PEERS_DIR=${await buildPeers(rest)}`);
    return;
  }
  if (command !== "cluster") fail(USAGE);
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      state: { type: "string" },
      "cni-conf-dir": { type: "string" },
      "cni-bin-dir": { type: "string", multiple: true },
      "no-containerd": { type: "boolean" },
      kubelet: { type: "boolean" },
      "control-loops": { type: "boolean" },
    },
  });
  const statePath = values.state ?? join(repoRoot, ".cache", "cluster.json");
  switch (positionals[0]) {
    case "up":
      return await clusterUp(statePath, values);
    case "down":
      return await clusterDown(statePath);
    case "env": {
      const state = readState(statePath);
      if (!state) fail(`no cluster state at ${statePath}`);
      return printEnv(state.env);
    }
    default:
      fail(USAGE);
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (err) {
    console.error(err instanceof Error ? err.message : err);
    Deno.exit(1);
  }
}
