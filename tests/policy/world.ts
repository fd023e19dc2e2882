/**
 * The world of the policy tests: a real kube-apiserver with the
 * MultiNetworkPolicy CRD from deploy/, a "node" namespace where the
 * meta-CNI runs as a runtime would run it (see tests/meta_kube), pods as
 * network namespaces attached by it to a primary network (eth0) and two
 * secondary networks (net1 on `blue`, net2 on `green`, hydra-bridge), each
 * with TCP and UDP echo servers on ports 80 and 81, and `hydra policy sync`
 * in the node namespace with exactly the RBAC the deploy manifests give it.
 *
 * @module
 */

import { parseAllDocuments } from "yaml";
import { installCrd } from "../infra/cluster.ts";
import {
  type Daemon,
  logTail,
  spawnDaemon,
  stopProcessGroup,
  waitUntil,
} from "../infra/process.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { uniqueName } from "../helpers/netns.ts";
import { jsonKubeconfig } from "../meta_kube/api_access.ts";
import { HYDRA, type KubeEnv, networkStatus, startKubeEnv } from "../meta_kube/harness.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { getFromEndpoint } from "../../pkg/http.ts";
import type { Pod } from "../../kube/objects.ts";
import { type Probe, probe, type Proto, type Servers, startServers } from "./probe.ts";

/** The CRD shipped in deploy/. */
export const MNP_CRD = `${REPO_ROOT}/deploy/crds/multi-networkpolicy.yaml`;

/** How long a policy change may take to be in force (the documented bound). */
export const BOUND_MS = 3_000;

/** Container ports every pod declares (names used by named-port policies). */
const PORTS = [
  { name: "serve-80-tcp", containerPort: 80, protocol: "TCP" },
  { name: "serve-81-tcp", containerPort: 81, protocol: "TCP" },
  { name: "serve-80-udp", containerPort: 80, protocol: "UDP" },
  { name: "serve-81-udp", containerPort: 81, protocol: "UDP" },
];

/** A pod of the world. */
export interface WorldPod {
  /** "x/a": the namespace's short name and the pod's. */
  id: string;
  namespace: string;
  name: string;
  uid: string;
  netns: TestNetns;
  /** IPv4 address per interface (eth0, net1, net2). */
  ip: Record<string, string>;
  servers: Servers;
}

/** A running `hydra policy sync`. */
export interface Agent {
  process: Daemon;
  metricsSock: string;
  metrics(): Promise<string>;
  ready(): Promise<boolean>;
  /** Sends `signal` and waits for the exit; returns the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
}

/** One test world. */
export interface PolicyWorld {
  env: KubeEnv;
  /** Short namespace name ("x") → real name. */
  ns: Record<string, string>;
  pods: WorldPod[];
  /** The networks as policy-for names them. */
  blue: string;
  green: string;
  agentLog: string;
  startAgent(extra?: string[]): Promise<Agent>;
  /** Creates or replaces a MultiNetworkPolicy in short namespace `ns`. */
  apply(ns: string, name: string, spec: unknown, networks?: string): Promise<void>;
  remove(ns: string, name: string): Promise<void>;
  pod(id: string): WorldPod;
  close(): Promise<void>;
}

/** The rules of the meta setup's role for `hydra policy sync`. */
async function manifestRules(): Promise<unknown[]> {
  const text = await Deno.readTextFile(`${REPO_ROOT}/deploy/hydra-meta.yaml`);
  const docs = parseAllDocuments(text).map((d) => d.toJSON());
  const roles = docs.filter((d) => d?.kind === "ClusterRole" && d.metadata.name === "hydra-policy");
  if (roles.length !== 1) throw new Error("deploy/hydra-meta.yaml lacks the hydra-policy role");
  return roles.flatMap((r) => r.rules);
}

/**
 * A kubeconfig of an account with the manifest's rules, usable in the node
 * namespace (or on the host with `onHost`).
 */
export async function agentKubeconfig(env: KubeEnv, onHost = false): Promise<string> {
  const name = uniqueName("hpol");
  await env.cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name },
    rules: await manifestRules(),
  });
  await env.cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
    subjects: [{ kind: "ServiceAccount", name, namespace: env.ns }],
  });
  const host = await env.cp.mintServiceAccountKubeconfig(env.ns, name);
  if (onHost) return await jsonKubeconfig(host, `${env.dir}/policy-host.kubeconfig`);
  const server = (JSON.parse(await Deno.readTextFile(env.kubeconfigNode)) as {
    clusters: { cluster: { server: string } }[];
  }).clusters[0].cluster.server;
  return await jsonKubeconfig(host, `${env.dir}/policy.kubeconfig`, server);
}

async function ipv4(netns: TestNetns, dev: string): Promise<string> {
  const [link] = await netns.ipJson<{ addr_info: { family: string; local: string }[] }[]>(
    "addr",
    "show",
    "dev",
    dev,
  );
  const a = link?.addr_info.find((i) => i.family === "inet");
  if (!a) throw new Error(`${netns.name}: no IPv4 address on ${dev}`);
  return a.local;
}

