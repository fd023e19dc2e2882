/**
 * The world of the cluster-IPAM tests: a real control plane with hydra's
 * AddressPool/AddressBlock CRDs, a test namespace, Pod objects made as a
 * kubelet's pods would be (bound to a node, owned by a StatefulSet when
 * asked), `hydra-pool` run in this process or exec'd as a runtime runs it,
 * `hydra daemon` per simulated node, and `hydra ipam controller`.
 * `close()` removes everything.
 *
 * @module
 */

import { join } from "node:path";
import { dispatch } from "../../cni/skel.ts";
import { createKubeClient, type KubeClient, retryTransient } from "../../kube/client.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import type { Pod } from "../../kube/objects.ts";
import { type Block, parseBlock } from "../../ipam/pool/block.ts";
import { closePoolContexts } from "../../ipam/pool/host.ts";
import {
  type AddressBlock,
  type AddressPool,
  type Allocation,
  blockPath,
  poolPath,
} from "../../ipam/pool/objects.ts";
import { plugin } from "../../ipam/pool/plugin.ts";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { type Daemon, spawnDaemon, stopProcessGroup, waitUntil } from "../infra/process.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { connectNodeDaemon } from "../../daemonclient/client.ts";
import { getFromEndpoint } from "../../pkg/http.ts";
import { createNetns, deleteNetns, type TestNetns } from "../helpers/netns.ts";

/** The launcher, exec'd as a runtime would. */
export const HYDRA = `${REPO_ROOT}/bin/hydra`;
/** hydra's CRDs. */
export const POOL_CRDS = `${REPO_ROOT}/deploy/crds/address-pools.yaml`;

/** What one CNI call printed. */
export interface CallOutput {
  code: number;
  stdout: string;
  /** The parsed result (ADD that succeeded). */
  result?: { ips?: { address: string; gateway?: string }[]; routes?: unknown[] };
  /** The parsed error (failure). */
  error?: { code: number; msg: string; details?: string };
  ms: number;
}

/** One CNI call's parameters. */
export interface Call {
  containerId: string;
  ifName?: string;
  pod?: { namespace: string; name: string; uid?: string };
}

/** A running `hydra daemon` of a simulated node. */
export interface NodeDaemon {
  node: string;
  socket: string;
  logPath: string;
  process: Daemon;
  metrics(): Promise<string>;
  /** SIGKILL, no cleanup: a power cut. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** A running `hydra ipam controller`. */
export interface RunningController {
  process: Daemon;
  logPath: string;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

/** One test world. */
export interface PoolWorld {
  cp: ControlPlane;
  /** hydra's client with the admin identity. */
  client: KubeClient;
  kubeconfig: string;
  ns: string;
  dir: string;
  /** A network namespace path for CNI_NETNS (IPAM never enters it). */
  netns: string;
  /** A unique network name (network_name) for a test. */
  network(prefix?: string): string;
  /** A plugin conf around an ipam block of type hydra-pool (admin kubeconfig, no daemon). */
  conf(ipam: Record<string, unknown>, extra?: Record<string, unknown>): Record<string, unknown>;
  /** Runs the plugin in this process, as a built-in is run. */
  invoke(command: string, conf: unknown, call: Call): Promise<CallOutput>;
  /** Execs `hydra-pool` as a runtime would (extra environment for the process). */
  exec(
    command: string,
    conf: unknown,
    call: Call,
    env?: Record<string, string>,
  ): Promise<CallOutput>;
  /** Creates a Pod object on `node`, owned by a StatefulSet when `statefulSet` is set. */
  createPod(
    name: string,
    opts?: { node?: string; statefulSet?: { name: string; uid: string }; namespace?: string },
  ): Promise<Pod>;
  deletePod(name: string, namespace?: string): Promise<void>;
  /** Every block of the cluster, parsed. */
  blocks(): Promise<Block[]>;
  /** Every allocation of a network key, with its block's node. */
  allocations(network: string): Promise<(Allocation & { blockNode: string })[]>;
  pool(name: string): Promise<AddressPool | undefined>;
  startDaemon(node: string, args?: string[]): Promise<NodeDaemon>;
  startController(args?: string[]): Promise<RunningController>;
  stopApi(): Promise<void>;
  startApi(): Promise<void>;
  close(): Promise<void>;
}

let seq = 0;

/** A name unique to this run. */
export function uniq(prefix: string): string {
  return `${prefix}${Date.now().toString(36).slice(-4)}${(++seq).toString(36)}${
    crypto.randomUUID().slice(0, 4)
  }`;
}

function parseOutput(code: number, stdout: string, ms: number): CallOutput {
  const out: CallOutput = { code, stdout, ms };
  if (stdout.trim()) {
    const doc = JSON.parse(stdout);
    if (code === 0) out.result = doc;
    else out.error = doc;
  }
  return out;
}

function cniEnv(command: string, call: Call, netns: string): Record<string, string> {
  const args = ["IgnoreUnknown=1"];
  if (call.pod) {
    args.push(`K8S_POD_NAMESPACE=${call.pod.namespace}`, `K8S_POD_NAME=${call.pod.name}`);
    if (call.pod.uid) args.push(`K8S_POD_UID=${call.pod.uid}`);
  }
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: command === "DEL" ? "" : netns,
    CNI_IFNAME: call.ifName ?? "net1",
    CNI_ARGS: args.join(";"),
    CNI_PATH: "/opt/cni/bin",
  };
}

/**
 * Reads a Prometheus series: the exact series (`name{labels}`), or the sum
 * of every series of a name given without labels.
 */
export function metric(text: string, series: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.trim()) continue;
    const sp = line.lastIndexOf(" ");
    const name = line.slice(0, sp);
    if (name === series || (!series.includes("{") && name.startsWith(series + "{"))) {
      sum += Number(line.slice(sp + 1));
    }
  }
  return sum;
}

