/**
 * A real Kubernetes control plane for tests: etcd and kube-apiserver on loopback with free ports,
 * a generated PKI, RBAC, a ServiceAccount token issuer and the NetworkAttachmentDefinition CRD;
 * on request also kube-scheduler and kube-controller-manager (see control_loops.ts). Without the
 * scheduler, Pods need spec.nodeName; without the controller manager, namespaces get their
 * `default` ServiceAccount from {@link ControlPlane.createNamespace} and nothing reconciles
 * workloads (Deployments, StatefulSets, DaemonSets) or collects garbage.
 *
 * Always stop it in `finally`; stop() is idempotent and also removes all files.
 *
 * @module
 */

import { join } from "node:path";
import { parse } from "yaml";
import { generatePki, issueClientCert, type Pki } from "./certs.ts";
import {
  type ControllerManagerOptions,
  type ControlLoopContext,
  launchControllerManager,
  type LaunchedComponent,
  launchScheduler,
  type SchedulerOptions,
} from "./control_loops.ts";
import {
  ensureNamespace,
  ensureServiceAccount,
  type KubeApi,
  kubeApi,
  type KubeEndpoint,
  renderKubeconfig,
  requestServiceAccountToken,
} from "./kubeapi.ts";
import { makeInstanceDir, sweepOrphans, writeOwner } from "./owner.ts";
import { infraDir, peerBin } from "./peers.ts";
import {
  type Daemon,
  freeLoopbackPort,
  removeAll,
  runCommand,
  spawnDaemon,
  stopProcessGroup,
  waitUntil,
} from "./process.ts";

/** Everything needed to stop a control plane, also from another process. */
export interface ControlPlaneRecord {
  dir: string;
  etcdPid: number;
  apiserverPid: number;
  /** Absent or 0 when not running. */
  schedulerPid?: number;
  /** Absent or 0 when not running. */
  controllerManagerPid?: number;
}

/** Milliseconds spent in each start-up phase. */
export interface ControlPlaneTimings {
  pki: number;
  etcd: number;
  apiserver: number;
  crds: number;
  /** Until kube-scheduler and kube-controller-manager answered /healthz (0 when not started). */
  controlLoops: number;
  total: number;
}

/** A running control plane. */
export interface ControlPlane {
  /** Working folder (PKI, etcd data, logs, kubeconfigs); removed by stop(). */
  dir: string;
  /** https://127.0.0.1:<port> */
  server: string;
  /** CA certificate that signed the serving certificate (PEM file). */
  caPath: string;
  /** Admin kubeconfig (client certificate in group system:masters). */
  kubeconfigPath: string;
  /** Admin client certificate and key (PEM files), for fetch with Deno.createHttpClient. */
  adminCertPath: string;
  adminKeyPath: string;
  /** Static bearer token of a second admin identity (group system:masters). */
  adminToken: string;
  /** http://127.0.0.1:<port> of etcd. */
  etcdEndpoint: string;
  /** Logs of etcd and kube-apiserver, and of the scheduler and controller manager when running. */
  logPaths: { etcd: string; apiserver: string } & ControlLoopLogs;
  timings: ControlPlaneTimings;
  record: ControlPlaneRecord;
  /** Runs kubectl with the admin kubeconfig; returns stdout, throws with stderr on failure. */
  kubectl(...args: string[]): Promise<string>;
  /** An admin API client (client certificate); closed by stop(). */
  api: KubeApi;
  /**
   * Creates a namespace (if missing) with its `default` ServiceAccount and `kube-root-ca.crt`
   * ConfigMap (the controller manager adds them too when it runs; without it nothing does).
   */
  createNamespace(name: string): Promise<void>;
  /**
   * Issues a client certificate for `user` in `groups` and writes a kubeconfig using it (e.g. a
   * node identity: `system:node:<name>` in `system:nodes`). Returns the kubeconfig's path.
   */
  mintClientKubeconfig(user: string, groups: string[]): Promise<string>;
  /** Creates the ServiceAccount if missing and returns a fresh token for it. */
  mintServiceAccountToken(namespace: string, name: string): Promise<string>;
  /**
   * Creates the ServiceAccount (and namespace) if missing and writes a kubeconfig that
   * authenticates as it with a bound token. Returns the kubeconfig's path (inside `dir`).
   */
  mintServiceAccountKubeconfig(namespace: string, name: string): Promise<string>;
  /** Stops both programs and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /** Extra manifests (files) applied with kubectl after start-up, e.g. more CRDs. */
  manifests?: string[];
  /** Keep the programs running after this process exits (for `cluster up`). */
  detach?: boolean;
  /** Extra kube-apiserver flags. */
  apiserverArgs?: string[];
  /**
   * Also run kube-scheduler, so Pods without spec.nodeName are scheduled onto Nodes (e.g. a test
   * kubelet's), DRA claims included. `true` for the defaults.
   */
  scheduler?: boolean | SchedulerOptions;
  /**
   * Also run kube-controller-manager (default controllers: see DEFAULT_CONTROLLERS in
   * control_loops.ts). `true` for the defaults.
   */
  controllerManager?: boolean | ControllerManagerOptions;
}

