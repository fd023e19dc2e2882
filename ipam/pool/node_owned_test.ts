/** Which allocations count as a node's own gateway, and which sandbox ids no pod may use. */

import assert from "node:assert/strict";
import { gatewayOwner, isReservedSandbox, nodeGatewaySandbox } from "./node_owned.ts";

const gw = {
  containerID: "hydra-hybrid-gateway-node1",
  interface: "gateway",
  node: "node1",
  source: "pod" as const,
};

Deno.test("gatewayOwner: a node's gateway names its node; nothing a pod records does", () => {
  assert.equal(nodeGatewaySandbox("node1"), gw.containerID);
  assert.equal(gatewayOwner(gw), "node1");
  assert.equal(gatewayOwner({ ...gw, source: undefined }), "node1");
  // A pod named like a node's sandbox, or any pod at all, is never a node's gateway.
  assert.equal(gatewayOwner({ ...gw, pod: "ns/hydra-hybrid-gateway-node1" }), undefined);
  assert.equal(gatewayOwner({ ...gw, podUID: "u1" }), undefined);
  assert.equal(gatewayOwner({ ...gw, statefulSet: "web" }), undefined);
  assert.equal(gatewayOwner({ ...gw, source: "whereabouts" }), undefined);
  assert.equal(gatewayOwner({ ...gw, interface: "eth0" }), undefined);
  // Allocated by another node than the one the sandbox names, or by none: not a gateway.
  assert.equal(gatewayOwner({ ...gw, node: "node2" }), undefined);
  assert.equal(gatewayOwner({ ...gw, node: undefined }), undefined);
  assert.equal(gatewayOwner({ ...gw, containerID: "hydra-hybrid-gateway-" }), undefined);
});

Deno.test("isReservedSandbox: the gateway prefix only", () => {
  assert.ok(isReservedSandbox("hydra-hybrid-gateway-x"));
  assert.ok(!isReservedSandbox("0123abcd"));
  assert.ok(!isReservedSandbox("hydra-hybrid-gatewa"));
});
