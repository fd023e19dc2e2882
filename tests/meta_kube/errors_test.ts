/**
 * Kubernetes mode when things go wrong, against a real kube-apiserver:
 * missing and invalid NetworkAttachmentDefinitions (a clear CNI error
 * naming the NAD and the field, and a Warning Event on the pod), a pod
 * replaced under its name, a pod already gone, an API server that is
 * stopped or frozen (CNI code 11 within the configured budget, nothing left
 * in the pod's namespace), a status write that is refused (the network
 * stays, the report is spooled and later written by the node daemon), and
 * the daemon serving ADDs from its caches while the API server is frozen.
 *
 * Needs root and the built peers (etcd, kube-apiserver, reference plugins).
 */

import assert from "node:assert/strict";
import { links } from "../meta/harness.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { jsonKubeconfig, NODE_API_ADDRESS } from "./api_access.ts";
import { eventually, type KubeEnv, networkStatus, startKubeEnv } from "./harness.ts";
import type { KubeEvent, Pod } from "../../kube/objects.ts";

async function onlyLoopback(netns: TestNetns): Promise<boolean> {
  return [...(await links(netns)).keys()].every((n) => n === "lo");
}

async function eventsOf(env: KubeEnv, pod: Pod): Promise<KubeEvent[]> {
  const list = await env.cp.api.must(
    "GET",
    `/api/v1/namespaces/${pod.metadata.namespace}/events`,
  ) as { items: KubeEvent[] };
  return list.items.filter((e) => e.involvedObject.name === pod.metadata.name);
}

async function spooled(env: KubeEnv): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${env.cacheDir}/reports`)) out.push(e.name);
  } catch {
    // no spool yet
  }
  return out;
}

/** An account that may read pods and networks but not write pod status. */
async function readOnlyKubeconfig(env: KubeEnv): Promise<string> {
  const name = `readonly-${env.ns}`;
  await env.cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name },
    rules: [
      { apiGroups: [""], resources: ["pods", "nodes"], verbs: ["get", "list", "watch"] },
      { apiGroups: [""], resources: ["events"], verbs: ["create"] },
      {
        apiGroups: ["k8s.cni.cncf.io"],
        resources: ["network-attachment-definitions"],
        verbs: ["get", "list", "watch"],
      },
    ],
  });
  await env.cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name },
    subjects: [{ kind: "ServiceAccount", name: "readonly", namespace: env.ns }],
  });
  const yaml = await env.cp.mintServiceAccountKubeconfig(env.ns, "readonly");
  const port = new URL(env.cp.server).port;
  return await jsonKubeconfig(
    yaml,
    `${env.dir}/readonly.kubeconfig`,
    `https://${NODE_API_ADDRESS}:${port}`,
  );
}

