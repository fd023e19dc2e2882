/**
 * The world of the Kubernetes-mode tests: a real control plane, a "node"
 * network namespace that reaches it (see api_access.ts) where the meta-CNI
 * runs as a runtime would run it, pod namespaces made on demand, test
 * namespaces and a least-privilege node account, and the node daemon
 * (`hydra daemon`, in the node namespace too) when a test wants it. `close()` removes
 * everything.
 *
 * @module
 */

import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { referencePluginDir } from "../infra/peers.ts";
import { type Daemon, spawnDaemon, stopProcessGroup, waitUntil } from "../infra/process.ts";
import { createNetns, deleteNetns, type TestNetns, uniqueName } from "../helpers/netns.ts";
import { execIn, type HydraOutput } from "../meta/harness.ts";
import { nodeAgentKubeconfig } from "../kube/helpers.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { API_ANYWHERE_ARGS, apiIntoNetns, jsonKubeconfig } from "./api_access.ts";
import { connectNodeDaemon } from "../../daemonclient/client.ts";
import { getFromEndpoint } from "../../pkg/http.ts";
import type { Pod } from "../../kube/objects.ts";

/** The launcher, exec'd as a runtime would. */
export const HYDRA = `${REPO_ROOT}/bin/hydra`;

/** The seed's older Network CRD (for the legacy annotation). */
export const LEGACY_CRD = `${REPO_ROOT}/tests/kube/manifests/legacy-network-crd.yaml`;

/** A running `hydra daemon`. */
export interface NodeDaemon {
  socket: string;
  logPath: string;
  process: Daemon;
  /** Prometheus text from its metrics endpoint. */
  metrics(): Promise<string>;
  /** SIGTERM, then waits for the exit; returns the exit code. */
  stop(): Promise<number>;
}

/** One test world. */
export interface KubeEnv {
  cp: ControlPlane;
  /** The node namespace every CNI call runs in. */
  node: TestNetns;
  nodeName: string;
  dir: string;
  cacheDir: string;
  /** The test's own namespace and a second one. */
  ns: string;
  other: string;
  /** JSON kubeconfigs of the node account: for the host, and for the node namespace. */
  kubeconfigHost: string;
  kubeconfigNode: string;
  /** Multus's confDir for networks named by file. */
  confDir: string;
  /**
   * The node's CNI conf folder (the runtime's): `cni()` writes a conf asking
   * for `daemonExec` there before running it, as the runtime would have
   * found it, and the daemon reads confs from there only.
   */
  nodeConfDir: string;
  /** Reference CNI plugins speaking 1.1.0. */
  referenceBin: string;
  /** A fresh pod network namespace (removed by close()). */
  podNetns(): Promise<TestNetns>;
  /** Creates a Pod object bound to this node; returns it as stored. */
  createPod(
    name: string,
    annotations?: Record<string, string>,
    opts?: { namespace?: string; nodeName?: string },
  ): Promise<Pod>;
  getPod(namespace: string, name: string): Promise<Pod | undefined>;
  deletePod(namespace: string, name: string): Promise<void>;
  /** Creates a NetworkAttachmentDefinition (config: object → JSON text; undefined → empty spec). */
  nad(namespace: string, name: string, config: unknown): Promise<void>;
  /** A bridge network conf with a unique bridge, /24 ("10.A.B") and host-local store. */
  bridgeNet(
    name: string,
    extra?: Record<string, unknown>,
  ): { conf: Record<string, unknown>; subnet: string };
  /** The meta-CNI conf for this world, Kubernetes mode. */
  metaConf(extra?: Record<string, unknown>): Record<string, unknown>;
  /** Runs the meta-CNI in the node namespace for `pod`. */
  cni(
    command: string,
    conf: unknown,
    call: {
      netns: TestNetns;
      pod?: { namespace: string; name: string; uid?: string };
      containerId?: string;
      ifName?: string;
      program?: string;
    },
  ): Promise<HydraOutput & { ms: number }>;
  /** Starts `hydra daemon` in the node namespace; `socket` replaces the world's socket path. */
  startDaemon(
    opts?: { kubeconfig?: string; args?: string[]; socket?: string },
  ): Promise<NodeDaemon>;
  /** Stops kube-apiserver (connections refused until {@link KubeEnv.startApi}). */
  stopApi(): Promise<void>;
  /** Starts it again with the same arguments and waits until it is ready. */
  startApi(): Promise<void>;
  /** Freezes (SIGSTOP) or thaws it: connections accepted, never answered. */
  freezeApi(frozen: boolean): void;
  close(): Promise<void>;
}

