/**
 * Watches and informers against a real kube-apiserver: events in order,
 * a relist after 410 Gone (etcd compacted under a watch), reconnects after
 * the API server restarts, and bounded, transient failures while it is
 * frozen or gone.
 *
 * Needs the built peers (etcd, kube-apiserver, kubectl).
 */

import assert from "node:assert/strict";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { poll, stopProcessGroup } from "../infra/process.ts";
import { uniqueName } from "../helpers/netns.ts";
import { createKubeClient, type KubeClient } from "../../kube/client.ts";
import { isTransient, kubeCniError, KubeTransportError } from "../../kube/errors.ts";
import { type Informer, type InformerEventType, startInformer } from "../../kube/informer.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import { fetchPod } from "../../kube/networks.ts";
import { getPod, podPath } from "../../kube/objects.ts";
import { watch, type WatchEvent, type WatchHandle } from "../../kube/watch.ts";
import { ErrorCode } from "../../cni/errors.ts";
import { CniError } from "../../cni/errors.ts";
import { freeze, podManifest, restartApiserver } from "./helpers.ts";

interface ConfigMap {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
  };
  data?: Record<string, string>;
}

function configMap(
  ns: string,
  name: string,
  labels: Record<string, string> = {},
  data = {},
): ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: ns, labels }, data };
}

const cmPath = (ns: string, name?: string) =>
  `/api/v1/namespaces/${ns}/configmaps${name ? `/${name}` : ""}`;

async function eventually(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  if (!await poll(check, timeoutMs)) throw new Error(`timed out waiting for ${what}`);
}

/** Starts a control plane and an admin client; stops both after `fn`. */
async function withCluster(
  fn: (cp: ControlPlane, admin: KubeClient, ns: string) => Promise<void>,
  apiserverArgs: string[] = [],
): Promise<void> {
  const cp = await startControlPlane({ apiserverArgs });
  let admin: KubeClient | undefined;
  try {
    const ns = uniqueName("kw");
    await cp.createNamespace(ns);
    admin = createKubeClient(await loadKubeconfig(cp.kubeconfigPath), { timeoutMs: 5_000 });
    await fn(cp, admin, ns);
  } finally {
    admin?.close();
    await cp.stop();
  }
}

Deno.test("watch delivers ADDED, MODIFIED, DELETED in order; the informer's cache follows", async () => {
  await withCluster(async (_cp, admin, ns) => {
    const seen: string[] = [];
    const list = await admin.list(cmPath(ns));
    const handle: WatchHandle = watch<ConfigMap>(
      admin,
      cmPath(ns),
      { resourceVersion: list.metadata.resourceVersion, labelSelector: "w=1" },
      (ev: WatchEvent<ConfigMap>) => {
        seen.push(`${ev.type} ${ev.object.metadata.name}`);
      },
    );
    // Two objects and a page size of one: the first list takes two pages.
    await admin.create(cmPath(ns), configMap(ns, "before", { group: "a" }));
    await admin.create(cmPath(ns), configMap(ns, "kept", { group: "a" }));
    const changes: string[] = [];
    const informer: Informer<ConfigMap> = startInformer<ConfigMap>(admin, cmPath(ns), {
      labelSelector: "group=a",
      pageSize: 1,
      onEvent: (type: InformerEventType, obj, old) =>
        changes.push(`${type} ${obj.metadata.name}${old ? ` (was ${old.data?.v ?? "-"})` : ""}`),
    });
    try {
      await admin.create(cmPath(ns), configMap(ns, "w1", { w: "1" }));
      await admin.patch(cmPath(ns, "w1"), { data: { k: "v" } });
      await admin.delete(cmPath(ns, "w1"));
      await eventually("watch events", () => seen.length >= 3);
      assert.deepEqual(seen, ["ADDED w1", "MODIFIED w1", "DELETED w1"]);

      await informer.synced;
      assert.ok(informer.hasSynced());
      assert.equal(informer.get(ns, "before")?.metadata.name, "before");
      await admin.create(cmPath(ns), configMap(ns, "second", { group: "a" }));
      await admin.create(cmPath(ns), configMap(ns, "other", { group: "b" }));
      await eventually("second in cache", () => informer.get(ns, "second") !== undefined);
      await admin.patch(cmPath(ns, "second"), { data: { v: "2" } });
      await eventually("update in cache", () => informer.get(ns, "second")?.data?.v === "2");
      await admin.delete(cmPath(ns, "before"));
      await eventually("delete in cache", () => informer.get(ns, "before") === undefined);
      assert.deepEqual(informer.list().map((c) => c.metadata.name).sort(), ["kept", "second"]);
      assert.deepEqual(changes, [
        "ADDED before",
        "ADDED kept",
        "ADDED second",
        "MODIFIED second (was -)",
        "DELETED before (was -)",
      ]);
      assert.equal(informer.lists, 1);
    } finally {
      await handle.stop();
      await informer.stop();
    }
  });
});

/** The current etcd revision and a compaction up to it, over etcd's JSON gateway. */
async function compactEtcd(endpoint: string): Promise<number> {
  const range = await fetch(`${endpoint}/v3/kv/range`, {
    method: "POST",
    body: JSON.stringify({ key: btoa("/") }),
  });
  const rev = Number((await range.json() as { header: { revision: string } }).header.revision);
  const res = await fetch(`${endpoint}/v3/kv/compaction`, {
    method: "POST",
    body: JSON.stringify({ revision: rev, physical: true }),
  });
  await res.body?.cancel();
  assert.ok(res.ok, `compaction failed: ${res.status}`);
  return rev;
}

