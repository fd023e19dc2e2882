/**
 * The scheduler and controller manager of the test control plane, end to end with the test
 * kubelet: workloads are reconciled into Pods that the scheduler places on the kubelet's node and
 * that run there; a StatefulSet re-creates its Pod under the same name; the garbage collector and
 * the namespace controller remove what is deleted; DRA's API is served and the scheduler
 * allocates a device from a ResourceSlice to a Pod's claim.
 *
 * Needs root and the built peers including kubelet and kube-control (`deno task peers`).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type ControlPlane, startControlPlane } from "./cluster.ts";
import { startContainerd } from "./containerd.ts";
import { startKubelet } from "./kubelet.ts";
import { referencePluginDir, versions } from "./peers.ts";
import { poll } from "./process.ts";
import { uniqueName, withTempDir } from "../helpers/netns.ts";

interface Pod {
  metadata: {
    name: string;
    uid: string;
    ownerReferences?: { kind: string; name: string }[];
    deletionTimestamp?: string;
  };
  spec: { nodeName?: string };
  status?: { phase?: string };
}

/** Polls `read` until `done` holds for its result; fails with the last result after 90 s. */
async function waitFor<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
): Promise<T> {
  let last: T | undefined;
  const ok = await poll(async () => done(last = await read()), 90_000, 250);
  assert.ok(ok, `timed out waiting for ${what}; last seen: ${JSON.stringify(last)}`);
  return last as T;
}

async function listPods(cp: ControlPlane, ns: string, selector: string): Promise<Pod[]> {
  const path = `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`;
  return ((await cp.api.must("GET", path)) as { items: Pod[] }).items;
}

function podTemplate(app: string) {
  return {
    metadata: { labels: { app } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{ name: "main", image: versions().PAUSE_IMAGE, imagePullPolicy: "Never" }],
    },
  };
}

const running = (node: string) => (pods: Pod[]) =>
  pods.every((p) => p.spec.nodeName === node && p.status?.phase === "Running");

/** A bridge network for the node, so containerd reports the network ready. */
async function writeNodeNetwork(dir: string): Promise<string> {
  const confDir = join(dir, "net.d");
  await Deno.mkdir(confDir);
  const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
  await Deno.writeTextFile(
    join(confDir, "10-node.conflist"),
    JSON.stringify({
      cniVersion: "1.1.0",
      name: uniqueName("net"),
      plugins: [{
        type: "bridge",
        bridge: uniqueName("hybr"),
        isGateway: true,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: `10.247.${octet}.0/24` }]],
          dataDir: join(dir, "ipam"),
        },
      }],
    }),
  );
  return confDir;
}

Deno.test("scheduler and controller manager run workloads on the test kubelet", async (t) => {
  await withTempDir(async (tmp) => {
    const confDir = await writeNodeNetwork(tmp);
    const cp = await startControlPlane({ scheduler: true, controllerManager: true });
    try {
      const ctd = await startContainerd({
        cniConfDir: confDir,
        cniBinDirs: [referencePluginDir()],
      });
      try {
        const kubelet = await startKubelet(cp, ctd);
        try {
          const node = kubelet.nodeName;
          const ns = uniqueName("ns");
          await t.step("a new namespace gets its ServiceAccount and CA ConfigMap", async () => {
            // Plain create: the controllers, not the test handle, fill it.
            await cp.api.must("POST", "/api/v1/namespaces", { metadata: { name: ns } });
            for (const path of ["serviceaccounts/default", "configmaps/kube-root-ca.crt"]) {
              await waitFor(
                path,
                () => cp.api.request("GET", `/api/v1/namespaces/${ns}/${path}`),
                (res) => res.status === 200,
              );
            }
          });

          await t.step(
            "a Deployment's 2 replicas are scheduled onto the node and run",
            async () => {
              await cp.api.must("POST", `/apis/apps/v1/namespaces/${ns}/deployments`, {
                metadata: { name: "web" },
                spec: {
                  replicas: 2,
                  selector: { matchLabels: { app: "web" } },
                  template: podTemplate("web"),
                },
              });
              const pods = await waitFor(
                "2 running web pods",
                () => listPods(cp, ns, "app=web"),
                (p) => p.length === 2 && running(node)(p),
              );
              assert.ok(pods.every((p) => p.metadata.ownerReferences?.[0]?.kind === "ReplicaSet"));
              await waitFor(
                "deployment readyReplicas 2",
                () => cp.api.must("GET", `/apis/apps/v1/namespaces/${ns}/deployments/web`),
                (d) => (d as { status?: { readyReplicas?: number } }).status?.readyReplicas === 2,
              );
            },
          );

          await t.step("deleting the Deployment collects its ReplicaSet and Pods", async () => {
            await cp.api.must("DELETE", `/apis/apps/v1/namespaces/${ns}/deployments/web`);
            await waitFor(
              "web pods gone",
              () => listPods(cp, ns, "app=web"),
              (p) => p.length === 0,
            );
            await waitFor(
              "replicasets gone",
              () => cp.api.must("GET", `/apis/apps/v1/namespaces/${ns}/replicasets`),
              (list) => (list as { items: unknown[] }).items.length === 0,
            );
          });

          await t.step("a StatefulSet re-creates its deleted Pod under the same name", async () => {
            await cp.api.must("POST", `/apis/apps/v1/namespaces/${ns}/statefulsets`, {
              metadata: { name: "db" },
              spec: {
                serviceName: "db",
                replicas: 1,
                selector: { matchLabels: { app: "db" } },
                template: podTemplate("db"),
              },
            });
            const [first] = await waitFor(
              "db-0 running",
              () => listPods(cp, ns, "app=db"),
              (p) => p.length === 1 && running(node)(p),
            );
            assert.equal(first.metadata.name, "db-0");
            await cp.api.must("DELETE", `/api/v1/namespaces/${ns}/pods/db-0`);
            const [second] = await waitFor(
              "db-0 re-created and running",
              () => listPods(cp, ns, "app=db"),
              (p) =>
                p.length === 1 && p[0].metadata.uid !== first.metadata.uid &&
                !p[0].metadata.deletionTimestamp && running(node)(p),
            );
            assert.equal(second.metadata.name, "db-0");
          });

          await t.step("the scheduler allocates a DRA device to a Pod's claim", async () => {
            await draAllocation(cp, ns, node);
          });

          await t.step("deleting the namespace removes everything in it", async () => {
            await cp.api.must("DELETE", `/api/v1/namespaces/${ns}`);
            await waitFor(
              `namespace ${ns} gone`,
              () => cp.api.request("GET", `/api/v1/namespaces/${ns}`),
              (res) => res.status === 404,
            );
          });
        } finally {
          await kubelet.stop();
        }
      } finally {
        await ctd.stop();
      }
    } finally {
      await cp.stop();
    }
  });
});