/** Starts a world with pods `podNames` in each of the short namespaces `nsNames`. */
export async function startPolicyWorld(
  nsNames = ["x", "y", "z"],
  podNames = ["a", "b", "c"],
): Promise<PolicyWorld> {
  const env = await startKubeEnv();
  const pods: WorldPod[] = [];
  const agents: Agent[] = [];
  try {
    await installCrd(env.cp.api, MNP_CRD);
    const kubeconfig = await agentKubeconfig(env);
    const cluster = env.bridgeNet("cluster");
    await env.nad("kube-system", "cluster", cluster.conf);
    await env.nad(env.ns, "blue", env.bridgeNet("blue").conf);
    await env.nad(env.ns, "green", env.bridgeNet("green").conf);
    const conf = env.metaConf({ clusterNetwork: "cluster" });
    const ns: Record<string, string> = {};
    for (const short of nsNames) {
      ns[short] = uniqueName(`pw${short}`);
      await env.cp.api.must("POST", "/api/v1/namespaces", {
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: ns[short], labels: { ns: short } },
      });
      await env.cp.createNamespace(ns[short]);
    }
    for (const short of nsNames) {
      for (const name of podNames) {
        pods.push(await attachPod(env, conf, ns[short], short, name));
      }
    }
    const agentLog = `${env.dir}/policy.log`;
    const world: PolicyWorld = {
      env,
      ns,
      pods,
      blue: `${env.ns}/blue`,
      green: `${env.ns}/green`,
      agentLog,
      async startAgent(extra = []) {
        const agent = await spawnAgent(env, {
          kubeconfig,
          logPath: agentLog,
          n: agents.length,
          inNodeNetns: true,
          metaCacheDir: env.cacheDir,
          extra,
        });
        agents.push(agent);
        return agent;
      },
      async apply(short, name, spec, networks = world.blue) {
        const path = `/apis/k8s.cni.cncf.io/v1beta1/namespaces/${ns[short]}/multi-networkpolicies`;
        const body = {
          apiVersion: "k8s.cni.cncf.io/v1beta1",
          kind: "MultiNetworkPolicy",
          metadata: {
            name,
            namespace: ns[short],
            annotations: { "k8s.v1.cni.cncf.io/policy-for": networks },
          },
          spec,
        };
        const res = await env.cp.api.request("GET", `${path}/${name}`);
        if (res.status === 200) {
          const old = res.body as { metadata: { resourceVersion: string } };
          await env.cp.api.must("PUT", `${path}/${name}`, {
            ...body,
            metadata: { ...body.metadata, resourceVersion: old.metadata.resourceVersion },
          });
        } else await env.cp.api.must("POST", path, body);
      },
      async remove(short, name) {
        await env.cp.api.must(
          "DELETE",
          `/apis/k8s.cni.cncf.io/v1beta1/namespaces/${ns[short]}/multi-networkpolicies/${name}`,
          undefined,
          [404],
        );
      },
      pod(id) {
        const p = pods.find((p) => p.id === id);
        if (!p) throw new Error(`no pod ${id}`);
        return p;
      },
      async close() {
        for (const a of agents) await a.stop().catch(() => {});
        for (const p of pods) p.servers.close();
        await env.close();
      },
    };
    return world;
  } catch (err) {
    for (const a of agents) await a.stop().catch(() => {});
    for (const p of pods) p.servers.close();
    await env.close();
    throw err;
  }
}

/** Replaces the labels of namespace `name`. */
export async function setNamespaceLabels(
  w: PolicyWorld,
  name: string,
  labels: Record<string, string>,
): Promise<void> {
  const ns = await w.env.cp.api.must("GET", `/api/v1/namespaces/${name}`) as {
    metadata: Record<string, unknown>;
  };
  ns.metadata.labels = labels;
  await w.env.cp.api.must("PUT", `/api/v1/namespaces/${name}`, ns);
}

/** Replaces the labels of a pod. */
export async function setPodLabels(
  w: PolicyWorld,
  pod: WorldPod,
  labels: Record<string, string>,
): Promise<void> {
  const path = `/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`;
  const obj = await w.env.cp.api.must("GET", path) as { metadata: Record<string, unknown> };
  obj.metadata.labels = labels;
  await w.env.cp.api.must("PUT", path, obj);
}