/** Log files of the scheduler and controller manager, when they run. */
export interface ControlLoopLogs {
  scheduler?: string;
  controllerManager?: string;
}

/** The NetworkAttachmentDefinition CRD manifest shipped with the test infrastructure. */
export const nadCrdPath: string = join(infraDir, "manifests", "network-attachment-definition.yaml");

const DIR_PREFIX = "cp-";
const SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local";

/** Starts etcd and kube-apiserver and waits until the API serves the NAD CRD. */
export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const etcdBin = peerBin("etcd");
  const apiserverBin = peerBin("kube-apiserver");
  const kubectlBin = peerBin("kubectl");
  await sweepOrphans(DIR_PREFIX, stopControlPlaneRecord);
  const t0 = performance.now();
  const dir = await makeInstanceDir(DIR_PREFIX);
  const record: ControlPlaneRecord = { dir, etcdPid: 0, apiserverPid: 0 };
  const detached = opts.detach ?? false;
  await writeOwner(dir, record, detached);
  const daemons: Daemon[] = [];
  let api: KubeApi | undefined;
  try {
    const clientPort = freeLoopbackPort();
    const peerPort = freeLoopbackPort();
    const etcdEndpoint = `http://127.0.0.1:${clientPort}`;
    const etcdLog = join(dir, "etcd.log");
    const etcd = spawnDaemon("etcd", etcdBin, {
      logPath: etcdLog,
      detach: opts.detach,
      args: [
        "--name=default",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=${etcdEndpoint}`,
        `--advertise-client-urls=${etcdEndpoint}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
        "--unsafe-no-fsync",
        "--log-level=warn",
      ],
    });
    daemons.push(etcd);
    record.etcdPid = etcd.pid;
    await writeOwner(dir, record, detached);
    // The PKI is made while etcd starts.
    const pki = await generatePki(dir);
    const tPki = performance.now();
    await waitUntil("etcd health", () => etcdHealthy(etcdEndpoint), 30_000, etcd);
    const tEtcd = performance.now();

    const adminToken = crypto.randomUUID();
    await Deno.writeTextFile(
      join(dir, "tokens.csv"),
      `${adminToken},hydra-token-admin,hydra-token-admin,"system:masters"\n`,
    );
    const port = freeLoopbackPort();
    const server = `https://127.0.0.1:${port}`;
    const apiserverLog = join(dir, "kube-apiserver.log");
    const apiserver = spawnDaemon("kube-apiserver", apiserverBin, {
      logPath: apiserverLog,
      detach: opts.detach,
      args: [...apiserverArgs(dir, pki, etcdEndpoint, port), ...(opts.apiserverArgs ?? [])],
    });
    daemons.push(apiserver);
    record.apiserverPid = apiserver.pid;
    await writeOwner(dir, record, detached);
    const endpoint: KubeEndpoint = { server, caPem: await Deno.readTextFile(pki.caCert) };
    api = kubeApi(endpoint, {
      kind: "cert",
      certPem: await Deno.readTextFile(pki.adminCert),
      keyPem: await Deno.readTextFile(pki.adminKey),
    });
    const admin = api;
    await waitUntil(
      "kube-apiserver /readyz",
      async () => {
        try {
          return (await admin.request("GET", "/readyz")).status === 200;
        } catch {
          return false; // not listening yet
        }
      },
      60_000,
      apiserver,
    );
    const tApiserver = performance.now();

    const kubeconfigPath = join(dir, "admin.kubeconfig");
    await Deno.writeTextFile(
      kubeconfigPath,
      renderKubeconfig(endpoint, {
        kind: "cert",
        certPem: await Deno.readTextFile(pki.adminCert),
        keyPem: await Deno.readTextFile(pki.adminKey),
      }),
    );
    await Promise.all([
      ensureNamespace(admin, "default", endpoint.caPem),
      installCrd(admin, nadCrdPath),
    ]);
    const kubectl = async (...args: string[]) =>
      (await runCommand(kubectlBin, [`--kubeconfig=${kubeconfigPath}`, ...args])).stdout;
    for (const manifest of opts.manifests ?? []) await kubectl("apply", "-f", manifest);
    const tCrds = performance.now();
    const loopLogs = await startControlLoops({ dir, pki, endpoint, detach: detached }, opts, {
      record,
      started: (daemon) => {
        daemons.push(daemon);
        return writeOwner(dir, record, detached);
      },
    });
    const tLoops = performance.now();

    let stopping: Promise<void> | undefined;
    let minted = 0;
    const mintToken = async (namespace: string, name: string) => {
      await ensureNamespace(admin, namespace, endpoint.caPem);
      await ensureServiceAccount(admin, namespace, name);
      return requestServiceAccountToken(admin, namespace, name);
    };
    return {
      dir,
      server,
      caPath: pki.caCert,
      kubeconfigPath,
      adminCertPath: pki.adminCert,
      adminKeyPath: pki.adminKey,
      adminToken,
      etcdEndpoint,
      logPaths: { etcd: etcdLog, apiserver: apiserverLog, ...loopLogs },
      timings: {
        pki: tPki - t0,
        etcd: tEtcd - t0,
        apiserver: tApiserver - tEtcd,
        crds: tCrds - tApiserver,
        controlLoops: tLoops - tCrds,
        total: tLoops - t0,
      },
      record,
      kubectl,
      api: admin,
      createNamespace: (name) => ensureNamespace(admin, name, endpoint.caPem),
      async mintClientKubeconfig(user, groups) {
        const id = ++minted;
        const { cert, key } = await issueClientCert(pki, dir, `client-${id}`, user, groups);
        const path = join(dir, `client-${id}.kubeconfig`);
        await Deno.writeTextFile(
          path,
          renderKubeconfig(endpoint, {
            kind: "cert",
            certPem: await Deno.readTextFile(cert),
            keyPem: await Deno.readTextFile(key),
          }),
          { mode: 0o600 },
        );
        return path;
      },
      mintServiceAccountToken: mintToken,
      async mintServiceAccountKubeconfig(namespace, name) {
        const token = await mintToken(namespace, name);
        const path = join(dir, `sa-${namespace}-${name}-${++minted}.kubeconfig`);
        await Deno.writeTextFile(
          path,
          renderKubeconfig(endpoint, { kind: "token", token }, "hydra-test", namespace),
          { mode: 0o600 },
        );
        return path;
      },
      stop() {
        stopping ??= (async () => {
          admin.close();
          await stopDaemons(daemons, record);
        })();
        return stopping;
      },
    };
  } catch (err) {
    api?.close();
    await stopDaemons(daemons, record).catch(() => {});
    throw err;
  }
}