/** Starts a world. */
export async function startPoolWorld(): Promise<PoolWorld> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-pool-" });
  const cp = await startControlPlane({ manifests: [POOL_CRDS] });
  const daemons: NodeDaemon[] = [];
  const controllers: RunningController[] = [];
  let apiPid = cp.record.apiserverPid;
  let apiCommand: string[] | undefined;
  let restarted: Daemon | undefined;
  const client = createKubeClient(await loadKubeconfig(cp.kubeconfigPath), {
    userAgent: "hydra-test",
  });
  // IPAM touches no namespace, but a runtime always names one (and the skel checks it exists).
  let podNetns: TestNetns | undefined;
  try {
    podNetns = await createNetns("hyp");
    const netnsPath = podNetns.path;
    await waitUntil("hydra's CRDs served", async () => {
      try {
        await client.list(poolPath(), { timeoutMs: 2_000 });
        await client.list(blockPath(), { timeoutMs: 2_000 });
        return true;
      } catch {
        return false;
      }
    }, 30_000);
    const ns = uniq("ipam-");
    await cp.createNamespace(ns);
    const binDir = join(dir, "bin");
    await Deno.mkdir(binDir);
    await Deno.symlink(HYDRA, join(binDir, "hydra-pool"));

    const world: PoolWorld = {
      cp,
      client,
      kubeconfig: cp.kubeconfigPath,
      ns,
      dir,
      netns: netnsPath,
      network: (prefix = "net") => uniq(prefix),
      conf(ipam, extra = {}) {
        return {
          cniVersion: "1.0.0",
          name: "test-net",
          type: "macvlan",
          ipam: {
            type: "hydra-pool",
            kubeconfig: cp.kubeconfigPath,
            daemonSocket: "",
            nodeName: "node-a",
            ...ipam,
          },
          ...extra,
        };
      },
      async invoke(command, conf, call) {
        const t0 = performance.now();
        const env = cniEnv(command, call, netnsPath);
        const out = await dispatch(
          plugin,
          (n) => env[n],
          new TextEncoder().encode(JSON.stringify(conf)),
        );
        return parseOutput(out.code, out.stdout, performance.now() - t0);
      },
      async exec(command, conf, call, extraEnv = {}) {
        const t0 = performance.now();
        const child = new Deno.Command(join(binDir, "hydra-pool"), {
          env: { ...cniEnv(command, call, netnsPath), ...extraEnv },
          clearEnv: true,
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode(JSON.stringify(conf)));
        await w.close();
        const out = await child.output();
        const stdout = new TextDecoder().decode(out.stdout);
        return parseOutput(out.code, stdout, performance.now() - t0);
      },
      async createPod(name, opts = {}) {
        const namespace = opts.namespace ?? ns;
        const body = {
          apiVersion: "v1",
          kind: "Pod",
          metadata: {
            name,
            namespace,
            ...(opts.statefulSet
              ? {
                ownerReferences: [{
                  apiVersion: "apps/v1",
                  kind: "StatefulSet",
                  name: opts.statefulSet.name,
                  uid: opts.statefulSet.uid,
                  controller: true,
                  blockOwnerDeletion: true,
                }],
              }
              : {}),
          },
          spec: {
            nodeName: opts.node ?? "node-a",
            containers: [{ name: "c", image: "localhost/hydra/pause:1.0" }],
          },
        };
        return await client.create<Pod>(`/api/v1/namespaces/${namespace}/pods`, body);
      },
      async deletePod(name, namespace = ns) {
        await client.delete(`/api/v1/namespaces/${namespace}/pods/${name}?gracePeriodSeconds=0`)
          .catch(() => {});
      },
      async blocks() {
        // A restarted API server answers 429 while its storage initializes.
        const list = await retryTransient(
          (ms) => client.list<AddressBlock>(blockPath(), { timeoutMs: ms }),
          { deadlineMs: 30_000 },
        );
        return list.items.map(parseBlock);
      },
      async allocations(network) {
        return (await world.blocks()).filter((b) => b.network === network).flatMap((b) =>
          [...b.allocations.values()].map((a) => ({ ...a, blockNode: b.node }))
        );
      },
      async pool(name) {
        try {
          return await client.get<AddressPool>(poolPath(name));
        } catch {
          return undefined;
        }
      },
      async startDaemon(node, args = []) {
        const socket = join(dir, `${node}.sock`);
        const metricsSock = join(dir, `${node}-metrics.sock`);
        const logPath = join(dir, `daemon-${node}.log`);
        const process = spawnDaemon(`hydra daemon ${node}`, HYDRA, {
          args: [
            "daemon",
            "--kubeconfig",
            cp.kubeconfigPath,
            "--node-name",
            node,
            "--socket",
            socket,
            "--listen",
            `unix:${metricsSock}`,
            "--spool-dir",
            join(dir, `spool-${node}`),
            "--log-level",
            "debug",
            ...args,
          ],
          logPath,
        });
        await waitUntil(
          `hydra daemon ${node} answers`,
          async () => {
            const conn = await connectNodeDaemon(socket).catch(() => undefined);
            if (!conn) return false;
            try {
              const res = await conn.call({ op: "ping" }, 1_000);
              return res.ok && (res.body as { synced?: boolean }).synced === true;
            } catch {
              return false;
            } finally {
              conn.close();
            }
          },
          60_000,
          process,
        );
        let gone = false;
        const d: NodeDaemon = {
          node,
          socket,
          logPath,
          process,
          async metrics() {
            const res = await getFromEndpoint({ transport: "unix", path: metricsSock }, "/metrics");
            return res.body;
          },
          async kill() {
            if (gone) return;
            gone = true;
            try {
              Deno.kill(-process.pid, "SIGKILL");
            } catch {
              // already gone
            }
            await process.status;
          },
          async stop() {
            if (gone) return;
            gone = true;
            await stopProcessGroup(process.pid);
          },
        };
        daemons.push(d);
        return d;
      },
      async startController(args = []) {
        const logPath = join(dir, `controller-${controllers.length}.log`);
        const metricsSock = join(dir, `controller-${controllers.length}.sock`);
        const process = spawnDaemon("hydra ipam controller", HYDRA, {
          args: [
            "ipam",
            "controller",
            "--kubeconfig",
            cp.kubeconfigPath,
            "--namespace",
            ns,
            "--listen",
            `unix:${metricsSock}`,
            "--log-level",
            "debug",
            ...args,
          ],
          logPath,
        });
        const metrics = async () =>
          (await getFromEndpoint({ transport: "unix", path: metricsSock }, "/metrics")).body;
        await waitUntil(
          "hydra ipam controller ready",
          async () => {
            try {
              return (await getFromEndpoint({ transport: "unix", path: metricsSock }, "/readyz"))
                .status === 200;
            } catch {
              return false;
            }
          },
          60_000,
          process,
        );
        let gone = false;
        const c: RunningController = {
          process,
          logPath,
          metrics,
          async stop() {
            if (gone) return;
            gone = true;
            await stopProcessGroup(process.pid);
          },
        };
        controllers.push(c);
        return c;
      },
      async stopApi() {
        const raw = await Deno.readTextFile(`/proc/${apiPid}/cmdline`);
        apiCommand = raw.split("\0").filter((a) => a !== "");
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
      async close() {
        for (const c of controllers) await c.stop().catch(() => {});
        for (const d of daemons) await d.stop().catch(() => {});
        await closePoolContexts();
        client.close();
        await deleteNetns(podNetns!);
        if (restarted) await stopProcessGroup(restarted.pid).catch(() => {});
        await cp.stop();
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      },
    };
    return world;
  } catch (err) {
    client.close();
    if (podNetns) await deleteNetns(podNetns);
    await cp.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
}

/** Polls until `check` holds. */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  await waitUntil(what, async () => {
    try {
      return await check();
    } catch {
      return false;
    }
  }, timeoutMs);
}

/** The address of a CIDR text. */
export function addr(cidr: string): string {
  return cidr.split("/")[0];
}