Deno.test("Kubernetes mode: failures are clear, bounded and leave nothing behind", async (t) => {
  const env = await startKubeEnv();
  try {
    const cluster = env.bridgeNet("cluster", { isGateway: true });
    await Deno.writeTextFile(`${env.confDir}/10-cluster.conf`, JSON.stringify(cluster.conf));
    const blue = env.bridgeNet("blue-net");
    await env.nad(env.ns, "blue", blue.conf);
    await env.nad(env.ns, "broken", "{not json");
    await env.nad(env.ns, "typeless", JSON.stringify({ cniVersion: "1.0.0", name: "x" }));
    const apiTimeout = 2;
    const direct = env.metaConf({ clusterNetwork: "cluster", apiTimeout });

    for (const mode of ["direct", "daemon"] as const) {
      const daemon = mode === "daemon" ? await env.startDaemon() : undefined;
      const conf = daemon ? { ...direct, daemonSocket: daemon.socket } : direct;
      const id = mode === "daemon" ? "d" : "a";

      await t.step(
        `${mode}: a missing NAD is named, with an Event, and nothing is attached`,
        async () => {
          const pod = await env.createPod(`missing-${id}`, {
            "k8s.v1.cni.cncf.io/networks": "blue,nope",
          });
          const netns = await env.podNetns();
          const out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
          assert.equal(out.code, 1);
          assert.equal(out.json!.code, 7);
          assert.match(
            out.json!.msg as string,
            new RegExp(
              `cannot find a network-attachment-definition \\(nope\\) in namespace \\(${env.ns}\\)`,
            ),
          );
          assert.ok(await onlyLoopback(netns));
          await eventually(
            "a NoNetworkFound Event",
            async () =>
              (await eventsOf(env, pod)).some((e) =>
                e.type === "Warning" && e.reason === "NoNetworkFound" && e.message.includes("nope")
              ),
          );
        },
      );

      await t.step(`${mode}: an invalid NAD names the NAD and its field`, async () => {
        const pod = await env.createPod(`broken-${id}`, {
          "k8s.v1.cni.cncf.io/networks": "broken",
        });
        const netns = await env.podNetns();
        const out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
        assert.equal(out.code, 1);
        assert.equal(out.json!.code, 6);
        assert.match(
          out.json!.msg as string,
          new RegExp(`NetworkAttachmentDefinition ${env.ns}/broken spec\\.config`),
        );
        assert.ok(await onlyLoopback(netns));
        await eventually(
          "an InvalidNetwork Event",
          async () => (await eventsOf(env, pod)).some((e) => e.reason === "InvalidNetwork"),
        );

        const pod2 = await env.createPod(`typeless-${id}`, {
          "k8s.v1.cni.cncf.io/networks": "typeless",
        });
        const out2 = await env.cni("ADD", conf, { netns, pod: pod2.metadata });
        assert.equal(out2.json!.code, 7, out2.stdout);
        assert.match(out2.json!.msg as string, new RegExp(`${env.ns}/typeless`));
        assert.match(out2.json!.msg as string, /type/);
      });

      await t.step(`${mode}: a replaced pod (other UID) is refused on ADD`, async () => {
        const pod = await env.createPod(`replaced-${id}`);
        const netns = await env.podNetns();
        const out = await env.cni("ADD", conf, {
          netns,
          pod: { ...pod.metadata, uid: "00000000-0000-0000-0000-000000000000" },
        });
        assert.equal(out.code, 1);
        assert.match(out.json!.msg as string, /was replaced/);
        assert.ok(await onlyLoopback(netns));
      });

      await t.step(`${mode}: a pod already gone gets Multus's empty result`, async () => {
        const netns = await env.podNetns();
        const out = await env.cni("ADD", conf, {
          netns,
          pod: { namespace: env.ns, name: `never-${id}`, uid: crypto.randomUUID() },
        });
        assert.equal(out.code, 0, out.stdout);
        assert.deepEqual(out.json!.ips, [{ address: "0.0.0.0/0", gateway: "0.0.0.0" }]);
        assert.ok(await onlyLoopback(netns));
        const del = await env.cni("DEL", conf, {
          netns,
          pod: { namespace: env.ns, name: `never-${id}`, uid: "x" },
        });
        assert.equal(del.code, 0, del.stdout);
      });

      if (daemon) assert.equal(await daemon.stop(), 0);
    }

    await t.step(
      "direct: a refused status write keeps the network and spools the report",
      async () => {
        const readonly = await readOnlyKubeconfig(env);
        const conf = { ...direct, kubeconfig: readonly };
        const pod = await env.createPod("refused", { "k8s.v1.cni.cncf.io/networks": "blue" });
        const netns = await env.podNetns();
        const out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
        assert.equal(out.code, 0, out.stdout);
        assert.deepEqual([...(await links(netns)).keys()].sort(), ["eth0", "lo", "net1"]);
        assert.equal(networkStatus(await env.getPod(env.ns, "refused")).length, 0);
        assert.equal((await spooled(env)).length, 1);
        const log = await Deno.readTextFile(`${env.dir}/hydra.log`);
        assert.match(log, /writing the pod's network status failed/);

        // The node daemon picks the spooled report up and writes it.
        const daemon = await env.startDaemon();
        await eventually(
          "the spooled report written",
          async () => networkStatus(await env.getPod(env.ns, "refused")).length === 2,
        );
        await eventually("the spool emptied", async () => (await spooled(env)).length === 0);
        assert.equal(await daemon.stop(), 0);
        assert.equal((await env.cni("DEL", conf, { netns, pod: pod.metadata })).code, 0);
      },
    );

    await t.step("daemon: with the API server frozen, ADD is served from the caches", async () => {
      const daemon = await env.startDaemon();
      const conf = { ...direct, daemonSocket: daemon.socket };
      const pod = await env.createPod("frozen-d", { "k8s.v1.cni.cncf.io/networks": "blue" });
      await eventually("the pod in the daemon's cache", async () => {
        const m = await daemon.metrics();
        return /hydra_daemon_cached_objects\{kind="pods"\} [1-9]/.test(m);
      });
      const netns = await env.podNetns();
      env.freezeApi(true);
      let out;
      try {
        out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
      } finally {
        env.freezeApi(false);
      }
      assert.equal(out.code, 0, out.stdout);
      assert.deepEqual([...(await links(netns)).keys()].sort(), ["eth0", "lo", "net1"]);
      await eventually(
        "network-status written once the API answers",
        async () => networkStatus(await env.getPod(env.ns, "frozen-d")).length === 2,
        30_000,
      );
      assert.equal((await env.cni("DEL", conf, { netns, pod: pod.metadata })).code, 0);
      assert.equal(await daemon.stop(), 0);
    });

    await t.step("direct: a frozen API server gives code 11 within the budget", async () => {
      const pod = await env.createPod("frozen-a", { "k8s.v1.cni.cncf.io/networks": "blue" });
      const netns = await env.podNetns();
      env.freezeApi(true);
      let out;
      try {
        out = await env.cni("ADD", direct, { netns, pod: pod.metadata });
      } finally {
        env.freezeApi(false);
      }
      assert.equal(out.json!.code, 11, out.stdout);
      // Bounded: the budget is 2 s; a hang would be the runtime's timeout (minutes).
      assert.ok(out.ms < apiTimeout * 1000 + 15_000, `took ${out.ms} ms`);
      assert.ok(await onlyLoopback(netns));
    });

    await t.step("API server stopped: code 11 within the budget, nothing attached", async () => {
      const pod = await env.createPod("stopped", { "k8s.v1.cni.cncf.io/networks": "blue" });
      const daemon = await env.startDaemon();
      await env.stopApi();
      try {
        const netns = await env.podNetns();
        const out = await env.cni("ADD", direct, { netns, pod: pod.metadata });
        assert.equal(out.json!.code, 11, out.stdout);
        assert.match(out.json!.msg as string, /get pod/);
        assert.ok(out.ms < apiTimeout * 1000 + 15_000, `took ${out.ms} ms`);
        assert.ok(await onlyLoopback(netns));
        // Through the daemon: a pod it has never seen (another node's) cannot be read either.
        const viaDaemon = { ...direct, daemonSocket: daemon.socket };
        const out2 = await env.cni("ADD", viaDaemon, {
          netns,
          pod: { namespace: env.ns, name: "elsewhere", uid: crypto.randomUUID() },
        });
        assert.equal(out2.json!.code, 11, out2.stdout);
        assert.ok(out2.ms < apiTimeout * 1000 + 15_000, `took ${out2.ms} ms`);
        assert.ok(await onlyLoopback(netns));
      } finally {
        await env.startApi();
      }
      assert.equal(await daemon.stop(), 0);
    });
  } finally {
    await env.close();
  }
});
