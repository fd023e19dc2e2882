/**
 * Multus's device path in Kubernetes mode, against a real kube-apiserver: a
 * NetworkAttachmentDefinition annotated `k8s.v1.cni.cncf.io/resourceName`
 * gets one of the device IDs the kubelet gave the pod for that resource, in
 * every plugin of its conf (`deviceID`, `pciBusID`) and as the runtimeConfig
 * `deviceID`; two networks on one resource take distinct IDs in order; a
 * kubelet that cannot be asked is a "try again later" error naming its
 * socket. The device IDs come from a stand-in for the kubelet here; the
 * real kubelet and a device plugin are in tests/dra/resource_name_test.ts.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { startControlPlane } from "../infra/cluster.ts";
import { uniqueName } from "../helpers/netns.ts";
import { createKubeClient } from "../../kube/client.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import { type KubeModeConfig, resolveAttachments } from "../../kube/networks.ts";
import { getPod, nadPath, type Pod, podPath } from "../../kube/objects.ts";
import { CniError, ErrorCode } from "../../cni/errors.ts";
import { nadManifest, podManifest } from "./helpers.ts";

Deno.test("a NAD's resourceName gives its delegate the pod's device ID, as with Multus", async () => {
  const cp = await startControlPlane();
  const admin = createKubeClient(await loadKubeconfig(cp.kubeconfigPath));
  try {
    const ns = uniqueName("rn");
    await cp.createNamespace(ns);
    const sriov = (name: string, resource?: string) => {
      const m = nadManifest(
        ns,
        name,
        JSON.stringify({
          cniVersion: "1.0.0",
          name,
          plugins: [{ type: "host-device" }, { type: "tuning" }],
        }),
      );
      if (resource) {
        (m.metadata as Record<string, unknown>).annotations = {
          "k8s.v1.cni.cncf.io/resourceName": resource,
        };
      }
      return m;
    };
    await admin.create(nadPath(ns), sriov("vf-a", "example.com/vf"));
    await admin.create(nadPath(ns), sriov("vf-b", "example.com/vf"));
    await admin.create(nadPath(ns), sriov("plain"));
    await admin.create(
      podPath(ns),
      podManifest(ns, "p", { "k8s.v1.cni.cncf.io/networks": "vf-a,plain,vf-b" }),
    );
    const pod: Pod = await getPod(admin, ns, "p");
    const conf: KubeModeConfig = { clusterNetwork: "", skipDefaultNetwork: true };
    const asked: string[] = [];
    const resolve = (podResources?: (n: string, p: string) => Promise<Map<string, string[]>>) =>
      resolveAttachments(pod, { ...conf, podResourcesSocket: `/nonexistent/${ns}.sock` }, admin, {
        command: "ADD",
        ifName: "net1",
        containerId: "sandbox1",
        cniArgs: "",
        pod: { namespace: ns, name: "p", uid: pod.metadata.uid!, infraContainerId: "sandbox1" },
        podResources,
      });

    const atts = await resolve((n, p) => {
      asked.push(`${n}/${p}`);
      return Promise.resolve(new Map([["example.com/vf", ["0000:03:00.2", "0000:03:00.3"]]]));
    });
    assert.deepEqual(asked, [`${ns}/p`]);
    const ids = atts.map((a) => a.runtimeConfig.deviceID);
    assert.deepEqual(ids, ["0000:03:00.2", undefined, "0000:03:00.3"]);
    for (const plugin of atts[0].list.plugins as Record<string, unknown>[]) {
      assert.equal(plugin.deviceID, "0000:03:00.2");
      assert.equal(plugin.pciBusID, "0000:03:00.2");
    }
    assert.equal((atts[1].list.plugins[0] as Record<string, unknown>).deviceID, undefined);
    assert.match(String(atts[2].runtimeConfig.CNIDeviceInfoFile), /vf-b-sandbox1_net3$/);

    // A resource the kubelet gave no device for: nothing is set.
    const none = await resolve(() => Promise.resolve(new Map()));
    assert.deepEqual(none.map((a) => a.runtimeConfig.deviceID), [undefined, undefined, undefined]);

    // No kubelet to ask: "try again later", naming the socket.
    await assert.rejects(resolve(), (err: unknown) => {
      assert.ok(err instanceof CniError);
      assert.equal(err.code, ErrorCode.TryAgainLater);
      assert.match(err.message, new RegExp(`/nonexistent/${ns}\\.sock`));
      return true;
    });
  } finally {
    admin.close();
    await cp.stop();
  }
});