/** `true` → the defaults, `false`/absent → not wanted. */
function wanted<T>(value: boolean | T | undefined): T | undefined {
  if (value === undefined || value === false) return undefined;
  return value === true ? {} as T : value;
}

/**
 * Starts the scheduler and controller manager asked for, records their pids (through `track`),
 * and waits until both are healthy. Returns their log paths.
 */
async function startControlLoops(
  ctx: ControlLoopContext,
  opts: ControlPlaneOptions,
  track: { record: ControlPlaneRecord; started: (daemon: Daemon) => Promise<void> },
): Promise<ControlLoopLogs> {
  const logs: ControlLoopLogs = {};
  const launched: LaunchedComponent[] = [];
  const schedulerOpts = wanted(opts.scheduler);
  if (schedulerOpts) {
    const scheduler = await launchScheduler(ctx, schedulerOpts);
    track.record.schedulerPid = scheduler.daemon.pid;
    await track.started(scheduler.daemon);
    logs.scheduler = scheduler.daemon.logPath;
    launched.push(scheduler);
  }
  const managerOpts = wanted(opts.controllerManager);
  if (managerOpts) {
    const manager = await launchControllerManager(ctx, managerOpts);
    track.record.controllerManagerPid = manager.daemon.pid;
    await track.started(manager.daemon);
    logs.controllerManager = manager.daemon.logPath;
    launched.push(manager);
  }
  await Promise.all(launched.map((component) => component.ready()));
  return logs;
}

