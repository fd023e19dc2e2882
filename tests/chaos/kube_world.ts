/**
 * The node of {@link createNodeWorld} in a cluster: a real kube-apiserver and
 * etcd, the node's pods as Pod objects, the meta-CNI in Kubernetes mode with
 * the node kubeconfig's identity from deploy/ (token bound to the Node), and
 * `hydra daemon` in the node namespace with its own (daemonExec: the exec'd
 * meta-CNI hands it whole invocations). The daemon can be killed and started
 * again, the API server and etcd stopped, frozen and started again.
 *
 * @module
 */

import { join } from "node:path";
import { connectNodeDaemon } from "../../daemonclient/client.ts";
import type { ControlPlane } from "../infra/cluster.ts";
import { startControlPlane } from "../infra/cluster.ts";
import { type Daemon, spawnDaemon, stopProcessGroup, waitUntil } from "../infra/process.ts";
import { daemonIdentityKubeconfig, nodeIdentityKubeconfig } from "../kube/manifest_rbac.ts";
import { API_ANYWHERE_ARGS, apiIntoNetns, jsonKubeconfig } from "../meta_kube/api_access.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { BIN, createNodeWorld, type NodeWorld, strayHostLinks } from "./node_world.ts";
import type { Rng } from "./rng.ts";

/** A pod of the cluster on the node. */
export interface KubePod {
  name: string;
  uid: string;
}

/** The node in a cluster. */
export interface KubeWorld {
  w: NodeWorld;
  cp: ControlPlane;
  ns: string;
  nodeName: string;
  socket: string;
  /** The meta-CNI conf (Kubernetes mode, daemonExec). */
  conf(): Record<string, unknown>;
  /** A Pod object bound to the node. */
  createPod(name: string): Promise<KubePod>;
  /** The CNI_* environment for `pod`'s container. */
  env(command: string, cid: string, pod: KubePod, netns: TestNetns): Record<string, string>;
  /** The running daemon, if any. */
  daemon(): Daemon | undefined;
  /** Starts the daemon and waits until it answers with synced caches. */
  startDaemon(): Promise<void>;
  /** True while the daemon process runs. */
  daemonAlive(): boolean;
  /** SIGKILL to the daemon. */
  killDaemon(): Promise<void>;
  /** The daemon's log. */
  daemonLog(): string;
  /** Stops, freezes, or starts again the API server or etcd. */
  apiserver: PeerControl;
  etcd: PeerControl;
  close(): Promise<void>;
}

/** A peer process the scenarios take away and bring back. */
export interface PeerControl {
  kill(): Promise<void>;
  freeze(frozen: boolean): void;
  start(): Promise<void>;
}

/** The command line of a running process. */
function cmdline(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a) => a !== "");
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** Control of one of the control plane's processes (started again with its own command line). */
function peerControl(cp: ControlPlane, which: "apiserver" | "etcd"): PeerControl {
  let pid = which === "apiserver" ? cp.record.apiserverPid : cp.record.etcdPid;
  const argv = cmdline(pid);
  let restarted: Daemon | undefined;
  const ready = async () => {
    await waitUntil(`${which} back`, async () => {
      try {
        return (await cp.api.request("GET", "/readyz")).status === 200;
      } catch {
        return false;
      }
    }, 120_000);
  };
  return {
    async kill() {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
      for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    },
    freeze(frozen) {
      try {
        Deno.kill(pid, frozen ? "SIGSTOP" : "SIGCONT");
      } catch {
        // gone
      }
    },
    async start() {
      if (alive(pid)) {
        this.freeze(false);
      } else {
        restarted = spawnDaemon(which, argv[0], {
          args: argv.slice(1),
          logPath: which === "apiserver" ? cp.logPaths.apiserver : cp.logPaths.etcd,
        });
        pid = restarted.pid;
        if (which === "apiserver") cp.record.apiserverPid = pid;
        else cp.record.etcdPid = pid;
      }
      await ready();
    },
  };
}

