/**
 * A world for hydra's DRA tests: a real control plane, containerd (CRI and
 * NRI; the reference bridge as the default CNI) and kubelet; `hydra dra
 * serve` and `hydra nri serve` in containerd's network namespace (the
 * node's), sharing one state folder; hydra's DeviceClasses from
 * deploy/hydra-dra.yaml; "NICs" made as veth pairs (or macvlans) in the
 * node's namespace whose other ends sit in a "wire" namespace, where the
 * tests can reach them.
 *
 * The control plane runs kube-scheduler and kube-controller-manager: a
 * pod's claims from ResourceClaimTemplates are made by the controller
 * manager, and allocated (from the ResourceSlices `hydra dra serve`
 * publishes and hydra's DeviceClasses) and reserved by the scheduler, which
 * binds the pod. A test may instead create a pod `byHand` (a scheduler name
 * no scheduler serves) and write the allocation and binding itself with
 * {@link DraWorld.schedule}, for an edge case the scheduler cannot produce.
 *
 * Needs root and the built peers (etcd, kube-apiserver, kube-scheduler,
 * kube-controller-manager, kubelet, containerd).
 *
 * @module
 */

import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { type Containerd, startContainerd } from "../infra/containerd.ts";
import { type Kubelet, startKubelet } from "../infra/kubelet.ts";
import { referencePluginDir, repoRoot, versions } from "../infra/peers.ts";
import { type Daemon, logTail, poll, spawnDaemon, stopProcessGroup } from "../infra/process.ts";
import { createNetns, deleteNetns, run, type TestNetns, uniqueName } from "../helpers/netns.ts";
import { jsonKubeconfig } from "../meta_kube/api_access.ts";
import { getFromEndpoint } from "../../pkg/http.ts";
import type { Pod } from "../../kube/objects.ts";
import type { ResourceClaim } from "../../dra/claim.ts";

/** The hydra launcher of this tree. */
export const HYDRA = join(repoRoot, "bin", "hydra");

type Obj = Record<string, unknown>;

/** A running hydra process of the world. */
export interface HydraProc {
  daemon: Daemon;
  logPath: string;
  /** GET on its health endpoint. */
  get(path: string): Promise<{ status: number; body: string }>;
  /** Its log as JSON lines. */
  logLines(): Record<string, unknown>[];
  /** SIGTERM; the exit code. */
  terminate(): Promise<number>;
  /** SIGKILL. */
  kill(): Promise<void>;
}

/** A NIC made for a test. */
export interface TestNic {
  name: string;
  mac: string;
  /** Device name in the slices. */
  device: string;
  /** The other end, in the wire namespace. */
  peer: string;
}

/**
 * One claim of a pod: an existing claim by name, or a claim the controller
 * manager makes from a template for the pod.
 */
export type PodClaim = { name: string; claim: string } | { name: string; template: string };

/** A request of a claim (or claim template). */
export interface ClaimRequest {
  name: string;
  deviceClassName: string;
  /** A CEL expression selecting the device. */
  selector?: string;
}

/** How a test pod is made. */
export interface PodOptions {
  annotations?: Record<string, string>;
  /** Its container's resource limits. */
  limits?: Record<string, string>;
  /** Left to the test's {@link DraWorld.schedule} instead of kube-scheduler. */
  byHand?: boolean;
}

/** The scheduler name of pods scheduled by hand: no scheduler serves it. */
export const BY_HAND_SCHEDULER = "hydra-test-by-hand";

/** A pod's PodScheduled condition, as `kubectl describe pod` shows it. */
export interface PodCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