/**
 * resource.k8s.io/v1 is served; a Pod whose claim asks for a device of a class is scheduled onto
 * the node whose ResourceSlice offers one, and the claim records the allocation and the Pod. No
 * DRA driver runs on the kubelet, so the Pod then waits; it is force-deleted.
 */
async function draAllocation(cp: ControlPlane, ns: string, node: string): Promise<void> {
  const group = (await cp.api.must("GET", "/apis/resource.k8s.io/v1")) as {
    resources: { name: string }[];
  };
  const served = group.resources.map((r) => r.name);
  for (
    const name of ["deviceclasses", "resourceclaims", "resourceclaimtemplates", "resourceslices"]
  ) {
    assert.ok(served.includes(name), `resource.k8s.io/v1 does not serve ${name}: ${served}`);
  }
  const driver = `${uniqueName("drv")}.test.hydra.invalid`;
  const dra = "/apis/resource.k8s.io/v1";
  await cp.api.must("POST", `${dra}/deviceclasses`, {
    metadata: { name: driver },
    spec: { selectors: [{ cel: { expression: `device.driver == "${driver}"` } }] },
  });
  await cp.api.must("POST", `${dra}/resourceslices`, {
    metadata: { name: `${node}-${driver}` },
    spec: {
      driver,
      nodeName: node,
      pool: { name: node, generation: 1, resourceSliceCount: 1 },
      devices: [{ name: "nic0", attributes: { ifName: { string: "eth9" } } }],
    },
  });
  await cp.api.must("POST", `${dra}/namespaces/${ns}/resourceclaims`, {
    metadata: { name: "nic" },
    spec: { devices: { requests: [{ name: "nic", exactly: { deviceClassName: driver } }] } },
  });
  await cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, {
    metadata: { name: "claimer" },
    spec: {
      resourceClaims: [{ name: "nic", resourceClaimName: "nic" }],
      containers: [{
        name: "main",
        image: versions().PAUSE_IMAGE,
        imagePullPolicy: "Never",
        resources: { claims: [{ name: "nic" }] },
      }],
    },
  });
  try {
    const pod = await waitFor(
      "claimer scheduled",
      () => cp.api.must("GET", `/api/v1/namespaces/${ns}/pods/claimer`) as Promise<Pod>,
      (p) => p.spec.nodeName !== undefined,
    );
    assert.equal(pod.spec.nodeName, node);
    const claim = (await cp.api.must("GET", `${dra}/namespaces/${ns}/resourceclaims/nic`)) as {
      status?: {
        allocation?: { devices?: { results?: { driver: string; pool: string; device: string }[] } };
        reservedFor?: { name: string }[];
      };
    };
    assert.deepEqual(
      claim.status?.allocation?.devices?.results?.map((r) => [r.driver, r.pool, r.device]),
      [[driver, node, "nic0"]],
    );
    assert.deepEqual(claim.status?.reservedFor?.map((r) => r.name), ["claimer"]);
  } finally {
    await cp.api.request("DELETE", `/api/v1/namespaces/${ns}/pods/claimer?gracePeriodSeconds=0`);
    await cp.api.request("DELETE", `${dra}/resourceslices/${node}-${driver}`);
    await cp.api.request("DELETE", `${dra}/deviceclasses/${driver}`);
  }
}