/** Starts the cluster and the node (not the daemon). */
export async function createKubeWorld(rng: Rng): Promise<KubeWorld> {
  const w = await createNodeWorld(rng);
  const cp = await startControlPlane({ apiserverArgs: API_ANYWHERE_ARGS }).catch(async (err) => {
    await w.close();
    throw err;
  });
  try {
    const ns = `chaos-${w.id}`;
    await cp.createNamespace(ns);
    const nodeName = `chaos-node-${w.id}`;
    const server = await apiIntoNetns(w.node.name, cp.server);
    // The veth that carries the node's API traffic is the node's own.
    for (const l of strayHostLinks(w)) w.ownLinks.add(l);
    const nodeKc = await jsonKubeconfig(
      await nodeIdentityKubeconfig(cp, nodeName),
      join(w.dir, "node.kubeconfig"),
      server,
    );
    const daemonKc = await jsonKubeconfig(
      await daemonIdentityKubeconfig(cp, nodeName),
      join(w.dir, "daemon.kubeconfig"),
      server,
    );
    const clusterConf = join(w.dir, "chaosnet.conflist");
    await Deno.writeTextFile(clusterConf, JSON.stringify(w.confList()));
    const socket = join(w.dir, "daemon.sock");
    let daemon: Daemon | undefined;
    const logPath = join(w.dir, "daemon.log");
    const kw: KubeWorld = {
      w,
      cp,
      ns,
      nodeName,
      socket,
      conf: () =>
        w.metaConf({
          delegates: undefined,
          clusterNetwork: clusterConf,
          kubeconfig: nodeKc,
          daemonSocket: socket,
          daemonExec: true,
          apiTimeout: 3,
          nadPathRoots: { state: [w.dir] },
        }),
      async createPod(name) {
        const pod = await cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name, namespace: ns },
          spec: { nodeName, containers: [{ name: "main", image: "localhost/hydra/pause:1.0" }] },
        }) as { metadata: { uid: string } };
        return { name, uid: pod.metadata.uid };
      },
      env(command, cid, pod, netns) {
        return {
          ...w.env(command, { cid, pod: netns }),
          CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${pod.name};` +
            `K8S_POD_INFRA_CONTAINER_ID=${cid};K8S_POD_UID=${pod.uid}`,
        };
      },
      daemon: () => daemon,
      daemonAlive: () => daemon !== undefined && alive(daemon.pid),
      async startDaemon() {
        daemon = spawnDaemon("hydra daemon", "ip", {
          args: [
            "netns",
            "exec",
            w.node.name,
            `${BIN}/hydra`,
            "daemon",
            "--kubeconfig",
            daemonKc,
            "--node-name",
            nodeName,
            "--socket",
            socket,
            "--listen",
            `unix:${join(w.dir, "daemon-health.sock")}`,
            "--spool-dir",
            join(w.cacheDir, "reports"),
          ],
          logPath,
        });
        const d = daemon;
        await waitUntil(
          "hydra daemon synced",
          async () => {
            const conn = await connectNodeDaemon(socket).catch(() => undefined);
            if (!conn) return false;
            try {
              const res = await conn.call({ op: "ping" }, 2_000);
              return res.ok && (res.body as { synced: boolean }).synced;
            } catch {
              return false;
            } finally {
              conn.close();
            }
          },
          60_000,
          d,
        );
      },
      async killDaemon() {
        if (!daemon) return;
        try {
          Deno.kill(daemon.pid, "SIGKILL");
        } catch {
          // gone
        }
        await daemon.status;
      },
      daemonLog() {
        try {
          return Deno.readTextFileSync(logPath);
        } catch {
          return "";
        }
      },
      apiserver: peerControl(cp, "apiserver"),
      etcd: peerControl(cp, "etcd"),
      async close() {
        if (daemon) await stopProcessGroup(daemon.pid).catch(() => {});
        for (const p of [kw.apiserver, kw.etcd]) p.freeze(false);
        await cp.stop();
        await w.close();
      },
    };
    return kw;
  } catch (err) {
    await cp.stop();
    await w.close();
    throw err;
  }
}
