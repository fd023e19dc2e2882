/**
 * The two IPAMs the cluster-IPAM benchmark runs (see cluster_ipam_lib.ts):
 *
 * - hydra-pool: `hydra daemon` per simulated node (its node-side process)
 *   and `hydra ipam controller` (reclaim) with their default settings; the
 *   runtime's exec of `hydra-pool` hands each invocation to its node's
 *   daemon.
 * - whereabouts (built by tests/infra at the pinned version, its CRDs
 *   from its module): exec'd per invocation, as it is deployed; it has no
 *   node-side process, and its reconciler (a CronJob, daily by default) is
 *   not part of the run.
 *
 * Both run against the same kube-apiserver with its admin kubeconfig, each
 * on a fresh range.
 *
 * @module
 */

import { join } from "node:path";
import { type KubeClient, retryTransient } from "../kube/client.ts";
import type { Pod } from "../kube/objects.ts";
import { type AddressBlock, blockPath } from "../ipam/pool/objects.ts";
import { parseBlock } from "../ipam/pool/block.ts";
import { connectNodeDaemon } from "../daemonclient/client.ts";
import { cniRequest } from "../daemonclient/forward.ts";
import { type CniCommand, POOL_PLUGIN } from "../daemonclient/protocol.ts";
import { spawnDaemon, stopProcessGroup } from "../tests/infra/process.ts";
import type { ExecResult, Peer, PodApi, SimPod } from "./cluster_ipam_lib.ts";

/** GNU time, for the peak RSS of an exec. */
const GNU_TIME = "/usr/bin/time";

/** What both peers need. */
export interface PeerEnv {
  client: KubeClient;
  kubeconfig: string;
  /** A scratch folder (sockets, logs, flat files). */
  dir: string;
  /** An existing network namespace path for CNI_NETNS (IPAM never enters it). */
  netns: string;
}

