/**
 * Shared setup for the tests of kube/ against a real kube-apiserver: the
 * RBAC a node agent gets, objects to create, and a restart of the API server
 * with the arguments it was started with.
 *
 * @module
 */

import type { ControlPlane } from "../infra/cluster.ts";
import { type Daemon, spawnDaemon, stopProcessGroup, waitUntil } from "../infra/process.ts";

/**
 * A broad test account for the tests of the Kubernetes client itself (reads,
 * watches, status writes on pods bound to no node). hydra's own identities
 * and their exact roles, as deploy/ defines them, are in manifest_rbac.ts.
 */
export const NODE_AGENT_RULES = [
  { apiGroups: [""], resources: ["pods", "nodes"], verbs: ["get", "list", "watch"] },
  { apiGroups: [""], resources: ["pods/status"], verbs: ["get", "patch", "update"] },
  { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
  { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch"] },
  {
    apiGroups: ["k8s.cni.cncf.io"],
    resources: ["network-attachment-definitions"],
    verbs: ["get", "list", "watch"],
  },
  { apiGroups: ["kubernetes-network.cni.cncf.io"], resources: ["networks"], verbs: ["get"] },
];

/**
 * Creates a ServiceAccount bound to {@link NODE_AGENT_RULES} cluster-wide and
 * returns the path of a kubeconfig that authenticates as it.
 */
export async function nodeAgentKubeconfig(cp: ControlPlane, namespace: string): Promise<string> {
  const name = "hydra-node";
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: `hydra-node-${namespace}` },
    rules: NODE_AGENT_RULES,
  }, [409]);
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: `hydra-node-${namespace}` },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: `hydra-node-${namespace}`,
    },
    subjects: [{ kind: "ServiceAccount", name, namespace }],
  }, [409]);
  return await cp.mintServiceAccountKubeconfig(namespace, name);
}

/** A Pod manifest (never scheduled; the API server stores it as is). */
export function podManifest(
  namespace: string,
  name: string,
  annotations: Record<string, string> = {},
) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, annotations },
    spec: { containers: [{ name: "main", image: "localhost/hydra/pause:1.0" }] },
  };
}

/** A NetworkAttachmentDefinition manifest. */
export function nadManifest(namespace: string, name: string, config: string | undefined) {
  return {
    apiVersion: "k8s.cni.cncf.io/v1",
    kind: "NetworkAttachmentDefinition",
    metadata: { name, namespace },
    spec: config === undefined ? {} : { config },
  };
}

/** The command line of a running process. */
async function cmdline(pid: number): Promise<string[]> {
  const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`);
  return raw.split("\0").filter((a, i, all) => a !== "" || i < all.length - 1);
}

/**
 * Restarts kube-apiserver: stops it and starts the same program with the same
 * arguments (same port, certificates and etcd), then waits until it is ready.
 * The restarted process is the caller's to stop ({@link stopProcessGroup}).
 */
export async function restartApiserver(cp: ControlPlane, pid: number): Promise<Daemon> {
  const [program, ...args] = await cmdline(pid);
  await stopProcessGroup(pid);
  const daemon = spawnDaemon("kube-apiserver", program, { args, logPath: cp.logPaths.apiserver });
  await waitUntil(
    "restarted kube-apiserver /readyz",
    async () => {
      try {
        return (await cp.api.request("GET", "/readyz")).status === 200;
      } catch {
        return false;
      }
    },
    60_000,
    daemon,
  );
  return daemon;
}

/** Freezes (SIGSTOP) or thaws (SIGCONT) a process: an API server that accepts but never answers. */
export function freeze(pid: number, frozen: boolean): void {
  Deno.kill(pid, frozen ? "SIGSTOP" : "SIGCONT");
}
