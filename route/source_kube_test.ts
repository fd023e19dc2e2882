import assert from "node:assert/strict";
import type { Node } from "../kube/objects.ts";
import { nodeFromKube } from "./nodes.ts";
import { slimNode } from "./source_kube.ts";

Deno.test("slimNode keeps what the router reads and drops the rest", () => {
  const full: Node = {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: "n2",
      resourceVersion: "42",
      uid: "u",
      labels: { a: "b" },
      annotations: { "hydra.clusternet.io/blue.cidr": "10.245.2.0/24", "other": "x" },
      managedFields: [{ manager: "kubelet" }],
    },
    spec: { podCIDR: "10.244.2.0/24", podCIDRs: ["10.244.2.0/24", "fd00:2::/64"], taints: [] },
    status: {
      addresses: [{ type: "InternalIP", address: "192.168.1.12" }, {
        type: "Hostname",
        address: "n2",
      }],
      images: [{ names: ["img"], sizeBytes: 1 }],
      conditions: [{ type: "Ready", status: "True" }],
    },
  };
  const keys = new Set(["hydra.clusternet.io/blue.cidr", "hydra.clusternet.io/blue.address"]);
  const slim = slimNode(full, keys);
  assert.deepEqual(nodeFromKube(slim, keys), nodeFromKube(full, keys));
  assert.equal(slim.metadata.resourceVersion, "42");
  assert.deepEqual(slim.metadata.annotations, { "hydra.clusternet.io/blue.cidr": "10.245.2.0/24" });
  assert.equal(slim.metadata.managedFields, undefined);
  assert.equal(slim.status?.images, undefined);
  // Without a key list every annotation stays.
  assert.deepEqual(slimNode(full).metadata.annotations, full.metadata.annotations);
});
