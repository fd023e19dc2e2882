/**
 * hydra's identities against a real kube-apiserver, with the ServiceAccounts,
 * roles and admission policies of deploy/ and tokens bound as a cluster
 * binds them: the real installer mints the node kubeconfig's token (bound
 * to its Node) with the installer's pod-bound token; the real node daemon
 * syncs its caches and writes a pod's network status with its own. Each
 * identity can do what its process does, and is refused (403) what it must
 * not: secrets, other nodes' pods, tokens for other nodes or accounts,
 * writes beyond hydra's annotations.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { createKubeClient, type KubeClient } from "../../kube/client.ts";
import { KubeApiError } from "../../kube/errors.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import { patchPodStatusAnnotations } from "../../kube/objects.ts";
import { connectNodeDaemon } from "../../daemonclient/client.ts";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { spawnDaemon, stopProcessGroup, waitUntil } from "../infra/process.ts";
import {
  applyHydraAccess,
  daemonSetPodToken,
  HYDRA_NAMESPACE,
  tokenKubeconfig,
} from "../kube/manifest_rbac.ts";
import { hydraLauncher, makeNode, removeNode, runInstall, writeProjectedToken } from "./helpers.ts";

const NS = "apps";

/** The HTTP status of a call (200-299 as 200), 0 on a transport failure. */
async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof KubeApiError) return err.status;
    throw err;
  }
}

/** Asserts every call's status: `[what, call, expected status]`. */
async function expectStatuses(
  who: string,
  cases: [string, () => Promise<unknown>, number][],
): Promise<void> {
  const got: string[] = [];
  const want: string[] = [];
  for (const [what, call, expected] of cases) {
    got.push(`${who} ${what}: ${await status(call())}`);
    want.push(`${who} ${what}: ${expected}`);
  }
  assert.deepEqual(got, want);
}

async function clientFor(path: string): Promise<KubeClient> {
  return createKubeClient(await loadKubeconfig(path), { timeoutMs: 10_000 });
}

/** A pod of namespace NS on `node`. */
async function appPod(cp: ControlPlane, name: string, node: string): Promise<void> {
  await cp.api.must("POST", `/api/v1/namespaces/${NS}/pods`, {
    metadata: { name, annotations: { owner: "team-a" } },
    spec: { nodeName: node, containers: [{ name: "main", image: "localhost/hydra/pause:1.0" }] },
  });
}

const NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";