/** The command line of a running process. */
async function cmdline(pid: number): Promise<string[]> {
  const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`);
  return raw.split("\0").filter((a, i, all) => a !== "" || i < all.length - 1);
}

let subnetSeq = 0;

/** Starts a world. */
export async function startKubeEnv(): Promise<KubeEnv> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-mk-" });
  const cp = await startControlPlane({
    apiserverArgs: API_ANYWHERE_ARGS,
    manifests: [LEGACY_CRD],
  });
  const netnses: TestNetns[] = [];
  const daemons: NodeDaemon[] = [];
  let apiPid = cp.record.apiserverPid;
  let apiCommand: string[] | undefined;
  /** An API server this world started again (cp.stop() knows only the first). */
  let restarted: Daemon | undefined;
  try {
    const node = await createNetns("hkn");
    netnses.push(node);
    const nodeServer = await apiIntoNetns(node.name, cp.server);
    const ns = uniqueName("mk");
    const other = uniqueName("mko");
    for (const n of [ns, other, "kube-system"]) await cp.createNamespace(n);
    const account = await nodeAgentKubeconfig(cp, ns);
    const kubeconfigHost = await jsonKubeconfig(account, `${dir}/node-host.kubeconfig`);
    const kubeconfigNode = await jsonKubeconfig(
      account,
      `${dir}/node-netns.kubeconfig`,
      nodeServer,
    );
    const confDir = `${dir}/net.d`;
    await Deno.mkdir(confDir);
    const nodeConfDir = `${dir}/node-net.d`;
    await Deno.mkdir(nodeConfDir);
    const nodeName = uniqueName("node");
    const cacheDir = `${dir}/cache`;
    const subnetBase = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 200);

    const env: KubeEnv = {
      cp,
      node,
      nodeName,
      dir,
      cacheDir,
      ns,
      other,
      kubeconfigHost,
      kubeconfigNode,
      confDir,
      nodeConfDir,
      referenceBin: referencePluginDir(),
      async podNetns() {
        const p = await createNetns("hkp");
        netnses.push(p);
        return p;
      },
      async createPod(name, annotations = {}, opts = {}) {
        const namespace = opts.namespace ?? ns;
        return await cp.api.must("POST", `/api/v1/namespaces/${namespace}/pods`, {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name, namespace, annotations },
          spec: {
            nodeName: opts.nodeName ?? nodeName,
            containers: [{ name: "main", image: "localhost/hydra/pause:1.0" }],
          },
        }) as Pod;
      },
      async getPod(namespace, name) {
        const res = await cp.api.request("GET", `/api/v1/namespaces/${namespace}/pods/${name}`);
        if (res.status === 404) return undefined;
        return res.body as Pod;
      },
      async deletePod(namespace, name) {
        await cp.api.must(
          "DELETE",
          `/api/v1/namespaces/${namespace}/pods/${name}?gracePeriodSeconds=0`,
          undefined,
          [404],
        );
      },
      async nad(namespace, name, config) {
        const spec = config === undefined
          ? {}
          : { config: typeof config === "string" ? config : JSON.stringify(config) };
        await cp.api.must(
          "POST",
          `/apis/k8s.cni.cncf.io/v1/namespaces/${namespace}/network-attachment-definitions`,
          {
            apiVersion: "k8s.cni.cncf.io/v1",
            kind: "NetworkAttachmentDefinition",
            metadata: { name, namespace },
            spec,
          },
        );
      },
      bridgeNet(name, extra = {}) {
        const n = subnetSeq++;
        const subnet = `10.${210 + ((subnetBase + n) % 40)}.${(subnetBase * 7 + n) % 250}`;
        const conf = {
          cniVersion: "1.0.0",
          name,
          type: "bridge",
          bridge: uniqueName("hkbr"),
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: `${subnet}.0/24` }]],
            dataDir: `${dir}/ipam`,
          },
          ...extra,
        };
        return { conf, subnet };
      },
      metaConf(extra = {}) {
        return {
          cniVersion: "1.0.0",
          name: "hydra",
          type: "hydra",
          kubeconfig: kubeconfigNode,
          cacheDir,
          confDir,
          daemonSocket: "",
          apiTimeout: 3,
          logLevel: "debug",
          logFile: `${dir}/hydra.log`,
          ...extra,
        };
      },
      async cni(command, conf, call) {
        const pod = call.pod;
        const containerId = call.containerId ?? `ctr-${call.netns.name}`;
        const cniArgs = pod
          ? [
            "IgnoreUnknown=1",
            `K8S_POD_NAMESPACE=${pod.namespace}`,
            `K8S_POD_NAME=${pod.name}`,
            `K8S_POD_INFRA_CONTAINER_ID=${containerId}`,
            `K8S_POD_UID=${pod.uid ?? ""}`,
          ].join(";")
          : "";
        const text = typeof conf === "string" ? conf : JSON.stringify(conf);
        await placeNodeConf(nodeConfDir, text);
        const started = performance.now();
        const out = await execIn(node, call.program ?? HYDRA, [], {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          CNI_COMMAND: command,
          CNI_CONTAINERID: containerId,
          CNI_NETNS: call.netns.path,
          CNI_IFNAME: call.ifName ?? "eth0",
          CNI_PATH: `${REPO_ROOT}/bin:${referencePluginDir()}`,
          CNI_ARGS: cniArgs,
        }, text);
        return { ...out, ms: performance.now() - started };
      },
      async startDaemon(opts = {}) {
        const socket = opts.socket ?? `${dir}/daemon-${daemons.length}.sock`;
        const metricsSock = `${dir}/daemon-${daemons.length}-metrics.sock`;
        const logPath = `${dir}/daemon-${daemons.length}.log`;
        // In the node namespace, as on a node (hostNetwork): what it attaches itself
        // (daemonExec) is made there and goes away with it.
        const proc = spawnDaemon("hydra daemon", "ip", {
          args: [
            "netns",
            "exec",
            node.name,
            HYDRA,
            "daemon",
            "--kubeconfig",
            opts.kubeconfig ?? kubeconfigNode,
            "--node-name",
            nodeName,
            "--socket",
            socket,
            "--listen",
            `unix:${metricsSock}`,
            "--spool-dir",
            `${cacheDir}/reports`,
            "--cni-conf-dir",
            nodeConfDir,
            "--cni-bin-dir",
            `${REPO_ROOT}/bin:${referencePluginDir()}`,
            "--log-level",
            "debug",
            ...(opts.args ?? []),
          ],
          logPath,
        });
        let exited: number | undefined;
        const d: NodeDaemon = {
          socket,
          logPath,
          process: proc,
          async metrics() {
            return (await getFromEndpoint({ transport: "unix", path: metricsSock }, "/metrics"))
              .body;
          },
          async stop() {
            if (exited !== undefined) return exited;
            try {
              Deno.kill(proc.pid, "SIGTERM");
            } catch {
              // already gone
            }
            exited = (await proc.status!).code;
            return exited;
          },
        };
        daemons.push(d);
        await waitUntil(
          "hydra daemon to sync",
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
          30_000,
          proc,
        );
        return d;
      },
      async stopApi() {
        apiCommand = await cmdline(apiPid);
        await stopProcessGroup(apiPid);
      },
      async startApi() {
        const [program, ...args] = apiCommand!;
        restarted = spawnDaemon("kube-apiserver", program, {
          args,
          logPath: cp.logPaths.apiserver,
        });
        apiPid = restarted.pid;
        await waitUntil(
          "kube-apiserver ready again",
          async () => {
            try {
              return (await cp.api.request("GET", "/readyz")).status === 200;
            } catch {
              return false;
            }
          },
          60_000,
          restarted,
        );
      },
      freezeApi(frozen) {
        Deno.kill(apiPid, frozen ? "SIGSTOP" : "SIGCONT");
      },
      async close() {
        for (const d of daemons) await d.stop().catch(() => {});
        try {
          Deno.kill(apiPid, "SIGCONT");
        } catch {
          // not running
        }
        if (restarted) await stopProcessGroup(restarted.pid).catch(() => {});
        for (const n of netnses) await deleteNetns(n);
        await cp.stop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
    return env;
  } catch (err) {
    for (const d of daemons) await d.stop().catch(() => {});
    for (const n of netnses) await deleteNetns(n);
    await cp.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}

/**
 * A conf asking for `daemonExec`, written into the node's conf folder under
 * its name, as the runtime would have read it there (the daemon runs only
 * confs it finds there). Other confs are left out.
 */
async function placeNodeConf(dir: string, text: string): Promise<void> {
  let conf: Record<string, unknown>;
  try {
    conf = JSON.parse(text);
  } catch {
    return;
  }
  if (conf?.daemonExec !== true || typeof conf.name !== "string") return;
  const { runtimeConfig: _, ...file } = conf;
  await Deno.writeTextFile(`${dir}/.tmp`, JSON.stringify(file));
  await Deno.rename(`${dir}/.tmp`, `${dir}/${conf.name}.conf`);
}

/** The network-status annotation of a pod, parsed. */
export function networkStatus(pod: Pod | undefined): Record<string, unknown>[] {
  const text = pod?.metadata.annotations?.["k8s.v1.cni.cncf.io/network-status"];
  return text ? JSON.parse(text) : [];
}

/** Polls until `check` holds (for writes the daemon makes in the background). */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  await waitUntil(what, check, timeoutMs);
}
