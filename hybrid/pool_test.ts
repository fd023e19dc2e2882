import assert from "node:assert/strict";
import { hybridDelegate, placePod } from "../hybridnet/attach.ts";
import { HybridConfigError, KIND_ANNOTATION, parseHybridNetwork } from "../hybridnet/model.ts";
import { hybridNode } from "../hybridnet/node.ts";
import { planHybrid } from "./plan.ts";
import { withPoolBlocks } from "./pool.ts";
import { node, RAW_NET } from "./testdata.ts";

const raw = structuredClone(RAW_NET) as { subnets: Record<string, unknown>[] };
raw.subnets[1] = { ...raw.subnets[1], pool: true, blockSize: undefined };
const NET = parseHybridNetwork(raw);

Deno.test("pool: a pool-backed underlay subnet has /28 blocks; only underlay subnets may use it", () => {
  assert.equal(NET.subnets[1].blockSize, 28);
  const bad = structuredClone(RAW_NET) as { subnets: Record<string, unknown>[] };
  bad.subnets[0].pool = true;
  assert.throws(() => parseHybridNetwork(bad), HybridConfigError);
  bad.subnets[0].pool = false;
  bad.subnets[1] = { ...bad.subnets[1], pool: true, blockSize: 26 };
  assert.throws(() => parseHybridNetwork(bad), /the pool's blocks are \/28/);
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