function cniEnv(command: string, pod: SimPod, containerId: string, netns: string) {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: command === "DEL" ? "" : netns,
    CNI_IFNAME: "net1",
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};` +
      `K8S_POD_UID=${pod.uid}`,
    CNI_PATH: "/opt/cni/bin",
    PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
  };
}

/** Execs a plugin with `env` and `stdin`, tracked so a power cut can SIGKILL it. */
async function execPlugin(
  program: string,
  args: string[],
  env: Record<string, string>,
  stdin: string,
  track: Set<Deno.ChildProcess>,
): Promise<ExecResult & { stderr: string }> {
  const child = new Deno.Command(program, {
    args,
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  track.add(child);
  try {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin)).catch(() => {});
    await w.close().catch(() => {});
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout);
    let ip: string | undefined;
    if (out.code === 0 && stdout.trim()) {
      try {
        ip = (JSON.parse(stdout).ips?.[0]?.address as string | undefined)?.split("/")[0];
      } catch {
        // not a result
      }
    }
    return {
      code: out.code,
      stdout,
      stderr: new TextDecoder().decode(out.stderr),
      ip,
      killed: out.signal === "SIGKILL",
    };
  } finally {
    track.delete(child);
  }
}

/** Peak RSS (MiB) of one exec under GNU time, from its `%M` (KiB) on the last stderr line. */
async function execRss(
  program: string,
  env: Record<string, string>,
  stdin: string,
): Promise<number | undefined> {
  try {
    Deno.statSync(GNU_TIME);
  } catch {
    return undefined;
  }
  const out = await execPlugin(GNU_TIME, ["-f", "%M", program], env, stdin, new Set());
  const kib = Number(out.stderr.trim().split("\n").pop());
  return Number.isFinite(kib) && kib > 0 ? Math.round(kib / 102.4) / 10 : undefined;
}

/** CPU seconds a live process has used (0 when it is gone). */
export function processCpuSeconds(pid: number): number {
  try {
    const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

function vmHwmMiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kib = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    return Math.round(kib / 102.4) / 10;
  } catch {
    return 0;
  }
}

/** One invocation handed to the node daemon's socket (no exec); a daemon gone mid-way counts as killed. */
async function viaSocket(
  path: string,
  env: Record<string, string>,
  stdin: string,
): Promise<ExecResult> {
  const conn = await connectNodeDaemon(path).catch(() => undefined);
  if (!conn) return { code: 1, stdout: "", killed: true };
  try {
    const req = await cniRequest((n) => env[n], {
      command: env.CNI_COMMAND as CniCommand,
      socket: path,
      timeoutMs: 60_000,
      config: JSON.parse(stdin),
    }, POOL_PLUGIN);
    const res = await conn.call(req, 60_000);
    if (!res.ok) return { code: 1, stdout: res.message, killed: false };
    const out = res.body as { stdout: string; code: number };
    let ip: string | undefined;
    if (out.code === 0 && out.stdout.trim()) {
      ip = (JSON.parse(out.stdout).ips?.[0]?.address as string | undefined)?.split("/")[0];
    }
    return { code: out.code, stdout: out.stdout, ip, killed: false };
  } catch {
    return { code: 1, stdout: "", killed: true };
  } finally {
    conn.close();
  }
}

/** Pod objects made and deleted in the API server, bound to their node (a busy server is retried). */
export function podApi(client: KubeClient): PodApi {
  return {
    async create(namespace, name, node) {
      const body = {
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name, namespace, labels: { app: name.slice(0, name.lastIndexOf("-")) } },
        spec: {
          nodeName: node,
          containers: [{ name: "main", image: "localhost/hydra/pause:1.0" }],
        },
      };
      const pod = await retryTransient(
        (timeoutMs) =>
          client.create<Pod>(`/api/v1/namespaces/${namespace}/pods`, body, { timeoutMs }),
        { deadlineMs: 120_000 },
      );
      return { namespace, name, uid: pod.metadata.uid!, node };
    },
    async delete(pod) {
      await retryTransient(
        (timeoutMs) =>
          client.delete(`/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`, {
            query: { gracePeriodSeconds: 0 },
            timeoutMs,
          }),
        { deadlineMs: 120_000 },
      ).catch(() => {});
    },
  };
}

/** hydra-pool with `hydra daemon` per node and `hydra ipam controller`. */
export function hydraPeer(
  env: PeerEnv,
  opts: {
    bin: string;
    range: string;
    network: string;
    controllerArgs?: string[];
    /**
     * "exec" (default): the runtime execs hydra-pool, which hands the invocation to its node's
     * daemon. "socket": the invocation reaches the node's process without an exec, as under
     * `hydra nri serve` or a meta-CNI run by the daemon (`daemonExec`), whose one exec per pod
     * serves all of the pod's networks.
     */
    transport?: "exec" | "socket";
  },
): Peer {
  const daemons = new Map<string, { pid: number; status?: Promise<Deno.CommandStatus> }>();
  let controller: { pid: number } | undefined;
  let peakDaemon = 0;
  /** CPU seconds of the daemons the power cut killed. */
  let reapedCpu = 0;
  const socket = (node: string) => join(env.dir, `${node}.sock`);
  const conf = (node: string) =>
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "bench",
      type: "macvlan",
      ipam: {
        type: "hydra-pool",
        range: opts.range,
        network_name: opts.network,
        kubeconfig: env.kubeconfig,
        daemonSocket: socket(node),
        nodeName: node,
      },
    });
  const program = join(opts.bin, "hydra-pool");
  const notePeak = () => {
    for (const d of daemons.values()) peakDaemon = Math.max(peakDaemon, vmHwmMiB(d.pid));
  };

  async function startNode(node: string): Promise<void> {
    const d = spawnDaemon(`hydra daemon ${node}`, join(opts.bin, "hydra"), {
      args: [
        "daemon",
        "--kubeconfig",
        env.kubeconfig,
        "--node-name",
        node,
        "--socket",
        socket(node),
        "--listen",
        "",
        "--spool-dir",
        join(env.dir, `spool-${node}`),
        "--log-level",
        "warn",
      ],
      logPath: join(env.dir, `daemon-${node}.log`),
    });
    daemons.set(node, d);
    for (const end = Date.now() + 60_000; Date.now() < end;) {
      const conn = await connectNodeDaemon(socket(node)).catch(() => undefined);
      if (conn) {
        const res = await conn.call({ op: "ping" }, 1_000).catch(() => undefined);
        conn.close();
        if (res?.ok && (res.body as { synced?: boolean }).synced) return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `hydra daemon ${node} did not start (see ${join(env.dir, `daemon-${node}.log`)})`,
    );
  }

  return {
    name: opts.transport === "socket" ? "hydra (node process)" : "hydra",
    async startNodes(nodes) {
      if (!controller) {
        controller = spawnDaemon("hydra ipam controller", join(opts.bin, "hydra"), {
          args: [
            "ipam",
            "controller",
            "--kubeconfig",
            env.kubeconfig,
            "--namespace",
            "default",
            "--listen",
            "",
            ...(opts.controllerArgs ?? []),
          ],
          logPath: join(env.dir, "controller.log"),
        });
      }
      await Promise.all(nodes.map(startNode));
    },
    async killNodes() {
      notePeak();
      // Their CPU so far; once reaped it counts among this process's children (the execs').
      for (const d of daemons.values()) reapedCpu += processCpuSeconds(d.pid);
      await Promise.all([...daemons.values()].map(async (d) => {
        try {
          Deno.kill(-d.pid, "SIGKILL");
        } catch {
          // gone
        }
        await d.status;
      }));
      daemons.clear();
    },
    exec(command, pod, containerId, track) {
      let stdin = conf(pod.node);
      if (command === "DEL" && pod.ip) {
        const c = JSON.parse(stdin);
        c.prevResult = {
          cniVersion: "1.0.0",
          ips: [{ address: `${pod.ip}/${opts.range.split("/")[1]}` }],
        };
        stdin = JSON.stringify(c);
      }
      const vars = cniEnv(command, pod, containerId, env.netns);
      if (opts.transport === "socket") return viaSocket(socket(pod.node), vars, stdin);
      return execPlugin(program, [], vars, stdin, track);
    },
    async store() {
      const list = await env.client.list<AddressBlock>(blockPath());
      return list.items.map(parseBlock).filter((b) => b.network === opts.network).flatMap((b) =>
        [...b.allocations.values()].filter((a) => a.source !== "whereabouts").map((a) => ({
          ip: a.ip,
          pod: a.pod,
          podUID: a.podUID,
        }))
      );
    },
    cpuSeconds() {
      const live = [...daemons.values()].reduce((sum, d) => sum + processCpuSeconds(d.pid), 0);
      return {
        daemons: live + reapedCpu,
        reaped: reapedCpu,
        controller: controller ? processCpuSeconds(controller.pid) : 0,
      };
    },
    daemonRssMiB() {
      notePeak();
      return Promise.resolve(peakDaemon);
    },
    execRssMiB: (pod, containerId) =>
      opts.transport === "socket"
        ? Promise.resolve(undefined)
        : execRss(program, cniEnv("ADD", pod, containerId, env.netns), conf(pod.node)),
    async stop() {
      notePeak();
      for (const d of daemons.values()) await stopProcessGroup(d.pid).catch(() => {});
      if (controller) await stopProcessGroup(controller.pid).catch(() => {});
    },
  };
}

/** whereabouts, exec'd per invocation (its IPPools in kube-system, as its default). */
export async function whereaboutsPeer(
  env: PeerEnv,
  opts: { bin: string; range: string; network: string },
): Promise<Peer> {
  const flat = join(env.dir, "whereabouts.conf");
  await Deno.writeTextFile(
    flat,
    JSON.stringify({ datastore: "kubernetes", kubernetes: { kubeconfig: env.kubeconfig } }),
  );
  const conf = JSON.stringify({
    cniVersion: "0.3.1",
    name: "bench",
    type: "macvlan",
    ipam: {
      type: "whereabouts",
      range: opts.range,
      network_name: opts.network,
      configuration_path: flat,
    },
  });
  return {
    name: "whereabouts",
    startNodes: () => Promise.resolve(),
    killNodes: () => Promise.resolve(),
    exec: (command, pod, containerId, track) =>
      execPlugin(
        opts.bin,
        [],
        { ...cniEnv(command, pod, containerId, env.netns), NODENAME: pod.node },
        conf,
        track,
      ),
    async store() {
      const list = await env.client.list<{
        spec?: { range?: string; allocations?: Record<string, { podref?: string }> };
      }>("/apis/whereabouts.cni.cncf.io/v1alpha1/ippools");
      return list.items.flatMap((p) =>
        Object.entries(p.spec?.allocations ?? {}).map(([offset, a]) => ({
          ip: offset,
          pod: a.podref,
        }))
      );
    },
    cpuSeconds: () => ({}),
    daemonRssMiB: () => Promise.resolve(0),
    execRssMiB: (pod, containerId) =>
      execRss(
        opts.bin,
        { ...cniEnv("ADD", pod, containerId, env.netns), NODENAME: pod.node },
        conf,
      ),
    stop: () => Promise.resolve(),
  };
}
