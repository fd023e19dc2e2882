import assert from "node:assert/strict";
import { run, type TestNetns } from "../tests/helpers/netns.ts";
import { reconcileNetwork } from "./reconcile.ts";
import { desired, red, testNode, withNode } from "./testdata.ts";

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  nhid?: number;
  flags?: string[];
}

interface IpNexthop {
  id: number;
  gateway?: string;
  dev?: string;
  protocol?: string;
}

async function nexthops(ns: TestNetns, protocol: string): Promise<IpNexthop[]> {
  const all = await ns.ipJson<IpNexthop[]>("nexthop", "show");
  return all.filter((n) => n.protocol === protocol);
}

Deno.test("routed IPv4 routes go through one nexthop object per remote address, removed with its last route", async () => {
  await withNode("hyn", async (ns, h) => {
    const nodes = [
      testNode("n1", ["10.244.1.0/24"], "192.168.50.1"),
      testNode("n2", ["10.244.2.0/24", "10.244.12.0/24"], "192.168.50.2"),
      testNode("n3", ["10.244.3.0/24"], "192.168.50.3"),
    ];
    const first = reconcileNetwork(h, desired(nodes), undefined, true);
    assert.deepEqual(first.problems, []);
    const routes = await ns.ipJson<IpRoute[]>("route", "show", "proto", "202");
    const nhs = await nexthops(ns, "202");
    assert.deepEqual(nhs.map((n) => `${n.gateway} dev ${n.dev}`).sort(), [
      "192.168.50.2 dev ul0",
      "192.168.50.3 dev ul0",
    ]);
    const gatewayOf = new Map(nhs.map((n) => [n.id, n.gateway]));
    assert.deepEqual(routes.map((r) => `${r.dst} via ${gatewayOf.get(r.nhid!)}`).sort(), [
      "10.244.12.0/24 via 192.168.50.2",
      "10.244.2.0/24 via 192.168.50.2",
      "10.244.3.0/24 via 192.168.50.3",
    ]);

    // n2 moves to another address; n3 goes away.
    const moved = [nodes[0], testNode("n2", ["10.244.2.0/24", "10.244.12.0/24"], "192.168.50.22")];
    const inc = reconcileNetwork(h, desired(moved), first.mirror, false);
    assert.deepEqual(inc.problems, []);
    assert.deepEqual((await nexthops(ns, "202")).map((n) => n.gateway), ["192.168.50.22"]);
    const after = await ns.ipJson<IpRoute[]>("route", "show", "proto", "202");
    assert.deepEqual(after.map((r) => `${r.dst} via ${r.gateway}`).sort(), [
      "10.244.12.0/24 via 192.168.50.22",
      "10.244.2.0/24 via 192.168.50.22",
    ]);

    // A fresh run adopts routes and nexthops as they are and changes nothing.
    const adopt = reconcileNetwork(h, desired(moved), undefined, true);
    assert.equal(adopt.changes.routesAdded + adopt.changes.routesReplaced, 0);
    assert.equal(adopt.changes.routesDeleted, 0);
    assert.equal((await nexthops(ns, "202")).length, 1);

    // A nexthop of this protocol that no route uses (left by a crash) is swept by a full pass;
    // another protocol's is not touched.
    await run(
      "ip",
      "-n",
      ns.name,
      "nexthop",
      "add",
      "id",
      "77",
      "via",
      "192.168.50.9",
      "dev",
      "ul0",
      "proto",
      "202",
    );
    await run(
      "ip",
      "-n",
      ns.name,
      "nexthop",
      "add",
      "id",
      "78",
      "via",
      "192.168.50.9",
      "dev",
      "ul0",
      "proto",
      "static",
    );
    reconcileNetwork(h, desired(moved), adopt.mirror, true);
    assert.deepEqual((await nexthops(ns, "202")).map((n) => n.gateway), ["192.168.50.22"]);
    assert.deepEqual((await nexthops(ns, "static")).map((n) => n.id), [78]);

    // Routes with the gateway in them (an earlier version's) are adopted too.
    reconcileNetwork(h, desired([nodes[0]]), undefined, true);
    assert.deepEqual(await nexthops(ns, "202"), []);
    await run(
      "ip",
      "-n",
      ns.name,
      "route",
      "add",
      "10.244.3.0/24",
      "via",
      "192.168.50.3",
      "proto",
      "202",
    );
    const plain = reconcileNetwork(h, desired([nodes[0], nodes[2]]), undefined, true);
    assert.equal(plain.changes.routesAdded + plain.changes.routesReplaced, 0);
  });
});

Deno.test("vxlan on-link routes go through nexthops on the device", async () => {
  await withNode("hyn", async (ns, h) => {
    const nodes = [
      testNode("n1", ["10.244.1.0/24"], "192.168.50.1"),
      testNode("n2", ["10.244.2.0/24"], "192.168.50.2"),
    ];
    const r = reconcileNetwork(h, desired(nodes, red), undefined, true);
    assert.deepEqual(r.problems, []);
    const routes = await ns.ipJson<IpRoute[]>("route", "show", "proto", "204");
    assert.equal(routes.length, 1);
    assert.equal(routes[0].dev, "vx-red");
    assert.equal(routes[0].gateway, "10.246.2.0");
    assert.ok(routes[0].flags?.includes("onlink"));
    const nhs = await nexthops(ns, "204");
    assert.equal(nhs.length, 1);
    assert.equal(nhs[0].id, routes[0].nhid);
    // A second pass finds everything in place.
    const again = reconcileNetwork(h, desired(nodes, red), r.mirror, true);
    assert.equal(again.changes.routesAdded + again.changes.routesReplaced, 0);
  });
});
