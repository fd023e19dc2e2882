import assert from "node:assert/strict";
import type { NetworkAttachmentDefinition, Node, Pod } from "./objects.ts";
import { slimNad, slimNode, slimPod } from "./node_cache.ts";

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

Deno.test("a cached pod keeps what readers use and nothing else", () => {
  const full: Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web-1",
      namespace: "ns1",
      uid: "u-1",
      resourceVersion: "42",
      labels: { app: "web" },
      ownerReferences: [{ kind: "ReplicaSet", name: "web-5d8f" }],
      managedFields: [{ manager: "kubelet" }],
      annotations: {
        "k8s.v1.cni.cncf.io/networks": "blue,green",
        "prometheus.io/scrape": "true",
        [LAST_APPLIED]: '{"spec":{}}',
      },
    },
    spec: { nodeName: "node-a", containers: [{ name: "app", image: "app:1" }] },
    status: { phase: "Running", podIP: "10.0.0.3" },
  };
  assert.deepEqual(slimPod(full), {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: "web-1",
      namespace: "ns1",
      uid: "u-1",
      resourceVersion: "42",
      annotations: { "k8s.v1.cni.cncf.io/networks": "blue,green", "prometheus.io/scrape": "true" },
    },
    spec: { nodeName: "node-a" },
  });
  // The object handed in is left alone (it may be someone else's).
  assert.ok(full.status);
  assert.ok(full.metadata.annotations![LAST_APPLIED]);
});

Deno.test("a host-network pod stays marked as one; a pod without annotations gets none", () => {
  const pod: Pod = {
    metadata: { name: "h", namespace: "kube-system", uid: "u", resourceVersion: "1" },
    spec: { nodeName: "n", hostNetwork: true, containers: [] },
  };
  assert.deepEqual(slimPod(pod).spec, { nodeName: "n", hostNetwork: true });
  assert.equal("annotations" in slimPod(pod).metadata, false);
});

Deno.test("a cached NAD keeps its config and resource annotation", () => {
  const nad: NetworkAttachmentDefinition = {
    apiVersion: "k8s.cni.cncf.io/v1",
    kind: "NetworkAttachmentDefinition",
    metadata: {
      name: "blue",
      namespace: "ns1",
      uid: "u",
      resourceVersion: "7",
      managedFields: [{}],
      annotations: { "k8s.v1.cni.cncf.io/resourceName": "example.com/nic", [LAST_APPLIED]: "{}" },
    },
    spec: { config: '{"cniVersion":"1.0.0","type":"bridge"}' },
  };
  assert.deepEqual(slimNad(nad), {
    apiVersion: "k8s.cni.cncf.io/v1",
    kind: "NetworkAttachmentDefinition",
    metadata: {
      name: "blue",
      namespace: "ns1",
      uid: "u",
      resourceVersion: "7",
      annotations: { "k8s.v1.cni.cncf.io/resourceName": "example.com/nic" },
    },
    spec: { config: '{"cniVersion":"1.0.0","type":"bridge"}' },
  });
});

Deno.test("the cached Node keeps its spec and annotations, not its status", () => {
  const node: Node = {
    metadata: { name: "n", resourceVersion: "9", annotations: { a: "b" }, managedFields: [] },
    spec: { podCIDRs: ["10.0.0.0/24"] },
    status: { addresses: [{ type: "InternalIP", address: "192.0.2.1" }] },
  };
  assert.deepEqual(slimNode(node), {
    apiVersion: undefined,
    kind: undefined,
    metadata: {
      name: "n",
      namespace: undefined,
      uid: undefined,
      resourceVersion: "9",
      annotations: { a: "b" },
    },
    spec: { podCIDRs: ["10.0.0.0/24"] },
  });
});