async function attachPod(
  env: KubeEnv,
  conf: Record<string, unknown>,
  namespace: string,
  short: string,
  name: string,
): Promise<WorldPod> {
  const created = await env.cp.api.must("POST", `/api/v1/namespaces/${namespace}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace,
      labels: { pod: name },
      annotations: { "k8s.v1.cni.cncf.io/networks": `${env.ns}/blue,${env.ns}/green` },
    },
    spec: {
      nodeName: env.nodeName,
      containers: [{ name: "main", image: "localhost/hydra/pause:1.0", ports: PORTS }],
    },
  }) as Pod;
  const netns = await env.podNetns();
  const uid = created.metadata.uid!;
  const out = await env.cni("ADD", conf, { netns, pod: { namespace, name, uid } });
  if (out.code !== 0) throw new Error(`ADD ${namespace}/${name}: ${out.stdout} ${out.stderr}`);
  const ip: Record<string, string> = {};
  for (const dev of ["eth0", "net1", "net2"]) ip[dev] = await ipv4(netns, dev);
  const servers = startServers(netns.path, [
    { proto: "tcp", port: 80 },
    { proto: "tcp", port: 81 },
    { proto: "udp", port: 80 },
    { proto: "udp", port: 81 },
  ]);
  return { id: `${short}/${name}`, namespace, name, uid, netns, ip, servers };
}

/** How to run `hydra policy sync`. */
export interface AgentOptions {
  kubeconfig: string;
  logPath: string;
  /** Distinguishes the sockets of successive agents. */
  n: number;
  /** In the world's node namespace (as on a node), else on the host. */
  inNodeNetns: boolean;
  metaCacheDir?: string;
  nriCacheDir?: string;
  extra?: string[];
}

/** Starts `hydra policy sync` and waits until it is ready. */
export async function spawnAgent(env: KubeEnv, o: AgentOptions): Promise<Agent> {
  const metricsSock = `${env.dir}/policy-${o.n}.sock`;
  const args = [
    "policy",
    "sync",
    "--kubeconfig",
    o.kubeconfig,
    "--node-name",
    env.nodeName,
    "--meta-cache-dir",
    o.metaCacheDir ?? "",
    "--nri-cache-dir",
    o.nriCacheDir ?? "",
    "--state-dir",
    `${env.dir}/policy-state`,
    "--health-addr",
    `unix:${metricsSock}`,
    "--log-level",
    "debug",
    ...(o.extra ?? []),
  ];
  const process = o.inNodeNetns
    ? spawnDaemon("hydra policy sync", "ip", {
      args: ["netns", "exec", env.node.name, HYDRA, ...args],
      logPath: o.logPath,
    })
    : spawnDaemon("hydra policy sync", HYDRA, { args, logPath: o.logPath });
  let exited: number | undefined;
  const agent: Agent = {
    process,
    metricsSock,
    async metrics() {
      return (await getFromEndpoint({ transport: "unix", path: metricsSock }, "/metrics")).body;
    },
    async ready() {
      try {
        return (await getFromEndpoint({ transport: "unix", path: metricsSock }, "/readyz"))
          .status === 200;
      } catch {
        return false;
      }
    },
    async stop(signal: Deno.Signal = "SIGTERM") {
      if (exited !== undefined) return exited;
      try {
        Deno.kill(process.pid, signal);
      } catch {
        // gone already
      }
      exited = (await process.status!).code;
      await stopProcessGroup(process.pid).catch(() => {});
      return exited;
    },
  };
  await waitUntil("hydra policy sync ready", () => agent.ready(), 30_000, process).catch((err) => {
    throw new Error(`${(err as Error).message}\n${logTail(process, 30)}`);
  });
  return agent;
}

/** The probes from every pod to every other pod's address on `dev`. */
export function pairs(w: PolicyWorld, proto: Proto, port: number, dev = "net1") {
  const out: { from: WorldPod; to: WorldPod; probe: Probe }[] = [];
  for (const from of w.pods) {
    for (const to of w.pods) {
      if (from === to) continue;
      out.push({ from, to, probe: { from: from.netns.path, to: to.ip[dev], proto, port } });
    }
  }
  return out;
}

/** What is expected of one probe. */
export type Expectation = (from: WorldPod, to: WorldPod) => boolean;

/**
 * Probes until the reachability matrix is `expected` or `boundMs` passed;
 * returns the time it took, throws with the differences otherwise.
 */
export async function expectMatrix(
  w: PolicyWorld,
  expected: Expectation,
  opts: { proto?: Proto; port?: number; dev?: string; boundMs?: number } = {},
): Promise<number> {
  const all = pairs(w, opts.proto ?? "tcp", opts.port ?? 80, opts.dev);
  const t0 = performance.now();
  const bound = opts.boundMs ?? BOUND_MS;
  for (;;) {
    const got = probe(all.map((p) => p.probe), 400);
    const wrong = all.filter((p, i) => got[i] !== expected(p.from, p.to));
    if (wrong.length === 0) return performance.now() - t0;
    if (performance.now() - t0 > bound) {
      const lines = wrong.map((p) =>
        `${p.from.id} -> ${p.to.id}: ${expected(p.from, p.to) ? "blocked" : "open"}, expected ${
          expected(p.from, p.to) ? "open" : "blocked"
        }`
      );
      throw new Error(
        `${opts.proto ?? "tcp"}/${opts.port ?? 80} on ${opts.dev ?? "net1"} not as expected ` +
          `after ${Math.round(performance.now() - t0)} ms:\n${lines.join("\n")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until `pod`'s network-status lists its networks (peers' addresses come from it). */
export async function statusWritten(w: PolicyWorld): Promise<void> {
  await waitUntil("network-status of every pod", async () => {
    for (const p of w.pods) {
      const s = networkStatus(await w.env.getPod(p.namespace, p.name));
      if (s.length < 3) return false;
    }
    return true;
  }, 15_000);
}
