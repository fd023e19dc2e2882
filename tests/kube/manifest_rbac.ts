/**
 * hydra's identities as the manifests in deploy/ define them, on a test API
 * server: the ServiceAccounts, roles, bindings and admission policies of the
 * setup files (everything but the DaemonSets and the CRD), and tokens bound
 * as they are in a cluster — the node kubeconfig's to the Node (as the
 * installer mints it), a DaemonSet pod's to that pod (as the kubelet
 * requests it). Tests that run hydra with these identities prove the
 * manifests' RBAC is enough for what hydra does.
 *
 * @module
 */

import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import type { ControlPlane } from "../infra/cluster.ts";
import { renderKubeconfig } from "../infra/kubeapi.ts";

const deployDir = new URL("../../deploy/", import.meta.url).pathname;

/** The namespace of hydra's identities. */
export const HYDRA_NAMESPACE = "hydra-system";

/** Setup files whose access objects are applied. */
const SETUP_FILES = ["hydra-meta.yaml", "hydra-nri.yaml", "hydra-router.yaml"];

/** The objects of the setup files that grant or limit access (no workloads, no CRD). */
export function accessObjects(): Record<string, unknown>[] {
  const seen = new Set<string>();
  const out: Record<string, unknown>[] = [];
  for (const file of SETUP_FILES) {
    const text = Deno.readTextFileSync(join(deployDir, file));
    for (const doc of parseAllDocuments(text)) {
      const obj = doc.toJSON() as { kind?: string; metadata?: { name?: string } } | null;
      if (!obj?.kind || obj.kind === "DaemonSet" || obj.kind === "CustomResourceDefinition") {
        continue;
      }
      const key = `${obj.kind}/${obj.metadata?.name}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push(obj as Record<string, unknown>);
    }
  }
  return out;
}

const applied = new WeakSet<ControlPlane>();

/** Applies {@link accessObjects} (once per control plane) and waits until the policies act. */
export async function applyHydraAccess(cp: ControlPlane): Promise<void> {
  if (applied.has(cp)) return;
  const path = join(cp.dir, "hydra-access.yaml");
  await Deno.writeTextFile(path, accessObjects().map((o) => stringify(o)).join("---\n"));
  await cp.kubectl("apply", "-f", path);
  applied.add(cp);
  await policiesActive(cp);
}

/**
 * Admission policies take effect a moment after they are created; waits
 * until a write the status policy refuses is refused.
 */
async function policiesActive(cp: ControlPlane): Promise<void> {
  const probe = `hydra-policy-probe-${crypto.randomUUID().slice(0, 8)}`;
  const token = await boundToken(cp, "hydra-node", { kind: "Node", name: probe });
  const ns = HYDRA_NAMESPACE;
  const pod = await cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, {
    metadata: { name: probe },
    spec: {
      nodeName: `${probe}-other`,
      serviceAccountName: "hydra-install",
      containers: [{ name: "c", image: "x" }],
    },
  }) as { metadata: { name: string } };
  const caPem = await Deno.readTextFile(cp.caPath);
  const client = Deno.createHttpClient({ caCerts: [caPem] });
  try {
    for (let i = 0; i < 100; i++) {
      const res = await fetch(
        `${cp.server}/api/v1/namespaces/${ns}/pods/${pod.metadata.name}/status`,
        {
          method: "PATCH",
          client,
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/merge-patch+json",
          },
          body: JSON.stringify({ metadata: { annotations: { "hydra.clusternet.io.probe": "x" } } }),
        },
      );
      await res.body?.cancel();
      if (res.status === 403) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("the admission policies did not take effect within 10 s");
  } finally {
    client.close();
    await cp.api.request("DELETE", `/api/v1/namespaces/${ns}/pods/${probe}?gracePeriodSeconds=0`);
    await cp.api.request("DELETE", `/api/v1/nodes/${probe}`);
  }
}

/** Creates a Node object if missing (bare: tests may fill it in later with a patch). */
export async function ensureNode(cp: ControlPlane, name: string): Promise<void> {
  await cp.api.must("POST", "/api/v1/nodes", { metadata: { name } }, [409]);
}

/**
 * A token for ServiceAccount `sa` of hydra's namespace, bound to a Node
 * (created if missing) or to an existing pod, as a cluster binds them.
 */
export async function boundToken(
  cp: ControlPlane,
  sa: string,
  ref: { kind: "Node" | "Pod"; name: string; uid?: string },
  expirationSeconds = 86400,
): Promise<string> {
  if (ref.kind === "Node") await ensureNode(cp, ref.name);
  const res = await cp.api.must(
    "POST",
    `/api/v1/namespaces/${HYDRA_NAMESPACE}/serviceaccounts/${sa}/token`,
    {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds, boundObjectRef: { apiVersion: "v1", ...ref } },
    },
  ) as { status: { token: string } };
  return res.status.token;
}

/**
 * A pod of ServiceAccount `sa` on `nodeName`, standing for a DaemonSet pod,
 * and the token the kubelet would give it.
 */
export async function daemonSetPodToken(
  cp: ControlPlane,
  sa: string,
  nodeName: string,
): Promise<string> {
  await ensureNode(cp, nodeName);
  const name = `${sa}-${nodeName}`.slice(0, 63).replace(/-+$/, "");
  const pod = await cp.api.must("POST", `/api/v1/namespaces/${HYDRA_NAMESPACE}/pods`, {
    metadata: { name },
    spec: {
      nodeName,
      serviceAccountName: sa,
      containers: [{ name: "main", image: "localhost/hydra/pause:1.0" }],
    },
  }, [409]) as { metadata?: { uid?: string } };
  const uid = pod.metadata?.uid ??
    ((await cp.api.must("GET", `/api/v1/namespaces/${HYDRA_NAMESPACE}/pods/${name}`)) as {
      metadata: { uid: string };
    }).metadata.uid;
  return await boundToken(cp, sa, { kind: "Pod", name, uid });
}

/** Writes a kubeconfig (YAML) authenticating with `token`; returns its path. */
export async function tokenKubeconfig(
  cp: ControlPlane,
  token: string,
  name: string,
): Promise<string> {
  const path = join(cp.dir, `${name}-${crypto.randomUUID().slice(0, 8)}.kubeconfig`);
  const caPem = await Deno.readTextFile(cp.caPath);
  await Deno.writeTextFile(
    path,
    renderKubeconfig({ server: cp.server, caPem }, { kind: "token", token }, name),
    { mode: 0o600 },
  );
  return path;
}

/**
 * A kubeconfig path of ServiceAccount `sa` of deploy/, its token bound to
 * Node `nodeName` (as the installer mints the node kubeconfig's).
 */
async function nodeBoundKubeconfig(
  cp: ControlPlane,
  sa: string,
  nodeName: string,
): Promise<string> {
  await applyHydraAccess(cp);
  return await tokenKubeconfig(cp, await boundToken(cp, sa, { kind: "Node", name: nodeName }), sa);
}

/** The node kubeconfig's identity (hydra-node) on `nodeName`, as the installer mints it. */
export function nodeIdentityKubeconfig(cp: ControlPlane, nodeName: string): Promise<string> {
  return nodeBoundKubeconfig(cp, "hydra-node", nodeName);
}

/**
 * The node daemon's identity (hydra-daemon) on `nodeName`. Its token names
 * the node as a DaemonSet pod's does, but is bound to the Node rather than
 * to a stand-in pod, which would show up among the node's pods
 * (rbac_test.ts checks a pod-bound one).
 */
export function daemonIdentityKubeconfig(cp: ControlPlane, nodeName: string): Promise<string> {
  return nodeBoundKubeconfig(cp, "hydra-daemon", nodeName);
}

/** The NRI plugin's identity (hydra-nri) on `nodeName`, bound to the Node as the daemon's is. */
export function nriIdentityKubeconfig(cp: ControlPlane, nodeName: string): Promise<string> {
  return nodeBoundKubeconfig(cp, "hydra-nri", nodeName);
}
