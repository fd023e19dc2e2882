/**
 * The manifests of deploy/ made fit for the test node, as a user whose
 * nodes keep their folders elsewhere edits them: every hostPath moves under
 * the test node's root (so nothing of this machine is touched), the NRI
 * socket, the pod network namespaces and the kubelet's pod-resources socket
 * are the test containerd's and kubelet's, the image is the offline one,
 * and the pods reach the API server where the test node sees it (no
 * kube-proxy serves the `kubernetes` Service's address).
 *
 * Run as a program it is a Helm post-renderer: YAML on stdin, the same
 * objects fitted on stdout, the node given as JSON in $HYDRA_TEST_NODE.
 *
 * @module
 */

import { parseAllDocuments } from "yaml";

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

/** Where the test node keeps what a real node keeps at fixed paths. */
export interface TestNode {
  /** Every hostPath not named below moves under this folder. */
  root: string;
  /** The folder holding the test containerd's NRI socket (`nri.sock`). */
  nriDir: string;
  /** Where the test containerd bind-mounts pod network namespaces. */
  netnsDir: string;
  /** The kubelet's root folder (`--root-dir`; /var/lib/kubelet on a real node). */
  kubeletRoot: string;
  /** The image every hydra container runs. */
  image: string;
  /** The API server as seen from the node's network namespace. */
  apiHost: string;
  apiPort: string;
}

/** The host path a manifest's path becomes on the test node. */
export function hostPathOf(node: TestNode, path: string): string {
  if (path === "/var/run/nri") return node.nriDir;
  if (path === "/var/run/netns") return node.netnsDir;
  if (path === "/var/lib/kubelet" || path.startsWith("/var/lib/kubelet/")) {
    return `${node.kubeletRoot}${path.slice("/var/lib/kubelet".length)}`;
  }
  return `${node.root}${path}`;
}

/**
 * The meta-CNI runs on the node, outside every container: the paths its conf
 * names (executables, kubeconfig, daemon socket, result cache, where
 * network definitions may keep state) are the test node's, not those the
 * installer's container sees.
 */
function metaPaths(node: TestNode): Record<string, unknown> {
  return {
    binDir: hostPathOf(node, "/opt/cni/bin"),
    kubeconfig: hostPathOf(node, "/etc/cni/net.d/hydra.d/hydra.kubeconfig"),
    daemonSocket: hostPathOf(node, "/run/hydra/daemon.sock"),
    cacheDir: hostPathOf(node, "/var/lib/cni/hydra"),
    nadPathRoots: { state: [hostPathOf(node, "/var/lib/cni")] },
  };
}

function fitPod(node: TestNode, pod: Obj): void {
  const moved = new Map<string, string>();
  for (const v of pod.volumes ?? []) {
    if (!v.hostPath) continue;
    v.hostPath.path = hostPathOf(node, v.hostPath.path);
    moved.set(v.name, v.hostPath.path);
  }
  for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
    if (String(c.image).includes("/hydra:")) c.image = node.image;
    for (const m of c.volumeMounts ?? []) {
      // Namespace paths come from the runtime, and a DRA driver tells the kubelet where its
      // sockets are: those must be the same inside.
      if (m.mountPath === "/var/run/netns" || m.mountPath.startsWith("/var/lib/kubelet/")) {
        m.mountPath = moved.get(m.name);
      }
    }
    if (c.args?.[0] === "dra") c.args.push(`--kubelet-dir=${node.kubeletRoot}`);
    if (c.args?.includes("--mode=meta")) {
      c.args.push(`--meta-json=${JSON.stringify(metaPaths(node))}`);
    }
    c.env = [
      ...(c.env ?? []).filter((e: Obj) => !e.name.startsWith("KUBERNETES_SERVICE_")),
      { name: "KUBERNETES_SERVICE_HOST", value: node.apiHost },
      { name: "KUBERNETES_SERVICE_PORT", value: node.apiPort },
    ];
  }
}

/** The objects of a YAML stream, fitted to the test node. */
export function fitToTestNode(yamlText: string, node: TestNode): Obj[] {
  const out: Obj[] = [];
  for (const doc of parseAllDocuments(yamlText)) {
    if (doc.errors.length) throw new Error(doc.errors.join("; "));
    const o = doc.toJSON() as Obj | null;
    if (!o) continue;
    if (o.spec?.template?.spec) fitPod(node, o.spec.template.spec);
    out.push(o);
  }
  return out;
}

/**
 * Objects as one YAML stream, each document JSON (plain YAML would leave
 * `off` unquoted, which YAML 1.1 readers such as kubectl take for false).
 */
export function toYaml(objects: Obj[]): string {
  return objects.map((o) => `---\n${JSON.stringify(o)}\n`).join("");
}

if (import.meta.main) {
  const node = JSON.parse(Deno.env.get("HYDRA_TEST_NODE") ?? "") as TestNode;
  const input = await new Response(Deno.stdin.readable).text();
  await Deno.stdout.write(new TextEncoder().encode(toYaml(fitToTestNode(input, node))));
}
