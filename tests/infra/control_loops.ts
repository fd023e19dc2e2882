/**
 * The control plane's control loops for tests: kube-scheduler and kube-controller-manager, started
 * against a test kube-apiserver by {@link startControlPlane} when asked for. Each authenticates with
 * a client certificate of its well-known identity (`system:kube-scheduler`,
 * `system:kube-controller-manager`, which the API server's bootstrap RBAC already grants what they
 * need), serves its health endpoint on a free loopback port with a certificate of the test CA, and
 * runs without leader election (one instance per control plane).
 *
 * @module
 */

import { join } from "node:path";
import { stringify } from "yaml";
import { issueClientCert, issueServingCert, type Pki } from "./certs.ts";
import { type KubeEndpoint, renderKubeconfig } from "./kubeapi.ts";
import { peerBin } from "./peers.ts";
import { type Daemon, freeLoopbackPort, spawnDaemon, waitUntil } from "./process.ts";

/**
 * Controllers kube-controller-manager runs unless told otherwise: workloads (Deployments through
 * ReplicaSets, StatefulSets, DaemonSets), garbage collection of dependents, namespace deletion,
 * ServiceAccounts and their tokens, the `kube-root-ca.crt` ConfigMap of every namespace,
 * ResourceClaims made from ResourceClaimTemplates (DRA), and node lifecycle: the API server taints
 * every new Node `node.kubernetes.io/not-ready:NoSchedule`, and only this controller lifts the
 * taint once the Node reports Ready (the taint-based eviction controller stays off, so a Node
 * going NotReady never evicts a test's Pods).
 */
export const DEFAULT_CONTROLLERS: readonly string[] = [
  "deployment-controller",
  "replicaset-controller",
  "statefulset-controller",
  "daemonset-controller",
  "garbage-collector-controller",
  "namespace-controller",
  "serviceaccount-controller",
  "serviceaccount-token-controller",
  "root-ca-certificate-publisher-controller",
  "resourceclaim-controller",
  "node-lifecycle-controller",
];

/** Options for kube-scheduler (see ControlPlaneOptions.scheduler). */
export interface SchedulerOptions {
  /** Fields merged over the generated KubeSchedulerConfiguration (e.g. `profiles`). */
  config?: Record<string, unknown>;
  /** Extra command-line flags. */
  args?: string[];
}

/** Options for kube-controller-manager (see ControlPlaneOptions.controllerManager). */
export interface ControllerManagerOptions {
  /** Controllers to run (default {@link DEFAULT_CONTROLLERS}); `--controllers` syntax. */
  controllers?: string[];
  /** Extra command-line flags. */
  args?: string[];
}

/** What both need from the control plane being started. */
export interface ControlLoopContext {
  /** The control plane's working folder. */
  dir: string;
  pki: Pki;
  endpoint: KubeEndpoint;
  detach: boolean;
}

/** A started component: its process, and a promise that settles once its /healthz answers. */
export interface LaunchedComponent {
  daemon: Daemon;
  /** https://127.0.0.1:<port> of its secure port. */
  healthUrl: string;
  ready(): Promise<void>;
}

/** Writes a kubeconfig with a fresh client certificate for `user` and returns its path. */
async function componentKubeconfig(
  ctx: ControlLoopContext,
  name: string,
  user: string,
): Promise<string> {
  const { cert, key } = await issueClientCert(ctx.pki, ctx.dir, `${name}-client`, user);
  const path = join(ctx.dir, `${name}.kubeconfig`);
  await Deno.writeTextFile(
    path,
    renderKubeconfig(ctx.endpoint, {
      kind: "cert",
      certPem: await Deno.readTextFile(cert),
      keyPem: await Deno.readTextFile(key),
    }),
    { mode: 0o600 },
  );
  return path;
}

/** Flags both share: loopback secure serving with a test-CA certificate, delegated auth. */
async function servingArgs(
  ctx: ControlLoopContext,
  name: string,
  kubeconfig: string,
  port: number,
): Promise<string[]> {
  const serving = await issueServingCert(ctx.pki, ctx.dir, `${name}-serving`);
  return [
    "--bind-address=127.0.0.1",
    `--secure-port=${port}`,
    `--tls-cert-file=${serving.cert}`,
    `--tls-private-key-file=${serving.key}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    `--client-ca-file=${ctx.pki.caCert}`,
    "--profiling=false",
    "--v=1",
  ];
}

function launch(
  ctx: ControlLoopContext,
  name: string,
  args: string[],
  port: number,
): LaunchedComponent {
  const daemon = spawnDaemon(name, peerBin(name), {
    args,
    logPath: join(ctx.dir, `${name}.log`),
    detach: ctx.detach,
  });
  const healthUrl = `https://127.0.0.1:${port}`;
  return {
    daemon,
    healthUrl,
    async ready() {
      const client = Deno.createHttpClient({ caCerts: [ctx.endpoint.caPem] });
      try {
        await waitUntil(
          `${name} /healthz`,
          async () => {
            try {
              const res = await fetch(`${healthUrl}/healthz`, { client });
              await res.body?.cancel();
              return res.status === 200;
            } catch {
              return false; // not listening yet
            }
          },
          60_000,
          daemon,
        );
      } finally {
        client.close();
      }
    },
  };
}

/** Starts kube-scheduler (leader election off) against the control plane's API server. */
export async function launchScheduler(
  ctx: ControlLoopContext,
  opts: SchedulerOptions = {},
): Promise<LaunchedComponent> {
  const name = "kube-scheduler";
  const kubeconfig = await componentKubeconfig(ctx, name, "system:kube-scheduler");
  const configPath = join(ctx.dir, "kube-scheduler.yaml");
  await Deno.writeTextFile(
    configPath,
    stringify({
      apiVersion: "kubescheduler.config.k8s.io/v1",
      kind: "KubeSchedulerConfiguration",
      clientConnection: { kubeconfig },
      leaderElection: { leaderElect: false },
      ...opts.config,
    }),
  );
  const port = freeLoopbackPort();
  const args = [
    `--config=${configPath}`,
    ...await servingArgs(ctx, name, kubeconfig, port),
    ...(opts.args ?? []),
  ];
  return launch(ctx, name, args, port);
}

/**
 * Starts kube-controller-manager (leader election off) with the given controllers, each using its
 * own ServiceAccount's credentials as in a kubeadm cluster.
 */
export async function launchControllerManager(
  ctx: ControlLoopContext,
  opts: ControllerManagerOptions = {},
): Promise<LaunchedComponent> {
  const name = "kube-controller-manager";
  const kubeconfig = await componentKubeconfig(ctx, name, "system:kube-controller-manager");
  const port = freeLoopbackPort();
  const args = [
    `--kubeconfig=${kubeconfig}`,
    ...await servingArgs(ctx, name, kubeconfig, port),
    "--leader-elect=false",
    `--controllers=${(opts.controllers ?? DEFAULT_CONTROLLERS).join(",")}`,
    "--use-service-account-credentials=true",
    `--service-account-private-key-file=${ctx.pki.serviceAccountKey}`,
    `--root-ca-file=${ctx.pki.caCert}`,
    ...(opts.args ?? []),
  ];
  return launch(ctx, name, args, port);
}
