/**
 * A hybrid underlay subnet on hydra's cluster-wide IPAM: the real
 * `hydra-pool` (exec'd as a runtime's bridge plugin would) gives an
 * underlay pod its fabric address against a real kube-apiserver, claiming
 * an AddressBlock for the pod's node; the hybrid router reads that block
 * from the API and carries it through the overlay, so an overlay pod on
 * another node reaches the pod through the vxlan device.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { cidrContains, closeHandle, openHandle } from "../../netlink/mod.ts";
import { hybridDelegate, placePod } from "../../hybridnet/attach.ts";
import { KIND_ANNOTATION, parseHybridNetwork } from "../../hybridnet/model.ts";
import { hybridNode } from "../../hybridnet/node.ts";
import { listPoolBlocks, withPoolBlocks } from "../../hybrid/pool.ts";
import { syncHybrid } from "../../hybrid/sync.ts";
import { startPoolWorld } from "../ipam_cluster/harness.ts";
import {
  addPod,
  createHybridWorld,
  destroyHybridWorld,
  HYBRID_YAML,
  nodeInfos,
  pings,
  txPackets,
} from "./world.ts";

Deno.test({
  name:
    "hybrid + hydra-pool: an underlay pod's pool address is routed through the overlay to its node",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const pw = await startPoolWorld();
    const hw = await createHybridWorld(2).catch(async (err) => {
      await pw.close();
      throw err;
    });
    try {
      const raw = (parseYaml(HYBRID_YAML) as { networks: Record<string, unknown>[] }).networks[0];
      const subnetName = pw.network("fab");
      raw.subnets = [
        (raw.subnets as unknown[])[0],
        {
          name: subnetName,
          kind: "underlay",
          cidr: "192.168.50.0/24",
          gateway: "192.168.50.1",
          start: "192.168.50.192",
          end: "192.168.50.254",
          pool: true,
        },
      ];
      const net = parseHybridNetwork(raw);
      const [n1, n2] = hw.nodes;

      // The attachment a runtime would run on node1, its IPAM exec'd.
      const place = placePod(net, hybridNode(nodeInfos(hw)[0], net, []), {
        [KIND_ANNOTATION]: "underlay",
      });
      assert.equal(place.subnet.name, subnetName);
      const conf = hybridDelegate(net, place, n1.address, {
        plugins: "hydra",
        defaultRoute: true,
        poolOptions: { kubeconfig: pw.kubeconfig, daemonSocket: "", nodeName: n1.name },
      });
      const podObj = await pw.createPod("ul-pool", { node: n1.name });
      const add = await pw.exec("ADD", conf, {
        containerId: "ul-pool-sandbox",
        pod: { namespace: pw.ns, name: "ul-pool", uid: podObj.metadata.uid },
      });
      assert.equal(add.code, 0, add.stdout);
      const ip = add.result!.ips![0];
      assert.match(ip.address, /^192\.168\.50\.(19[2-9]|2\d\d)\/24$/);
      assert.equal(ip.gateway, "192.168.50.1");
      assert.deepEqual(add.result!.routes, [
        { dst: "0.0.0.0/0", gw: "192.168.50.1" },
        { dst: "10.250.0.0/16", gw: n1.address },
      ]);
      const address = ip.address.split("/")[0];
      const ulp = await addPod(n1, "underlay", address, "br-fab");

      // The router: node1's pool block comes from the API, beside the annotation blocks.
      const blocks = await listPoolBlocks(pw.client, net);
      assert.equal(blocks.length, 1);
      const block = blocks[0].cidr;
      assert.equal(blocks[0].node, n1.name);
      assert.ok(cidrContains(block, address), `${address} in node1's block ${block}`);
      const nodes = withPoolBlocks(nodeInfos(hw), net, blocks);
      for (const n of hw.nodes) {
        const h = openHandle({ netnsPath: n.ns.path });
        try {
          const s = syncHybrid(h, [net], nodes, n.name, n.ns.path);
          assert.equal(s.ok, true, JSON.stringify(s));
        } finally {
          closeHandle(h);
        }
      }
      const table = await n2.ns.ipJson<{ dst: string; gateway: string }[]>(
        "route",
        "show",
        "table",
        "210",
      );
      assert.ok(table.some((r) => r.dst === block && r.gateway === n1.address));

      // Overlay pod on node2 → the pool-addressed pod on node1: through vxlan, both ways.
      const ov2 = n2.pods.find((p) => p.kind === "overlay")!;
      const before = [await txPackets(n1.ns, "hy-hy"), await txPackets(n2.ns, "hy-hy")];
      assert.ok(await pings(ov2.ns, address), "overlay → pool-addressed underlay pod");
      assert.ok(await txPackets(n2.ns, "hy-hy") > before[1], "request through vxlan");
      assert.ok(await txPackets(n1.ns, "hy-hy") > before[0], "answer through vxlan");
      assert.ok(await pings(ulp.ns, "192.168.50.1"), "the pod on the fabric reaches its gateway");

      const del = await pw.exec("DEL", conf, {
        containerId: "ul-pool-sandbox",
        pod: { namespace: pw.ns, name: "ul-pool", uid: podObj.metadata.uid },
      });
      assert.equal(del.code, 0, del.stdout);
      assert.deepEqual((await pw.allocations(subnetName)).map((a) => a.ip), [], "DEL released it");
    } finally {
      await destroyHybridWorld(hw);
      await pw.close();
    }
  },
});