/** The world handed to a test. */
export interface DraWorld {
  cp: ControlPlane;
  ctd: Containerd;
  kubelet: Kubelet;
  nodeName: string;
  /** The test's namespace. */
  ns: string;
  tmp: string;
  stateDir: string;
  /** hydra-ipam's store for the tests' networks. */
  ipamDir: string;
  /** Kubeconfig of hydra's node components (usable inside the node namespace). */
  kubeconfig: string;
  /** Where the NICs' other ends are. */
  wire: TestNetns;
  /** The node's namespace (containerd's). */
  nodeNetns: string;
  /** The default CNI's bridge in the node namespace (pods' eth0 host ends are its ports). */
  defaultBridge: string;
  /** Makes a veth NIC in the node namespace; `mtu`, `addresses` on the host side. */
  nic(opts?: { mtu?: number; addresses?: string[] }): Promise<TestNic>;
  /** Runs `ip -j <args>` in the node namespace. */
  nodeIp<T = unknown>(...args: string[]): Promise<T>;
  startDra(extra?: string[]): Promise<HydraProc>;
  startNri(extra?: string[]): Promise<HydraProc>;
  /** Creates a ResourceClaim; `config` becomes the claim's opaque config for every request. */
  createClaim(name: string, requests: ClaimRequest[], config?: Obj): Promise<ResourceClaim>;
  /** Creates a ResourceClaimTemplate, as {@link DraWorld.createClaim} a claim. */
  createClaimTemplate(name: string, requests: ClaimRequest[], config?: Obj): Promise<void>;
  /** Creates a pod using `claims`; kube-scheduler places it unless `byHand`. */
  createPod(name: string, claims: PodClaim[], opts?: PodOptions): Promise<Pod>;
  /** The name of the claim made for a pod's claim `podClaim` (from a template); waits for it. */
  claimOf(pod: string, podClaim: string): Promise<string>;
  /** The pod's PodScheduled condition, once there is one. */
  scheduled(pod: string): Promise<PodCondition>;
  /**
   * For a pod made `byHand`, what the scheduler would do: each claim gets
   * `devices` (request → device) allocated on this node, with its class and
   * claim config, and is reserved for the pod; then the pod is bound.
   */
  schedule(
    pod: Pod,
    allocations: { claim: string; devices: Record<string, string> }[],
  ): Promise<void>;
  getPod(name: string): Promise<Pod | undefined>;
  getClaim(name: string): Promise<ResourceClaim>;
  /** Waits until the pod is Running (or `timeoutMs`); returns it. */
  waitRunning(name: string, timeoutMs?: number): Promise<Pod>;
  /** Deletes a pod and waits until it is gone. */
  deletePod(name: string): Promise<void>;
  /** The pod's sandbox network namespace path. */
  podNetns(name: string): Promise<string>;
  /** `ip -j addr` in a namespace path. */
  addrs(netns: string): Promise<IpLink[]>;
  /** Events about an object of the test namespace. */
  events(name: string): Promise<{ reason: string; type: string; message: string }[]>;
  /** Prints the tails of the running hydra processes' logs (to explain a failure). */
  dumpLogs(): void;
  /**
   * Between steps sharing the world: deletes every pod of the test
   * namespace (waiting until gone), then stops the hydra processes.
   */
  reset(): Promise<void>;
  /** Creates a NAD in the test namespace. */
  nad(name: string, config: Obj, annotations?: Record<string, string>): Promise<void>;
}

/** One link of `ip -j addr`. */
export interface IpLink {
  ifname: string;
  address?: string;
  mtu: number;
  flags: string[];
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}

/** Global addresses of a link, "a/len", sorted. */
export function globalAddrs(link: IpLink | undefined): string[] {
  return (link?.addr_info ?? []).filter((a) => a.scope === "global").map((a) =>
    `${a.local}/${a.prefixlen}`
  ).sort();
}

/** A claim's spec: `config` becomes the opaque config of every request. */
function claimSpec(requests: ClaimRequest[], config?: Obj): Obj {
  return {
    devices: {
      requests: requests.map((r) => ({
        name: r.name,
        exactly: {
          deviceClassName: r.deviceClassName,
          ...(r.selector ? { selectors: [{ cel: { expression: r.selector } }] } : {}),
        },
      })),
      ...(config
        ? { config: [{ opaque: { driver: "hydra.clusternet.io", parameters: config } }] }
        : {}),
    },
  };
}

/** What the DRA driver's ServiceAccount may do (deploy/hydra-dra.yaml's ClusterRole). */
function draRules(): Obj[] {
  const docs = parseAllDocuments(Deno.readTextFileSync(join(repoRoot, "deploy", "hydra-dra.yaml")))
    .map((d) => d.toJSON() as Obj);
  const role = docs.find((d) =>
    d.kind === "ClusterRole" && (d.metadata as Obj).name === "hydra-dra"
  )!;
  return role.rules as Obj[];
}