Deno.test("informer lists again after 410 Gone and keeps following", async () => {
  // Without the watch cache, watches resume from etcd, so compacting etcd makes the
  // informer's next resume fail with 410 Gone.
  await withCluster(async (cp, admin, ns) => {
    await admin.create(cmPath(ns), configMap(ns, "one", { group: "a" }));
    const errors: unknown[] = [];
    const informer = startInformer<ConfigMap>(admin, cmPath(ns), {
      labelSelector: "group=a",
      watchTimeoutSeconds: 1,
      backoff: { initialMs: 50, maxMs: 500 },
      onError: (e) => errors.push(e),
    });
    try {
      await informer.synced;
      assert.equal(informer.lists, 1);
      // Changes the informer does not see move etcd's revision past its resourceVersion.
      for (let i = 0; i < 3; i++) {
        await admin.create(cmPath(ns), configMap(ns, `b${i}`, { group: "b" }));
      }
      await compactEtcd(cp.etcdEndpoint);
      await eventually("a relist", () => informer.lists >= 2);
      await admin.create(cmPath(ns), configMap(ns, "two", { group: "a" }));
      await eventually("two in cache", () => informer.get(ns, "two") !== undefined);
      assert.deepEqual(informer.list().map((c) => c.metadata.name).sort(), ["one", "two"]);
    } finally {
      await informer.stop();
    }
  }, ["--watch-cache=false"]);
});

Deno.test("watches and informers reconnect after the API server restarts", async () => {
  await withCluster(async (cp, admin, ns) => {
    await admin.create(cmPath(ns), configMap(ns, "one"));
    const errors: unknown[] = [];
    const informer = startInformer<ConfigMap>(admin, cmPath(ns), {
      backoff: { initialMs: 100, maxMs: 1_000 },
      onError: (e) => errors.push(e),
    });
    const podEvents: string[] = [];
    const podWatch = watch<{ metadata: { name: string } }>(
      admin,
      podPath(ns),
      {
        resourceVersion: (await admin.list(podPath(ns))).metadata.resourceVersion,
        backoff: { initialMs: 100, maxMs: 1_000 },
      },
      (ev) => {
        podEvents.push(`${ev.type} ${ev.object.metadata.name}`);
      },
    );
    let restarted;
    try {
      await informer.synced;
      restarted = await restartApiserver(cp, cp.record.apiserverPid);
      await admin.create(cmPath(ns), configMap(ns, "after-restart"));
      await admin.create(podPath(ns), podManifest(ns, "after-restart"));
      await eventually(
        "configmap after restart",
        () => informer.get(ns, "after-restart") !== undefined,
      );
      await eventually("pod after restart", () => podEvents.includes("ADDED after-restart"));
      // The cache stayed readable throughout and nothing was dropped.
      assert.ok(informer.get(ns, "one"));
      assert.ok(errors.length > 0, "the outage was reported through onError");
    } finally {
      await podWatch.stop();
      await informer.stop();
      if (restarted) {
        await stopProcessGroup(restarted.pid);
        await restarted.status;
      }
    }
  });
});

Deno.test("API server frozen or gone: transient errors within the deadline, CNI code 11", async () => {
  await withCluster(async (cp, admin, ns) => {
    await admin.create(podPath(ns), podManifest(ns, "p"));
    const pod = await getPod(admin, ns, "p");
    const podArgs = { namespace: ns, name: "p", uid: pod.metadata.uid!, infraContainerId: "sb" };
    const informer = startInformer<ConfigMap>(admin, cmPath(ns), {
      watchTimeoutSeconds: 2,
      watchGraceMs: 500,
      backoff: { initialMs: 100, maxMs: 500 },
    });
    const quick = createKubeClient(await loadKubeconfig(cp.kubeconfigPath), { timeoutMs: 400 });
    try {
      await informer.synced;
      assert.equal((await fetchPod(quick, podArgs, { deadlineMs: 1_000 }))?.metadata.name, "p");

      const cached = informer.list().map((c) => c.metadata.name).sort();
      freeze(cp.record.apiserverPid, true);
      try {
        const err = await getPod(quick, ns, "p").catch((e) => e);
        assert.ok(err instanceof KubeTransportError, String(err));
        assert.equal(err.failure, "timeout");
        assert.ok(isTransient(err));
        assert.equal(kubeCniError(err, "get pod").code, ErrorCode.TryAgainLater);
        await assert.rejects(
          fetchPod(quick, podArgs, { deadlineMs: 1_500 }),
          (e: unknown) => e instanceof CniError && e.code === ErrorCode.TryAgainLater,
        );
        // The informer's cache stays readable while the server is away.
        assert.deepEqual(informer.list().map((c) => c.metadata.name).sort(), cached);
      } finally {
        freeze(cp.record.apiserverPid, false);
      }
      await admin.create(cmPath(ns), configMap(ns, "thawed"));
      await eventually(
        "informer resumes after the freeze",
        () => informer.get(ns, "thawed") !== undefined,
      );

      await informer.stop();
      // Gone for good: connections are refused, again transient.
      await cp.stop();
      const err = await getPod(quick, ns, "p").catch((e) => e);
      assert.ok(err instanceof KubeTransportError, String(err));
      assert.equal(err.failure, "connection");
      await assert.rejects(
        fetchPod(quick, podArgs, { deadlineMs: 800 }),
        (e: unknown) => e instanceof CniError && e.code === ErrorCode.TryAgainLater,
      );
    } finally {
      quick.close();
      await informer.stop();
    }
  });
});
