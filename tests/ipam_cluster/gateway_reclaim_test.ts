/**
 * `hydra ipam controller` and nodes' own gateway addresses (a pool-backed
 * hybrid overlay subnet), against a real kube-apiserver: hydra-pool
 * allocates each node's gateway as `hydra-hybrid` asks for it (sandbox
 * `hydra-hybrid-gateway-<node>`, interface `gateway`, no pod). Once a node
 * is deleted the controller frees its gateway and drops the block it
 * emptied; a live node's gateway stays, pods or none, through many scans;
 * a pod cannot claim a node's sandbox id.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { GATEWAY_IFNAME, gatewaySandbox } from "../../hybridnet/gateway.ts";
import { addr, eventually, metric, startPoolWorld, uniq } from "./harness.ts";

Deno.test("hydra ipam controller: a deleted node's gateway is freed with its block; a live node's stays", async () => {
  const w = await startPoolWorld();
  try {
    const net = w.network();
    const conf = (node: string) =>
      w.conf({ range: "10.52.0.0/24", network_name: net, nodeName: node });
    const [live, gone] = [uniq("gw-live-"), uniq("gw-gone-")];
    for (const name of [live, gone]) {
      await w.client.create("/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name },
      });
    }
    const gateway = async (node: string) => {
      const out = await w.exec("ADD", conf(node), {
        containerId: gatewaySandbox(node),
        ifName: GATEWAY_IFNAME,
      });
      assert.equal(out.code, 0, out.stdout);
      return addr(out.result?.ips?.[0]?.address ?? "");
    };
    const liveGw = await gateway(live);
    const goneGw = await gateway(gone);
    const held = await w.allocations(net);
    assert.deepEqual(
      held.map((a) => [a.ip, a.node, a.blockNode, a.pod]).sort(),
      [[liveGw, live, live, undefined], [goneGw, gone, gone, undefined]].sort(),
    );

    // A pod whose runtime claimed the live node's sandbox id is refused, and takes nothing.
    const hostile = await w.exec("ADD", conf(live), {
      containerId: gatewaySandbox(live),
      ifName: GATEWAY_IFNAME,
      pod: { namespace: w.ns, name: gatewaySandbox(live) },
    });
    assert.equal(hostile.code, 1);
    assert.equal(hostile.error?.code, 7, hostile.stdout);
    assert.match(hostile.error?.msg ?? "", /reserved for a node's own address/);
    const hostileDel = await w.exec("DEL", conf(live), {
      containerId: gatewaySandbox(live),
      ifName: GATEWAY_IFNAME,
      pod: { namespace: w.ns, name: "x" },
    });
    assert.equal(hostileDel.error?.code, 7, hostileDel.stdout);

    const controller = await w.startController(["--grace", "0", "--interval", "2"]);
    const scans = async () =>
      metric(await controller.metrics(), `hydra_ipam_scans_total{result="ok"}`);
    await eventually("the controller has scanned", async () => await scans() >= 1, 30_000);
    assert.equal((await w.allocations(net)).length, 2, "both nodes exist: both gateways stay");
    await w.client.delete(`/api/v1/nodes/${gone}`);
    await eventually(
      "the deleted node's gateway is freed and its emptied block deleted",
      async () => {
        const mine = (await w.blocks()).filter((b) => b.network === net);
        return mine.length === 1 && mine[0].node === live;
      },
      60_000,
    );
    assert.deepEqual((await w.allocations(net)).map((a) => a.ip), [liveGw]);
    const poolName = `${net}.10.52.0.0-24`;
    assert.equal(
      metric(
        await controller.metrics(),
        `hydra_ipam_reclaimed_total{pool="${poolName}",reason="node-gone"}`,
      ),
      1,
    );

    // The live node has no pod at all: its gateway stays through several more scans.
    const before = await scans();
    await eventually("three more scans", async () => await scans() >= before + 3, 60_000);
    const left = await w.allocations(net);
    assert.deepEqual(left.map((a) => [a.ip, a.node, a.blockNode]), [[liveGw, live, live]]);
    assert.equal(await gateway(live), liveGw, "the node's next ADD gets the same address back");
    const log = await Deno.readTextFile(controller.logPath);
    assert.match(log, new RegExp(`address reclaimed.*${goneGw.replaceAll(".", "\\.")}.*node-gone`));
  } finally {
    await w.close();
  }
});