Deno.test("each hydra identity can do what its process does and nothing else; writes stay on its node", async (t) => {
  const cp = await startControlPlane();
  const clients: KubeClient[] = [];
  const node = await makeNode();
  try {
    await cp.createNamespace(NS);
    await applyHydraAccess(cp);
    await appPod(cp, "mine", "n1");
    await appPod(cp, "theirs", "n2");
    await cp.api.must(
      "POST",
      `/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions`,
      {
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name: "blue" },
        spec: { config: "{}" },
      },
    );
    const caPem = await Deno.readTextFile(cp.caPath);
    const installerToken = await daemonSetPodToken(cp, "hydra-install", "n1");

    let nodeKubeconfig = "";
    await t.step("the installer mints the node token, bound to its own Node", async () => {
      await writeProjectedToken(node.saDir, installerToken, caPem);
      const kubeconfig = join(node.root, "hydra.kubeconfig");
      const args = [
        ...node.flags,
        `--server=${cp.server}`,
        `--kubeconfig=${kubeconfig}`,
        "--mode=nri",
        "--once",
        `--node-service-account=${HYDRA_NAMESPACE}/hydra-node`,
        "--node-name=n1",
      ];
      const first = await runInstall(args);
      assert.equal(first.code, 0, first.stderr);
      const review = await (await clientFor(kubeconfig)).create<{
        status: { userInfo: { username: string; extra: Record<string, string[]> } };
      }>("/apis/authentication.k8s.io/v1/selfsubjectreviews", {
        apiVersion: "authentication.k8s.io/v1",
        kind: "SelfSubjectReview",
      });
      assert.equal(
        review.status.userInfo.username,
        "system:serviceaccount:hydra-system:hydra-node",
      );
      assert.deepEqual(review.status.userInfo.extra["authentication.kubernetes.io/node-name"], [
        "n1",
      ]);
      // A second pass keeps the token (more than half its lifetime left): the file is unchanged.
      const before = await Deno.readTextFile(kubeconfig);
      const second = await runInstall(args);
      assert.equal(second.code, 0, second.stderr);
      assert.equal(await Deno.readTextFile(kubeconfig), before);
      // Told it runs on another node, it is refused: the policy reads its node from its token.
      const lying = await runInstall([
        ...args.filter((a) => a !== "--node-name=n1"),
        "--node-name=n2",
        `--kubeconfig=${kubeconfig}.2`,
      ]);
      assert.equal(lying.code, 1);
      assert.match(
        lying.stderr,
        /cannot mint the node kubeconfig's token .*Node n2\): .*403 Forbidden.*may mint tokens bound only to its own Node object/,
      );
      nodeKubeconfig = kubeconfig;
    });

    await t.step("the installer's own identity can do nothing else", async () => {
      const c = await clientFor(await tokenKubeconfig(cp, installerToken, "installer"));
      clients.push(c);
      const token = (sa: string, node: string) =>
        c.create(`/api/v1/namespaces/${HYDRA_NAMESPACE}/serviceaccounts/${sa}/token`, {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: { boundObjectRef: { apiVersion: "v1", kind: "Node", name: node } },
        });
      await expectStatuses("installer", [
        ["token for hydra-node on n1", () => token("hydra-node", "n1"), 200],
        ["token for hydra-node on n2", () => token("hydra-node", "n2"), 403],
        ["token for hydra-daemon", () => token("hydra-daemon", "n1"), 403],
        ["list secrets", () => c.list(`/api/v1/namespaces/${HYDRA_NAMESPACE}/secrets`), 403],
        ["get a pod", () => c.get(`/api/v1/namespaces/${NS}/pods/mine`), 403],
      ]);
    });

    await t.step("the node identity: single reads and its own node's pod status", async () => {
      const c = await clientFor(nodeKubeconfig);
      clients.push(c);
      const annotate = (pod: string, ann: Record<string, string | null>) =>
        patchPodStatusAnnotations(c, NS, pod, ann);
      await expectStatuses("node", [
        ["get a pod", () => c.get(`/api/v1/namespaces/${NS}/pods/theirs`), 200],
        [
          "network-status of its node's pod",
          () => annotate("mine", { [NETWORK_STATUS]: "[]" }),
          200,
        ],
        [
          "result annotation of its node's pod",
          () => annotate("mine", { "hydra.clusternet.io.blue": "{}" }),
          200,
        ],
        [
          "network-status of another node's pod",
          () => annotate("theirs", { [NETWORK_STATUS]: "[]" }),
          403,
        ],
        ["another annotation", () => annotate("mine", { owner: "me" }), 403],
        [
          "a label",
          () =>
            c.patch(`/api/v1/namespaces/${NS}/pods/mine/status`, {
              metadata: { labels: { app: "x" } },
            }, "merge"),
          403,
        ],
        [
          "the pod's IPs",
          () =>
            c.patch(
              `/api/v1/namespaces/${NS}/pods/mine/status`,
              { status: { podIP: "10.0.0.9" } },
              "merge",
            ),
          403,
        ],
        [
          "the pod itself",
          () =>
            c.patch(
              `/api/v1/namespaces/${NS}/pods/mine`,
              { metadata: { labels: { x: "y" } } },
              "merge",
            ),
          403,
        ],
        ["list pods", () => c.list(`/api/v1/pods`), 403],
        [
          "get a NAD",
          () =>
            c.get(`/apis/k8s.cni.cncf.io/v1/namespaces/${NS}/network-attachment-definitions/blue`),
          200,
        ],
        ["list NADs", () => c.list(`/apis/k8s.cni.cncf.io/v1/network-attachment-definitions`), 403],
        ["get its Node", () => c.get(`/api/v1/nodes/n1`), 200],
        [
          "change its Node",
          () => c.patch(`/api/v1/nodes/n1`, { metadata: { labels: { x: "y" } } }, "merge"),
          403,
        ],
        [
          "create an Event",
          () =>
            c.create(`/api/v1/namespaces/${NS}/events`, {
              metadata: { name: "e1" },
              involvedObject: { kind: "Pod", name: "mine", namespace: NS },
              reason: "R",
              message: "m",
              type: "Normal",
            }),
          200,
        ],
        ["list secrets", () => c.list(`/api/v1/namespaces/${HYDRA_NAMESPACE}/secrets`), 403],
        [
          "get a configmap",
          () => c.get(`/api/v1/namespaces/${NS}/configmaps/kube-root-ca.crt`),
          403,
        ],
        [
          "mint a token",
          () =>
            c.create(`/api/v1/namespaces/${HYDRA_NAMESPACE}/serviceaccounts/hydra-node/token`, {
              apiVersion: "authentication.k8s.io/v1",
              kind: "TokenRequest",
              spec: {},
            }),
          403,
        ],
      ]);
    });

    await t.step(
      "the NRI plugin's identity: the node role and watches of pods, NADs and nodes, confined to its node",
      async () => {
        const c = await clientFor(
          await tokenKubeconfig(cp, await daemonSetPodToken(cp, "hydra-nri", "n1"), "nri"),
        );
        clients.push(c);
        await expectStatuses("nri", [
          ["get a pod", () => c.get(`/api/v1/namespaces/${NS}/pods/mine`), 200],
          [
            "status of its node's pod",
            () => patchPodStatusAnnotations(c, NS, "mine", { [NETWORK_STATUS]: "[]" }),
            200,
          ],
          [
            "status of another node's pod",
            () => patchPodStatusAnnotations(c, NS, "theirs", { [NETWORK_STATUS]: "[]" }),
            403,
          ],
          // The watch caches its attaches read (RBAC cannot narrow pods and the Node to its node).
          ["list pods", () => c.list(`/api/v1/pods?fieldSelector=spec.nodeName%3Dn1`), 200],
          [
            "list NADs",
            () => c.list(`/apis/k8s.cni.cncf.io/v1/network-attachment-definitions`),
            200,
          ],
          ["list its Node", () => c.list(`/api/v1/nodes?fieldSelector=metadata.name%3Dn1`), 200],
          ["list secrets", () => c.list(`/api/v1/secrets`), 403],
          [
            "patch a Node",
            () => c.patch(`/api/v1/nodes/n1`, { metadata: { labels: { x: "y" } } }, "merge"),
            403,
          ],
        ]);
      },
    );

    await t.step("the router's identity: Node objects and Events about them", async () => {
      const c = await clientFor(
        await tokenKubeconfig(cp, await daemonSetPodToken(cp, "hydra-router", "n1"), "router"),
      );
      clients.push(c);
      const event = (ns: string) =>
        c.create(`/api/v1/namespaces/${ns}/events`, {
          metadata: { name: `r-${ns}` },
          involvedObject: { kind: "Node", name: "n2" },
          reason: "R",
          message: "m",
          type: "Warning",
        });
      await expectStatuses("router", [
        ["list nodes", () => c.list(`/api/v1/nodes`), 200],
        ["an Event on a Node (namespace default)", () => event("default"), 200],
        ["an Event elsewhere", () => event(NS), 403],
        [
          "change a Node",
          () => c.patch(`/api/v1/nodes/n2`, { metadata: { annotations: { x: "y" } } }, "merge"),
          403,
        ],
        ["get a pod", () => c.get(`/api/v1/namespaces/${NS}/pods/mine`), 403],
        ["list secrets", () => c.list(`/api/v1/secrets`), 403],
      ]);
    });

    await t.step(
      "the real node daemon syncs its caches and writes its node's pod status, not another's",
      async () => {
        const kubeconfig = await tokenKubeconfig(
          cp,
          await daemonSetPodToken(cp, "hydra-daemon", "n1"),
          "daemon",
        );
        const c = await clientFor(kubeconfig);
        clients.push(c);
        await expectStatuses("daemon", [
          ["list secrets", () => c.list(`/api/v1/secrets`), 403],
          ["delete a pod", () => c.delete(`/api/v1/namespaces/${NS}/pods/mine`), 403],
          [
            "status of another node's pod",
            () => patchPodStatusAnnotations(c, NS, "theirs", { [NETWORK_STATUS]: "[]" }),
            403,
          ],
        ]);
        const socket = join(node.root, "daemon.sock");
        const proc = spawnDaemon("hydra daemon", hydraLauncher, {
          args: [
            "daemon",
            "--kubeconfig",
            kubeconfig,
            "--node-name",
            "n1",
            "--socket",
            socket,
            "--listen",
            "",
            "--spool-dir",
            join(node.root, "spool"),
          ],
          logPath: join(node.root, "daemon.log"),
        });
        try {
          const call = async (req: Record<string, unknown>) => {
            const conn = await connectNodeDaemon(socket);
            if (!conn) throw new Error("the daemon does not answer");
            try {
              return await conn.call(req as never, 5_000);
            } finally {
              conn.close();
            }
          };
          await waitUntil(
            "the daemon's caches synced",
            async () => {
              try {
                const res = await call({ op: "ping" });
                return res.ok && (res.body as { synced: boolean }).synced;
              } catch {
                return false;
              }
            },
            30_000,
            proc,
          );
          const pod = await cp.api.must("GET", `/api/v1/namespaces/${NS}/pods/mine`) as {
            metadata: { uid: string };
          };
          const res = await call({
            op: "report",
            pod: { namespace: NS, name: "mine", uid: pod.metadata.uid, infraContainerId: "sb" },
            reports: [{
              name: "from-daemon",
              isDefault: false,
              result: {
                cniVersion: "1.1.0",
                interfaces: [{ name: "net1" }],
                ips: [{ address: "10.1.2.3/24", interface: 0 }],
              },
            }],
          });
          assert.ok(res.ok, JSON.stringify(res));
          await waitUntil(
            "the status written",
            async () => {
              const p = await cp.api.must("GET", `/api/v1/namespaces/${NS}/pods/mine`) as {
                metadata: { annotations: Record<string, string> };
              };
              return p.metadata.annotations[NETWORK_STATUS]?.includes("from-daemon") ?? false;
            },
            20_000,
            proc,
          );
        } finally {
          await stopProcessGroup(proc.pid);
        }
      },
    );
  } finally {
    for (const c of clients) c.close();
    await removeNode(node);
    await cp.stop();
  }
});
