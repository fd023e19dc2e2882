import assert from "node:assert/strict";
import { vxlanMac } from "../route/desired.ts";
import { firewallText } from "./firewall.ts";
import { planHybrid } from "./plan.ts";
import { NET, node, RAW_NET } from "./testdata.ts";
import { parseHybridNetwork } from "../hybridnet/model.ts";

Deno.test("plan: every remote block and node address through the vxlan device, rules for the overlay", () => {
  const d = planHybrid(NET, [node(1), node(2), node(3)], "node1");
  assert.equal(d.local, "192.168.50.11");
  assert.equal(d.mac, vxlanMac(7000, "192.168.50.11"));
  assert.deepEqual(Object.fromEntries(d.routes), {
    "192.168.50.12/32": "192.168.50.12",
    "10.250.2.0/24": "192.168.50.12",
    "192.168.50.80/28": "192.168.50.12",
    "192.168.50.13/32": "192.168.50.13",
    "10.250.3.0/24": "192.168.50.13",
    "192.168.50.96/28": "192.168.50.13",
  });
  assert.deepEqual(d.rules, [{ src: "10.250.0.0/16" }, { dst: "10.250.0.0/16" }]);
  assert.equal(d.fdb.get(vxlanMac(7000, "192.168.50.13")), "192.168.50.13");
  assert.equal(d.neighs.get("192.168.50.12"), vxlanMac(7000, "192.168.50.12"));
  assert.deepEqual(d.localBlocks, { overlay: ["10.250.1.0/24"], underlay: ["192.168.50.64/28"] });
  assert.equal(d.nodesSynced, 2);
  assert.deepEqual(d.problems, []);
});

Deno.test("plan: bad blocks, overlaps and missing addresses leave out only what is wrong", () => {
  const noAddr = { ...node(4), internalIPs: [] };
  const d = planHybrid(
    NET,
    [
      node(1),
      node(2, "10.250.1.0/24,10.250.2.0/24,172.16.0.0/24,10.250.0.0/16"),
      node(3, "10.250.2.0/24"),
      noAddr,
    ],
    "node1",
  );
  assert.deepEqual([...d.routes.keys()].sort(), [
    "10.250.2.0/24",
    "192.168.50.12/32",
    "192.168.50.13/32",
  ]);
  assert.equal(d.routes.get("10.250.2.0/24"), "192.168.50.12", "node2 (first by name) keeps it");
  assert.deepEqual(d.problems.map((p) => `${p.kind}:${p.node}`).sort(), [
    "bad_block:node2",
    "bad_block:node2",
    "no_address:node4",
    "overlapping_block:node2",
    "overlapping_block:node3",
  ]);
});

Deno.test("plan: without its own fabric address a node plans nothing", () => {
  const d = planHybrid(NET, [{ ...node(1), internalIPs: [] }, node(2)], "node1");
  assert.equal(d.local, undefined);
  assert.equal(d.routes.size, 0);
});

Deno.test("firewall: masquerade overlay leaving by the uplink, no new connection from the fabric into it", () => {
  const text = firewallText(planHybrid(NET, [node(1), node(2)], "node1"));
  assert.match(text, /add table ip hydra_hybrid_hy\ndelete table ip hydra_hybrid_hy\n/);
  assert.match(
    text,
    /ip saddr 10\.250\.0\.0\/16 oifname != "hy-hy" ip daddr != \{ 10\.250\.0\.0\/16, 192\.168\.50\.64\/28 \} masquerade/,
  );
  assert.match(
    text,
    /iifname "br-fab" ip daddr 10\.250\.0\.0\/16 ct state new ip saddr != 192\.168\.50\.64\/28 drop/,
  );
});

Deno.test("firewall: macvlan underlay: the shim is a way in from the fabric and answers ARP only from the node's blocks", () => {
  const net = parseHybridNetwork({ ...RAW_NET, uplink: "eth1", underlayAttachment: "macvlan" });
  const text = firewallText(planHybrid(net, [node(1), node(2)], "node1"));
  assert.match(
    text,
    /iifname \{ "eth1", "hym-hy" \} ip daddr 10\.250\.0\.0\/16 ct state new ip saddr != 192\.168\.50\.64\/28 drop/,
  );
  assert.match(text, /iifname "hym-hy" arp saddr ip != 192\.168\.50\.64\/28 drop/);
  // On a bridge the arp table is only ever removed.
  const bridge = firewallText(planHybrid(NET, [node(1)], "node1"));
  assert.match(bridge, /add table arp hydra_hybrid_hy\ndelete table arp hydra_hybrid_hy\n/);
  assert.doesNotMatch(bridge, /table arp hydra_hybrid_hy \{/);
});
