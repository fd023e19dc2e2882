import assert from "node:assert/strict";
import { blockRanges, hybridDelegate, PlacementError, placePod } from "./attach.ts";
import { KIND_ANNOTATION, parseHybridNetwork } from "./model.ts";
import { hybridNode } from "./node.ts";
import { NET, node, RAW_NET } from "../hybrid/testdata.ts";

const n1 = hybridNode(node(1), NET, []);

Deno.test("attach: the pod's annotation, else the attachment's request, else the default kind", () => {
  assert.equal(placePod(NET, n1).subnet.name, "ov");
  assert.equal(placePod(NET, n1, {}, "underlay").block, "192.168.50.64/28");
  assert.equal(placePod(NET, n1, { [KIND_ANNOTATION]: "fab" }, "overlay").subnet.kind, "underlay");
  assert.throws(() => placePod(NET, n1, { [KIND_ANNOTATION]: "vlan" }), PlacementError);
  const overlayOnly = { name: "node9", blocks: n1.blocks.filter((b) => b.kind === "overlay") };
  assert.throws(
    () => placePod(NET, overlayOnly, { [KIND_ANNOTATION]: "underlay" }),
    /node node9 has no block of kind underlay/,
  );
});

Deno.test("attach: a block's ranges leave out excludes and the gateway, within start..end", () => {
  const fab = { ...NET.subnets[1], excludes: ["192.168.50.68/30", "192.168.50.79/32"] };
  assert.deepEqual(blockRanges(fab, "192.168.50.64/28"), [
    { subnet: "192.168.50.0/24", rangeStart: "192.168.50.64", rangeEnd: "192.168.50.67" },
    { subnet: "192.168.50.0/24", rangeStart: "192.168.50.72", rangeEnd: "192.168.50.78" },
  ]);
  assert.deepEqual(
    blockRanges({ ...fab, start: "192.168.50.66" }, "192.168.50.64/28")[0].rangeStart,
    "192.168.50.66",
  );
  const withGw = { ...NET.subnets[1], gateway: "192.168.50.1", start: undefined };
  assert.deepEqual(blockRanges(withGw, "192.168.50.0/28"), [
    { subnet: "192.168.50.0/24", rangeStart: "192.168.50.2", rangeEnd: "192.168.50.15" },
  ]);
});

Deno.test("attach: underlay pods on the uplink with the fabric's gateway, the overlay via their node", () => {
  const conf = hybridDelegate(NET, placePod(NET, n1, {}, "underlay"), "192.168.50.11", {
    plugins: "hydra",
    defaultRoute: true,
  });
  assert.equal(conf.bridge, "br-fab");
  assert.equal(conf.isGateway, false);
  assert.deepEqual((conf.ipam as unknown as { routes: unknown }).routes, [
    { dst: "0.0.0.0/0", gw: "192.168.50.1" },
    { dst: "10.250.0.0/16", gw: "192.168.50.11" },
  ]);
  const ov = hybridDelegate(NET, placePod(NET, n1), "192.168.50.11", {
    plugins: "reference",
    defaultRoute: false,
    extraRoutes: ["203.0.113.0/24"],
  });
  assert.equal(ov.type, "bridge");
  assert.equal(ov.bridge, "hyo-hy");
  assert.deepEqual((ov.ipam as unknown as { ranges: unknown }).ranges, [[{
    subnet: "10.250.1.0/24",
    gateway: "10.250.1.1",
  }]]);
  assert.deepEqual((ov.ipam as unknown as { routes: { dst: string }[] }).routes.map((r) => r.dst), [
    "10.250.0.0/16",
    "192.168.50.0/24",
    "203.0.113.0/24",
  ]);
});

Deno.test("attach: macvlan underlay pods are macvlan devices in bridge mode on the uplink NIC", () => {
  const net = parseHybridNetwork({ ...RAW_NET, uplink: "eth1", underlayAttachment: "macvlan" });
  assert.equal(net.shim, "hym-hy");
  const conf = hybridDelegate(net, placePod(net, n1, {}, "underlay"), "192.168.50.11", {
    plugins: "hydra",
    defaultRoute: true,
  });
  assert.equal(conf.type, "hydra-macvlan");
  assert.equal(conf.master, "eth1");
  assert.equal(conf.mode, "bridge");
  assert.equal(conf.bridge, undefined);
  assert.deepEqual((conf.ipam as unknown as { routes: unknown }).routes, [
    { dst: "0.0.0.0/0", gw: "192.168.50.1" },
    { dst: "10.250.0.0/16", gw: "192.168.50.11" },
  ]);
  // Overlay pods are unchanged: the overlay bridge of the node.
  assert.equal(
    hybridDelegate(net, placePod(net, n1), "192.168.50.11", {
      plugins: "reference",
      defaultRoute: true,
    }).bridge,
    "hyo-hy",
  );
  assert.equal(
    hybridDelegate(net, placePod(net, n1, {}, "underlay"), "192.168.50.11", {
      plugins: "reference",
      defaultRoute: true,
    }).type,
    "macvlan",
  );
});