/** hydra's DeviceClasses, as deploy/hydra-dra.yaml has them. */
export function deviceClasses(): Obj[] {
  return parseAllDocuments(Deno.readTextFileSync(join(repoRoot, "deploy", "hydra-dra.yaml")))
    .map((d) => d.toJSON() as Obj).filter((d) => d?.kind === "DeviceClass");
}

/** The node agent's rules (nri serve in Kubernetes mode) plus the DRA driver's. */
async function nodeKubeconfig(cp: ControlPlane, ns: string, tmp: string): Promise<string> {
  const rules = [
    ...draRules(),
    { apiGroups: [""], resources: ["pods", "nodes"], verbs: ["get", "list", "watch"] },
    { apiGroups: [""], resources: ["pods/status"], verbs: ["get", "patch", "update"] },
    {
      apiGroups: ["k8s.cni.cncf.io"],
      resources: ["network-attachment-definitions"],
      verbs: ["get", "list", "watch"],
    },
  ];
  const name = `hydra-node-${ns}`;
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name },
    rules,
  }, [409]);
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
    subjects: [{ kind: "ServiceAccount", name: "hydra", namespace: ns }],
  }, [409]);
  // The kubelet's API bridge serves the same address inside the node namespace.
  return await jsonKubeconfig(
    await cp.mintServiceAccountKubeconfig(ns, "hydra"),
    join(tmp, "hydra.kubeconfig"),
  );
}

/**
 * Starts hydra in the node's network namespace. The driver runs under `ip
 * netns exec`, whose fresh mount of /sys shows the node namespace's links
 * (as a DaemonSet pod on the host network sees the host's). The NRI plugin
 * runs under plain nsenter: it must see the pod namespaces containerd
 * bind-mounts after it started, which a private mount namespace would not.
 */
function startProc(
  name: string,
  ctd: Containerd,
  tmp: string,
  args: string[],
): HydraProc {
  const n = uniqueName("p");
  const logPath = join(tmp, `${name}-${n}.log`);
  const health = join(tmp, `${name}-${n}.sock`);
  const [program, enter] = name === "dra"
    ? ["ip", ["netns", "exec", ctd.netnsName]]
    : ["nsenter", [`--net=/var/run/netns/${ctd.netnsName}`, "--"]];
  const daemon = spawnDaemon(`hydra ${name}`, program, {
    logPath,
    args: [...enter, HYDRA, ...args, `--health-addr=unix:${health}`, "--log-level=debug"],
  });
  return {
    daemon,
    logPath,
    get: (path) => getFromEndpoint({ transport: "unix", path: health }, path),
    logLines() {
      let text = "";
      try {
        text = Deno.readTextFileSync(logPath);
      } catch {
        return [];
      }
      return text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    },
    async terminate() {
      Deno.kill(daemon.pid, "SIGTERM");
      return (await daemon.status!).code;
    },
    async kill() {
      Deno.kill(daemon.pid, "SIGKILL");
      await daemon.status;
    },
  };
}

async function ready(p: HydraProc, what: string, timeoutMs = 60_000): Promise<void> {
  const ok = await poll(
    async () => {
      try {
        Deno.statSync(`/proc/${p.daemon.pid}`);
      } catch {
        throw new Error(`${what} exited: ${logTail(p.daemon, 40)}`);
      }
      try {
        return (await p.get("/readyz")).status === 200;
      } catch {
        return false;
      }
    },
    timeoutMs,
    100,
  );
  if (!ok) throw new Error(`${what} not ready: ${logTail(p.daemon, 40)}`);
}

/**
 * Runs `steps` one after another as test steps of `t`, each followed by
 * the world's {@link DraWorld.reset}; a failed step prints its hydra
 * processes' logs; throws once all ran if one failed.
 */
export async function runSteps(
  t: Deno.TestContext,
  w: DraWorld,
  steps: [string, (w: DraWorld) => Promise<void>][],
): Promise<void> {
  const failed: string[] = [];
  for (const [name, fn] of steps) {
    const ok = await t.step(name, async () => {
      try {
        await fn(w);
      } catch (err) {
        w.dumpLogs();
        throw err;
      }
    });
    if (!ok) failed.push(name);
    await w.reset();
  }
  if (failed.length) throw new Error(`failed: ${failed.join("; ")}`);
}