function apiserverArgs(dir: string, pki: Pki, etcdEndpoint: string, port: number): string[] {
  return [
    `--etcd-servers=${etcdEndpoint}`,
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${port}`,
    `--cert-dir=${join(dir, "apiserver-certs")}`,
    `--tls-cert-file=${pki.serverCert}`,
    `--tls-private-key-file=${pki.serverKey}`,
    `--client-ca-file=${pki.caCert}`,
    `--token-auth-file=${join(dir, "tokens.csv")}`,
    // Node: kubelets (system:nodes) may manage their own Node and Pods, as in a real cluster.
    "--authorization-mode=Node,RBAC",
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${pki.serviceAccountPub}`,
    `--service-account-signing-key-file=${pki.serviceAccountKey}`,
    "--service-cluster-ip-range=10.96.0.0/24",
    // A loopback advertise address makes the endpoint reconciler fail forever; nothing here
    // needs the `kubernetes` Endpoints.
    "--endpoint-reconciler-type=none",
    "--allow-privileged=true",
    // Less start-up work; a single-user test server needs no fairness queues.
    "--enable-priority-and-fairness=false",
    "--profiling=false",
    "--v=1",
  ];
}

async function etcdHealthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`);
    const body = await res.json() as { health?: string };
    return res.ok && body.health === "true";
  } catch {
    return false;
  }
}

/** Creates a CRD from a manifest file and waits until its resources are served. */
export async function installCrd(api: KubeApi, manifestPath: string): Promise<void> {
  const crd = parse(await Deno.readTextFile(manifestPath)) as {
    metadata: { name: string };
    spec: { group: string; names: { plural: string }; versions: { name: string }[] };
  };
  await api.must("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, [409]);
  const { group, names } = crd.spec;
  const version = crd.spec.versions[0].name;
  await waitUntil(`CRD ${crd.metadata.name} to be served`, async () => {
    const res = await api.request("GET", `/apis/${group}/${version}`);
    const resources = (res.body as { resources?: { name: string }[] }).resources ?? [];
    return res.status === 200 && resources.some((r) => r.name === names.plural);
  }, 30_000);
}

async function stopDaemons(daemons: Daemon[], record: ControlPlaneRecord): Promise<void> {
  const errors: unknown[] = [];
  // The apiserver first, so it does not log etcd connection errors on the way down.
  for (const daemon of [...daemons].reverse()) {
    try {
      await stopProcessGroup(daemon.pid);
      await daemon.status;
    } catch (err) {
      errors.push(err);
    }
  }
  try {
    await removeAll(record.dir);
  } catch (err) {
    errors.push(err);
  }
  if (errors.length > 0) throw new AggregateError(errors, "stopping the control plane failed");
}

/** Stops a control plane from its record (for a different process than the one that started it). */
export async function stopControlPlaneRecord(record: ControlPlaneRecord): Promise<void> {
  // In start order; stopDaemons stops them the other way round.
  const daemons = [
    { name: "etcd", pid: record.etcdPid },
    { name: "kube-apiserver", pid: record.apiserverPid },
    { name: "kube-scheduler", pid: record.schedulerPid ?? 0 },
    { name: "kube-controller-manager", pid: record.controllerManagerPid ?? 0 },
  ].filter((d) => d.pid > 1).map((d) => ({ ...d, logPath: "" }));
  await stopDaemons(daemons, record);
}
