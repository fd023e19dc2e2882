/**
 * kube/ client, objects and status writing against a real kube-apiserver,
 * authenticated as a node agent's ServiceAccount (token) under RBAC, and as
 * the admin (client certificate).
 *
 * Needs the built peers (etcd, kube-apiserver, kubectl).
 */

import assert from "node:assert/strict";
import { startControlPlane } from "../infra/cluster.ts";
import { uniqueName } from "../helpers/netns.ts";
import { createKubeClient, type KubeClient } from "../../kube/client.ts";
import { isConflict, isNotFound, KubeApiError } from "../../kube/errors.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import {
  createEvent,
  getNetworkAttachmentDefinition,
  getPod,
  type KubeEvent,
  nadPath,
  patchPodStatusAnnotations,
  podPath,
  PodUidMismatchError,
  updatePodStatusAnnotations,
} from "../../kube/objects.ts";
import {
  mergeNetworkStatus,
  NETWORK_STATUS_ANNOTATION,
  networkStatusEntries,
} from "../../kube/status.ts";
import { nadManifest, nodeAgentKubeconfig, podManifest } from "./helpers.ts";

Deno.test("client against a real API server: pods, status annotations, NADs, events, RBAC", async (t) => {
  const cp = await startControlPlane();
  const clients: KubeClient[] = [];
  try {
    const ns = uniqueName("kc");
    await cp.createNamespace(ns);
    const admin = createKubeClient(await loadKubeconfig(cp.kubeconfigPath));
    clients.push(admin);
    const agentConn = await loadKubeconfig(await nodeAgentKubeconfig(cp, ns));
    assert.ok(agentConn.tokenSource, "the ServiceAccount kubeconfig carries a token");
    const agent = createKubeClient(agentConn, { timeoutMs: 5_000 });
    clients.push(agent);

    const pod = await admin.create<{ metadata: { uid: string; name: string } }>(
      podPath(ns),
      podManifest(ns, "web", { "k8s.v1.cni.cncf.io/networks": "net-a", "team": "blue" }),
    );

    await t.step("get a pod; a missing one is a 404 KubeApiError", async () => {
      const got = await getPod(agent, ns, "web");
      assert.equal(got.metadata.uid, pod.metadata.uid);
      assert.equal(got.metadata.annotations?.team, "blue");
      const err = await getPod(agent, ns, "nope").catch((e) => e);
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.status, 404);
      assert.equal(err.reason, "NotFound");
      assert.ok(isNotFound(err));
      assert.match(
        err.message,
        /GET \/api\/v1\/namespaces\/.*\/pods\/nope: 404 NotFound: pods "nope" not found/,
      );
    });

    await t.step("RBAC applies: the agent may not delete pods (403)", async () => {
      const err = await agent.delete(podPath(ns, "web")).catch((e) => e);
      assert.ok(err instanceof KubeApiError);
      assert.equal(err.status, 403);
      assert.equal(err.reason, "Forbidden");
    });

    await t.step(
      "merge-patch annotations through pods/status; others untouched; null removes",
      async () => {
        await patchPodStatusAnnotations(agent, ns, "web", {
          "hydra.clusternet.io.x/y": "{}",
          gone: null,
        });
        let got = await getPod(admin, ns, "web");
        assert.equal(got.metadata.annotations?.["hydra.clusternet.io.x/y"], "{}");
        assert.equal(got.metadata.annotations?.team, "blue");
        await patchPodStatusAnnotations(agent, ns, "web", { "hydra.clusternet.io.x/y": null });
        got = await getPod(admin, ns, "web");
        assert.equal(got.metadata.annotations?.["hydra.clusternet.io.x/y"], undefined);
        // A stale resourceVersion is refused with 409.
        const err = await patchPodStatusAnnotations(agent, ns, "web", { a: "b" }, {
          resourceVersion: "1",
        })
          .catch((e) => e);
        assert.ok(isConflict(err), String(err));
      },
    );

    await t.step(
      "read-modify-write merges network-status with another writer's entry",
      async () => {
        // The default network's CNI wrote its entry first.
        const theirs = JSON.stringify([{
          name: "k8s-pod-network",
          interface: "eth0",
          ips: ["10.0.0.5"],
          default: true,
          dns: {},
        }]);
        await patchPodStatusAnnotations(admin, ns, "web", { [NETWORK_STATUS_ANNOTATION]: theirs });
        const ours = networkStatusEntries(
          {
            cniVersion: "1.1.0",
            interfaces: [{ name: "net1", mac: "02:00:00:00:00:01", sandbox: "/run/netns/x" }],
            ips: [{ address: "192.168.5.7/24", interface: 0 }],
          },
          `${ns}/net-a`,
          false,
        );
        const updated = await updatePodStatusAnnotations(agent, ns, "web", (p) => ({
          [NETWORK_STATUS_ANNOTATION]: mergeNetworkStatus(
            p.metadata.annotations?.[NETWORK_STATUS_ANNOTATION],
            ours,
          ),
        }), { uid: pod.metadata.uid });
        const status = JSON.parse(updated.metadata.annotations![NETWORK_STATUS_ANNOTATION]);
        assert.deepEqual(status.map((e: { name: string }) => e.name), [
          "k8s-pod-network",
          `${ns}/net-a`,
        ]);
        assert.deepEqual(status[1].ips, ["192.168.5.7"]);
      },
    );

    await t.step("concurrent writers both land: conflicts are retried", async () => {
      const add = (name: string) =>
        updatePodStatusAnnotations(agent, ns, "web", (p) => ({
          [NETWORK_STATUS_ANNOTATION]: mergeNetworkStatus(
            p.metadata.annotations?.[NETWORK_STATUS_ANNOTATION],
            [{ name, interface: name.slice(-4), dns: {} }],
          ),
        }), { attempts: 10 });
      await Promise.all([add(`${ns}/net-b`), add(`${ns}/net-c`), add(`${ns}/net-d`)]);
      const got = await getPod(admin, ns, "web");
      const names = JSON.parse(got.metadata.annotations![NETWORK_STATUS_ANNOTATION]).map((
        e: { name: string },
      ) => e.name);
      for (
        const n of ["k8s-pod-network", `${ns}/net-a`, `${ns}/net-b`, `${ns}/net-c`, `${ns}/net-d`]
      ) {
        assert.ok(names.includes(n), `${n} missing from ${names}`);
      }
    });

    await t.step("a replaced pod (other UID) is refused before anything is written", async () => {
      const before = await getPod(admin, ns, "web");
      await assert.rejects(
        updatePodStatusAnnotations(agent, ns, "web", () => ({ x: "y" }), { uid: "00000000-dead" }),
        (e: unknown) => e instanceof PodUidMismatchError && e.actual === pod.metadata.uid,
      );
      const after = await getPod(admin, ns, "web");
      assert.equal(after.metadata.resourceVersion, before.metadata.resourceVersion);
    });

    await t.step(
      "NetworkAttachmentDefinitions: get with its config; 404 when missing",
      async () => {
        const config = JSON.stringify({ cniVersion: "1.0.0", type: "macvlan", master: "eth0" });
        await admin.create(nadPath(ns), nadManifest(ns, "net-a", config));
        const nad = await getNetworkAttachmentDefinition(agent, ns, "net-a");
        assert.equal(nad.spec?.config, config);
        assert.equal(nad.kind, "NetworkAttachmentDefinition");
        assert.ok(
          isNotFound(await getNetworkAttachmentDefinition(agent, ns, "nope").catch((e) => e)),
        );
      },
    );

    await t.step("events on the pod: type, reason, message, involved object", async () => {
      const got = await getPod(agent, ns, "web");
      await createEvent(agent, got, {
        type: "Warning",
        reason: "NoNetworkFound",
        message: "cannot find x",
        host: "node-1",
      });
      await createEvent(agent, got, {
        type: "Normal",
        reason: "AddedInterface",
        message: "m".repeat(5000),
      });
      const list = await admin.list<KubeEvent>(`/api/v1/namespaces/${ns}/events`, {
        fieldSelector: `involvedObject.name=web,involvedObject.uid=${pod.metadata.uid}`,
      });
      const byReason = new Map(list.items.map((e) => [e.reason, e]));
      const warn = byReason.get("NoNetworkFound");
      assert.ok(warn);
      assert.equal(warn.type, "Warning");
      assert.equal(warn.message, "cannot find x");
      assert.equal(warn.involvedObject.kind, "Pod");
      assert.equal(warn.source?.component, "hydra");
      assert.equal(warn.source?.host, "node-1");
      assert.equal(byReason.get("AddedInterface")?.message.length, 1024);
    });

    await t.step("list with a label selector", async () => {
      await admin.create(podPath(ns), {
        ...podManifest(ns, "labelled"),
        metadata: { name: "labelled", namespace: ns, labels: { app: "x" } },
      });
      const list = await agent.list<{ metadata: { name: string } }>(podPath(ns), {
        labelSelector: "app=x",
      });
      assert.deepEqual(list.items.map((p) => p.metadata.name), ["labelled"]);
      assert.ok(list.metadata.resourceVersion);
    });
  } finally {
    for (const c of clients) c.close();
    await cp.stop();
  }
});