/** Runs `body` in a fresh world; everything is removed afterwards. */
export async function withDraWorld(body: (w: DraWorld) => Promise<void>): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "hydra-dra-" });
  const cp = await startControlPlane({ scheduler: true, controllerManager: true });
  const procs: HydraProc[] = [];
  let wire: TestNetns | undefined;
  try {
    const confDir = join(tmp, "net.d");
    await Deno.mkdir(confDir);
    const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 200);
    const defaultBridge = uniqueName("hdd");
    await Deno.writeTextFile(
      join(confDir, "10-default.conflist"),
      JSON.stringify({
        cniVersion: "1.1.0",
        name: "default",
        plugins: [{
          type: "bridge",
          bridge: defaultBridge,
          isGateway: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: `10.244.${octet}.0/24` }]],
            dataDir: join(tmp, "default-ipam"),
          },
        }],
      }),
    );
    const ctd = await startContainerd({ cniConfDir: confDir, cniBinDirs: [referencePluginDir()] });
    try {
      // A pod whose claims could not be prepared is retried on the kubelet's periodic sync
      // (1 min by default); 5 s keeps tests of that path short.
      const kubelet = await startKubelet(cp, ctd, { config: { syncFrequency: "5s" } });
      try {
        wire = await createNetns("hdw");
        const ns = uniqueName("dra");
        await cp.createNamespace(ns);
        for (const dc of deviceClasses()) {
          await cp.api.must("POST", "/apis/resource.k8s.io/v1/deviceclasses", dc, [409]);
        }
        const kubeconfig = await nodeKubeconfig(cp, ns, tmp);
        const stateDir = join(tmp, "dra-state");
        const ipamDir = join(tmp, "ipam");
        const nodeNetns = `/var/run/netns/${ctd.netnsName}`;
        const api = (method: string, path: string, b?: unknown, ok?: number[]) =>
          cp.api.must(method, path, b, ok);
        const claims = `/apis/resource.k8s.io/v1/namespaces/${ns}/resourceclaims`;
        const pods = `/api/v1/namespaces/${ns}/pods`;
        const w: DraWorld = {
          cp,
          ctd,
          kubelet,
          nodeName: kubelet.nodeName,
          ns,
          tmp,
          stateDir,
          ipamDir,
          kubeconfig,
          wire,
          nodeNetns,
          defaultBridge,
          async nic(opts = {}) {
            const name = uniqueName("hnic");
            const peer = uniqueName("hwp");
            await run(
              "ip",
              "-n",
              ctd.netnsName,
              "link",
              "add",
              name,
              ...(opts.mtu ? ["mtu", String(opts.mtu)] : []),
              "type",
              "veth",
              "peer",
              "name",
              peer,
              "netns",
              wire!.name,
            );
            for (const a of opts.addresses ?? []) {
              await run(
                "ip",
                "-n",
                ctd.netnsName,
                "addr",
                "add",
                a,
                "dev",
                name,
                ...(a.includes(":") ? ["nodad"] : []),
              );
            }
            await run("ip", "-n", ctd.netnsName, "link", "set", name, "up");
            await run("ip", "-n", wire!.name, "link", "set", peer, "up");
            const [link] = await w.nodeIp<{ address: string }[]>("link", "show", name);
            return { name, mac: link.address, device: `nic-${name}`, peer };
          },
          async nodeIp<T>(...args: string[]) {
            const text = await run("ip", "-n", ctd.netnsName, "-j", ...args);
            return (text.trim() ? JSON.parse(text) : []) as T;
          },
          async startDra(extra = []) {
            const p = startProc("dra", ctd, tmp, [
              "dra",
              "serve",
              `--node-name=${kubelet.nodeName}`,
              `--kubeconfig=${kubeconfig}`,
              `--kubelet-dir=${join(kubelet.dir, "root")}`,
              `--state-dir=${stateDir}`,
              `--conf-dir=${confDir}`,
              `--cni-bin-dir=${referencePluginDir()}`,
              "--include=hnic*",
              "--rescan=1",
              // The world's NADs keep their address allocations in its folder.
              `--nad-path-roots=${JSON.stringify({ state: [tmp] })}`,
              ...extra,
            ]);
            procs.push(p);
            await ready(p, "hydra dra serve");
            return p;
          },
          async startNri(extra = []) {
            const p = startProc("nri", ctd, tmp, [
              "nri",
              "serve",
              `--socket=${ctd.nriSocket}`,
              `--kubeconfig=${kubeconfig}`,
              `--conf-dir=${confDir}`,
              `--cache-dir=${join(tmp, "nri-cache")}`,
              `--cni-bin-dir=${referencePluginDir()}`,
              `--dra-state-dir=${stateDir}`,
              // The world's NADs keep their address allocations in its folder.
              `--nad-path-roots=${JSON.stringify({ state: [tmp] })}`,
              ...extra,
            ]);
            procs.push(p);
            await ready(p, "hydra nri serve");
            return p;
          },
          async createClaim(name, requests, config) {
            return await api("POST", claims, {
              apiVersion: "resource.k8s.io/v1",
              kind: "ResourceClaim",
              metadata: { name, namespace: ns },
              spec: claimSpec(requests, config),
            }) as ResourceClaim;
          },
          async createClaimTemplate(name, requests, config) {
            await api("POST", `/apis/resource.k8s.io/v1/namespaces/${ns}/resourceclaimtemplates`, {
              apiVersion: "resource.k8s.io/v1",
              kind: "ResourceClaimTemplate",
              metadata: { name, namespace: ns },
              spec: { spec: claimSpec(requests, config) },
            });
          },
          async createPod(name, podClaims, opts = {}) {
            return await api("POST", pods, {
              apiVersion: "v1",
              kind: "Pod",
              metadata: { name, namespace: ns, annotations: opts.annotations ?? {} },
              spec: {
                ...(opts.byHand ? { schedulerName: BY_HAND_SCHEDULER } : {}),
                terminationGracePeriodSeconds: 0,
                resourceClaims: podClaims.map((c) =>
                  "claim" in c
                    ? { name: c.name, resourceClaimName: c.claim }
                    : { name: c.name, resourceClaimTemplateName: c.template }
                ),
                containers: [{
                  name: "main",
                  image: versions().PAUSE_IMAGE,
                  imagePullPolicy: "Never",
                  ...(opts.limits ? { resources: { limits: opts.limits } } : {}),
                }],
              },
            }) as Pod;
          },
          async claimOf(pod, podClaim) {
            let claim: string | undefined;
            const ok = await poll(
              async () => {
                const statuses = (await w.getPod(pod))?.status?.resourceClaimStatuses as
                  | { name: string; resourceClaimName?: string }[]
                  | undefined;
                claim = statuses?.find((s) => s.name === podClaim)?.resourceClaimName;
                return claim !== undefined;
              },
              60_000,
              100,
            );
            if (!ok) throw new Error(`no claim made for pod ${pod}'s claim ${podClaim}`);
            return claim!;
          },
          async scheduled(pod) {
            let cond: PodCondition | undefined;
            const ok = await poll(
              async () => {
                const conds = (await w.getPod(pod))?.status?.conditions as
                  | PodCondition[]
                  | undefined;
                cond = conds?.find((c) => c.type === "PodScheduled");
                return cond !== undefined;
              },
              60_000,
              100,
            );
            if (!ok) throw new Error(`pod ${pod} has no PodScheduled condition`);
            return cond!;
          },
          async schedule(pod, allocations) {
            for (const a of allocations) {
              const claim = await api("GET", `${claims}/${a.claim}`) as ResourceClaim & {
                spec: {
                  devices: {
                    requests: { name: string; exactly: { deviceClassName: string } }[];
                    config?: Obj[];
                  };
                };
              };
              const classConfig: Obj[] = [];
              for (const r of claim.spec.devices.requests) {
                const dc = await api(
                  "GET",
                  `/apis/resource.k8s.io/v1/deviceclasses/${r.exactly.deviceClassName}`,
                ) as { spec: { config?: Obj[] } };
                for (const c of dc.spec.config ?? []) {
                  classConfig.push({ ...c, source: "FromClass", requests: [r.name] });
                }
              }
              const status = {
                allocation: {
                  devices: {
                    results: Object.entries(a.devices).map(([request, device]) => ({
                      request,
                      driver: "hydra.clusternet.io",
                      pool: kubelet.nodeName,
                      device,
                    })),
                    config: [
                      ...classConfig,
                      ...(claim.spec.devices.config ?? []).map((c) => ({
                        ...c,
                        source: "FromClaim",
                      })),
                    ],
                  },
                  nodeSelector: {
                    nodeSelectorTerms: [{
                      matchFields: [{
                        key: "metadata.name",
                        operator: "In",
                        values: [kubelet.nodeName],
                      }],
                    }],
                  },
                },
                reservedFor: [{ resource: "pods", name: pod.metadata.name, uid: pod.metadata.uid }],
              };
              await api("PUT", `${claims}/${a.claim}/status`, { ...claim, status });
            }
            await api("POST", `${pods}/${pod.metadata.name}/binding`, {
              apiVersion: "v1",
              kind: "Binding",
              metadata: { name: pod.metadata.name, namespace: ns },
              target: { apiVersion: "v1", kind: "Node", name: kubelet.nodeName },
            });
          },
          async getPod(name) {
            const res = await cp.api.request("GET", `${pods}/${name}`);
            return res.status === 404 ? undefined : res.body as Pod;
          },
          async getClaim(name) {
            return await api("GET", `${claims}/${name}`) as ResourceClaim;
          },
          async waitRunning(name, timeoutMs = 60_000) {
            let pod: Pod | undefined;
            const ok = await poll(
              async () => {
                pod = await w.getPod(name);
                return (pod?.status as { phase?: string } | undefined)?.phase === "Running";
              },
              timeoutMs,
              100,
            );
            if (!ok) {
              const ev = await w.events(name);
              throw new Error(
                `pod ${name} not running: ${JSON.stringify(pod?.status)}; events: ${
                  JSON.stringify(ev)
                }`,
              );
            }
            return pod!;
          },
          async deletePod(name) {
            await cp.api.request("DELETE", `${pods}/${name}`);
            const gone = await poll(async () => (await w.getPod(name)) === undefined, 60_000, 100);
            if (!gone) throw new Error(`pod ${name} not deleted`);
          },
          async podNetns(name) {
            const list = JSON.parse(
              await ctd.crictl(
                "pods",
                "--namespace",
                ns,
                "--name",
                name,
                "--state",
                "Ready",
                "-o",
                "json",
              ),
            );
            const id = list.items[0]?.id;
            if (!id) throw new Error(`no ready sandbox of pod ${name}`);
            const info = JSON.parse(await ctd.crictl("inspectp", id));
            const spaces = info.info.runtimeSpec.linux.namespaces as {
              type: string;
              path?: string;
            }[];
            return spaces.find((s) => s.type === "network")!.path!;
          },
          async addrs(netns) {
            return JSON.parse(await run("nsenter", `--net=${netns}`, "ip", "-j", "addr", "show"));
          },
          async events(name) {
            const list = await api("GET", `/api/v1/namespaces/${ns}/events`) as {
              items: {
                involvedObject: { name: string };
                reason: string;
                type: string;
                message: string;
              }[];
            };
            return list.items.filter((e) => e.involvedObject.name === name).map((e) => ({
              reason: e.reason,
              type: e.type,
              message: e.message,
            }));
          },
          dumpLogs() {
            for (const p of procs) {
              console.error(`--- ${p.daemon.name}:\n${logTail(p.daemon, 30)}`);
            }
          },
          async reset() {
            const list = await api("GET", pods) as { items: Pod[] };
            for (const p of list.items) await w.deletePod(p.metadata.name);
            for (const p of procs.splice(0)) await stopProcessGroup(p.daemon.pid).catch(() => {});
          },
          async nad(name, config, annotations) {
            await api(
              "POST",
              `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
              {
                apiVersion: "k8s.cni.cncf.io/v1",
                kind: "NetworkAttachmentDefinition",
                metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
                spec: { config: JSON.stringify(config) },
              },
            );
          },
        };
        try {
          await body(w);
        } catch (err) {
          // What hydra said is what explains most failures.
          w.dumpLogs();
          throw err;
        }
      } finally {
        for (const p of procs) await stopProcessGroup(p.daemon.pid).catch(() => {});
        await kubelet.stop();
      }
    } finally {
      await ctd.stop();
      if (wire) await deleteNetns(wire);
    }
  } finally {
    await cp.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}
