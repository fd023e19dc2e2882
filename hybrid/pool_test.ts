import assert from "node:assert/strict";
import { hybridDelegate, placePod } from "../hybridnet/attach.ts";
import { HybridConfigError, KIND_ANNOTATION, parseHybridNetwork } from "../hybridnet/model.ts";
import { hybridNode } from "../hybridnet/node.ts";
import { planHybrid } from "./plan.ts";
import { withPoolBlocks } from "./pool.ts";
import {
  GATEWAY_IFNAME,
  gatewayConf,
  gatewaySandbox,
  isNodeGateway,
} from "../hybridnet/gateway.ts";
import { gatewayOwner, isReservedSandbox } from "../ipam/pool/node_owned.ts";
import { node, RAW_NET } from "./testdata.ts";

const raw = structuredClone(RAW_NET) as { subnets: Record<string, unknown>[] };
raw.subnets[1] = { ...raw.subnets[1], pool: true, blockSize: undefined };
const NET = parseHybridNetwork(raw);

/** Both subnets on the pool. */
const rawBoth = structuredClone(raw);
rawBoth.subnets[0] = { ...rawBoth.subnets[0], pool: true, blockSize: undefined };
const BOTH = parseHybridNetwork(rawBoth);

Deno.test("pool: a pool-backed subnet of either kind has /28 blocks and no other", () => {
  assert.equal(NET.subnets[1].blockSize, 28);
  assert.deepEqual(BOTH.subnets.map((s) => [s.kind, s.pool, s.blockSize]), [
    ["overlay", true, 28],
    ["underlay", true, 28],
  ]);
  const bad = structuredClone(RAW_NET) as { subnets: Record<string, unknown>[] };
  bad.subnets[0] = { ...bad.subnets[0], pool: true, blockSize: 24 };
  assert.throws(() => parseHybridNetwork(bad), /the pool's blocks are \/28/);
  bad.subnets[0] = { ...bad.subnets[0], blockSize: undefined, pool: "yes" };
  assert.throws(() => parseHybridNetwork(bad), HybridConfigError);
  bad.subnets[0].pool = false;
  bad.subnets[1] = { ...bad.subnets[1], pool: true, blockSize: 26 };
  assert.throws(() => parseHybridNetwork(bad), /the pool's blocks are \/28/);
  // Overlaps are refused as for any subnet.
  const lap = structuredClone(rawBoth);
  lap.subnets.push({ name: "lab", kind: "overlay", cidr: "10.250.128.0/24", pool: true });
  assert.throws(() => parseHybridNetwork(lap), /overlaps subnet ov/);
});

Deno.test("pool: an overlay pod's IPAM is hydra-pool over the whole subnet, its node's address as gateway", () => {
  const n1 = hybridNode(node(1, ""), BOTH, []);
  const place = placePod(BOTH, n1, {});
  assert.equal(place.subnet.name, "ov");
  assert.equal(place.block, undefined);
  assert.throws(
    () => hybridDelegate(BOTH, place, "192.168.50.11", { plugins: "hydra", defaultRoute: false }),
    /needs its node's gateway/,
  );
  const conf = hybridDelegate(BOTH, place, "192.168.50.11", {
    plugins: "hydra",
    defaultRoute: false,
    extraRoutes: ["203.0.113.0/24"],
    poolOptions: { nodeName: "node1" },
    nodeGateway: "10.250.0.33",
  });
  assert.equal(conf.type, "hydra-bridge");
  assert.equal(conf.bridge, "hyo-hy");
  assert.equal(conf.isGateway, true);
  // Its own subnet is on its link; the other subnets and extra routes through its node.
  assert.deepEqual(conf.ipam, {
    type: "hydra-pool",
    network_name: "ov",
    range: "10.250.0.0/16",
    gateway: "10.250.0.33",
    routes: [{ dst: "192.168.50.0/24" }, { dst: "203.0.113.0/24" }],
    nodeName: "node1",
  });
  const gw = gatewayConf(BOTH, place.subnet, { nodeName: "node1" });
  assert.deepEqual(gw.ipam, {
    type: "hydra-pool",
    network_name: "ov",
    range: "10.250.0.0/16",
    routes: [],
    nodeName: "node1",
  });
  assert.equal(gatewaySandbox("node1"), "hydra-hybrid-gateway-node1");
  assert.ok(isNodeGateway({ containerID: "hydra-hybrid-gateway-node1", interface: "gateway" }));
  assert.ok(!isNodeGateway({ containerID: "hydra-hybrid-gateway-node1", interface: "eth0" }));
  assert.ok(
    !isNodeGateway({ containerID: "hydra-hybrid-gateway-x", interface: "gateway", pod: "a/b" }),
  );
});

Deno.test("pool: the reclaim controller and hydra-pool know the gateway the plugin records", () => {
  // What hydra-pool records for the plugin's gateway ADD (no pod; the node that ran it).
  const recorded = {
    source: "pod" as const,
    containerID: gatewaySandbox("node1"),
    interface: GATEWAY_IFNAME,
    node: "node1",
  };
  assert.equal(gatewayOwner(recorded), "node1");
  assert.ok(isReservedSandbox(gatewaySandbox("node1")));
});

Deno.test("pool: overlay blocks claimed in the pool are routed to their node through the overlay", () => {
  const nodes = withPoolBlocks([node(1, ""), node(2, "")], BOTH, [
    { network: "ov", cidr: "10.250.0.16/28", node: "node1" },
    { network: "ov", cidr: "10.250.0.32/28", node: "node2" },
    { network: "fab", cidr: "192.168.50.192/28", node: "node1" },
  ]);
  const d = planHybrid(BOTH, nodes, "node2");
  assert.deepEqual([...d.routes], [
    ["192.168.50.11/32", "192.168.50.11"],
    ["10.250.0.16/28", "192.168.50.11"],
    ["192.168.50.192/28", "192.168.50.11"],
  ]);
  assert.deepEqual(d.localBlocks.overlay, ["10.250.0.32/28"]);
  assert.deepEqual(d.rules, [{ src: "10.250.0.0/16" }, { dst: "10.250.0.0/16" }]);
});

Deno.test("pool: blocks claimed in the pool join their node's blocks; others are left out", () => {
  const nodes = withPoolBlocks([node(1, "10.250.1.0/24"), node(2, "10.250.2.0/24")], NET, [
    { network: "fab", cidr: "192.168.50.192/28", node: "node1" },
    { network: "fab", cidr: "192.168.50.208/28", node: "" }, // its node is gone
    { network: "other", cidr: "192.168.50.224/28", node: "node2" }, // another network's
    { network: "fab", cidr: "10.9.0.0/28", node: "node2" }, // outside the subnet
  ]);
  assert.equal(
    nodes[0].annotations["hydra.clusternet.io/hy.cidr"],
    "10.250.1.0/24,192.168.50.192/28",
  );
  assert.equal(nodes[1].annotations["hydra.clusternet.io/hy.cidr"], "10.250.2.0/24");
  const d = planHybrid(NET, nodes, "node2");
  assert.equal(d.routes.get("192.168.50.192/28"), "192.168.50.11");
});

Deno.test("pool: an underlay pod's IPAM is hydra-pool over the subnet, with the overlay via its node", () => {
  const n1 = hybridNode(node(1, "10.250.1.0/24"), NET, []);
  const place = placePod(NET, n1, { [KIND_ANNOTATION]: "underlay" });
  assert.equal(place.block, undefined, "hydra-pool picks the block");
  const conf = hybridDelegate(NET, place, "192.168.50.11", {
    plugins: "hydra",
    defaultRoute: true,
    poolOptions: { nodeName: "node1" },
  });
  assert.deepEqual(conf.ipam, {
    type: "hydra-pool",
    network_name: "fab",
    range: "192.168.50.0/24",
    range_start: "192.168.50.64",
    range_end: "192.168.50.191",
    gateway: "192.168.50.1",
    routes: [{ dst: "0.0.0.0/0", gw: "192.168.50.1" }, {
      dst: "10.250.0.0/16",
      gw: "192.168.50.11",
    }],
    nodeName: "node1",
  });
});
