import assert from "node:assert/strict";
import { run, type TestNetns } from "../tests/helpers/netns.ts";
import { parseNetwork } from "./config.ts";
import { vxlanMac } from "./desired.ts";
import { vtepMac } from "../plugins/vxlan.ts";
import type { NodeInfo } from "./nodes.ts";
import type { NetworkMirror } from "./mirror.ts";
import { reconcileNetwork } from "./reconcile.ts";
import { ANYWHERE, desired, red, testNode, withNode } from "./testdata.ts";

interface IpRoute {
  dst: string;
  gateway?: string;
  protocol?: string;
  dev?: string;
  flags?: string[];
}

function node(name: string, cidr: string, addr: string): NodeInfo {
  return testNode(name, [cidr], addr);
}

async function routes(ns: TestNetns, ...filter: string[]): Promise<IpRoute[]> {
  return await ns.ipJson<IpRoute[]>("route", "show", ...filter);
}

/** The routes of protocol `proto` as "dst via gateway", sorted. */
async function routeVias(ns: TestNetns, proto: string): Promise<string[]> {
  return (await routes(ns, "proto", proto)).map((r) => `${r.dst} via ${r.gateway}`).sort();
}

/** The neighbours of `dev` as "ip=mac", sorted. */
async function neighbours(ns: TestNetns, dev: string): Promise<string[]> {
  const neigh = await ns.ipJson<{ dst: string; lladdr: string }[]>("neigh", "show", "dev", dev);
  return neigh.map((n) => `${n.dst}=${n.lladdr}`).sort();
}

/** The FDB entries of `dev` that name a remote, as "mac>remote", sorted. */
async function fdbRemotes(ns: TestNetns, dev: string): Promise<string[]> {
  const fdb = JSON.parse(
    await run("bridge", "-n", ns.name, "-j", "fdb", "show", "dev", dev),
  ) as { mac: string; dst?: string }[];
  return fdb.filter((e) => e.dst).map((e) => `${e.mac}>${e.dst}`).sort();
}

/** A route in `ns` of another protocol ("static"), via an address no node has. */
async function foreignRoute(ns: TestNetns, dst: string): Promise<void> {
  await run("ip", "-n", ns.name, "route", "add", dst, "via", "192.168.50.9", "proto", "static");
}

const base = [
  node("n1", "10.244.1.0/24", "192.168.50.1"),
  node("n2", "10.244.2.0/24", "192.168.50.2"),
  node("n3", "10.244.3.0/24", "192.168.50.3"),
];

Deno.test("routed: adds, replaces and deletes only its own protocol's routes; adopts on a fresh start", async () => {
  await withNode("hyr", async (ns, h) => {
    // Foreign routes: one beside ours, one holding a destination a node will claim.
    await foreignRoute(ns, "10.99.0.0/16");
    await foreignRoute(ns, "10.244.4.0/24");
    const first = reconcileNetwork(h, desired(base), undefined, true);
    assert.deepEqual(first.problems, []);
    assert.equal(first.changes.routesAdded, 2);
    assert.deepEqual(await routeVias(ns, "202"), [
      "10.244.2.0/24 via 192.168.50.2",
      "10.244.3.0/24 via 192.168.50.3",
    ]);

    // A fresh run (no mirror) adopts what is there: nothing to change.
    const adopt = reconcileNetwork(h, desired(base), undefined, true);
    assert.deepEqual(adopt.changes, {
      routesAdded: 0,
      routesReplaced: 0,
      routesDeleted: 0,
      fdbChanged: 0,
      neighChanged: 0,
    });

    // n3 moves, n2 leaves, n4 claims the foreign route's destination.
    const next = [
      base[0],
      node("n3", "10.244.3.0/24", "192.168.50.33"),
      node("n4", "10.244.4.0/24", "192.168.50.4"),
    ];
    const inc = reconcileNetwork(h, desired(next), adopt.mirror, false);
    assert.equal(inc.changes.routesReplaced, 1);
    assert.equal(inc.changes.routesDeleted, 1);
    assert.equal(inc.retry, true, "the clash is re-checked by a full pass");
    const full = reconcileNetwork(h, desired(next), inc.mirror, true);
    assert.deepEqual(full.problems.map((p) => p.kind), ["route_conflict"]);
    assert.deepEqual(await routeVias(ns, "202"), ["10.244.3.0/24 via 192.168.50.33"]);
    assert.deepEqual(await routeVias(ns, "static"), [
      "10.244.4.0/24 via 192.168.50.9",
      "10.99.0.0/16 via 192.168.50.9",
    ]);

    // Our route deleted behind our back comes back on the next full pass, not the incremental one.
    await run("ip", "-n", ns.name, "route", "del", "10.244.3.0/24", "proto", "202");
    const blind = reconcileNetwork(h, desired(next), full.mirror, false);
    assert.equal(blind.changes.routesAdded, 0);
    const repair = reconcileNetwork(h, desired(next), blind.mirror, true);
    assert.equal(repair.changes.routesAdded, 1);
    assert.equal((await routes(ns, "proto", "202")).length, 1);

    // Every node gone: every route of ours goes, the foreign ones stay.
    reconcileNetwork(h, desired([base[0]]), repair.mirror, true);
    assert.deepEqual(await routes(ns, "proto", "202"), []);
    assert.equal((await routes(ns, "proto", "static")).length, 2);
  });
});

Deno.test("routed: an unreachable gateway is a kernel problem with a hint, the other routes still go in", async () => {
  await withNode("hyr", async (ns, h) => {
    const nodes = [base[0], base[1], node("n5", "10.244.5.0/24", "172.31.0.5")];
    const r = reconcileNetwork(h, desired(nodes), undefined, true);
    assert.equal(r.retry, true);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0].kind, "kernel");
    assert.match(r.problems[0].message, /not on a directly connected network/);
    assert.equal((await routes(ns, "proto", "202")).length, 1);
  });
});

Deno.test("vxlan: device, neighbours, FDB and on-link routes follow the nodes", async () => {
  await withNode("hyr", async (ns, h) => {
    const r = reconcileNetwork(h, desired(base, red), undefined, true);
    assert.deepEqual(r.problems, []);
    const mirror: NetworkMirror | undefined = r.mirror;
    const link = (await ns.ipJson<
      {
        address: string;
        linkinfo: { info_data: { id: number; port: number; learning?: boolean; local: string } };
      }[]
    >("-d", "link", "show", "vx-red"))[0];
    assert.equal(link.address, vxlanMac(42, "192.168.50.1"));
    assert.equal(link.linkinfo.info_data.id, 42);
    assert.equal(link.linkinfo.info_data.local, "192.168.50.1");
    const addrs = await ns.ipJson<
      { addr_info: { local: string; prefixlen: number; scope: string }[] }[]
    >("addr", "show", "vx-red");
    assert.deepEqual(
      addrs[0].addr_info.filter((a) => a.scope === "global").map((a) =>
        `${a.local}/${a.prefixlen}`
      ),
      ["10.246.1.0/32"],
    );
    assert.deepEqual(await neighbours(ns, "vx-red"), [
      `10.246.2.0=${vxlanMac(42, "192.168.50.2")}`,
      `10.246.3.0=${vxlanMac(42, "192.168.50.3")}`,
    ]);
    assert.deepEqual(
      await fdbRemotes(ns, "vx-red"),
      [
        `${vxlanMac(42, "192.168.50.2")}>192.168.50.2`,
        `${vxlanMac(42, "192.168.50.3")}>192.168.50.3`,
      ].sort(),
    );
    const vr = await routes(ns, "proto", "204");
    assert.deepEqual(
      vr.map((x) => `${x.dst} via ${x.gateway} dev ${x.dev} ${x.flags?.join(",")}`).sort(),
      [
        "10.246.2.0/24 via 10.246.2.0 dev vx-red onlink",
        "10.246.3.0/24 via 10.246.3.0 dev vx-red onlink",
      ],
    );

    // n3 leaves: its route, neighbour and FDB entry go; n2's stay.
    const gone = reconcileNetwork(h, desired([base[0], base[1]], red), mirror, false);
    assert.equal(gone.changes.routesDeleted, 1);
    assert.equal(gone.changes.fdbChanged, 1);
    assert.equal(gone.changes.neighChanged, 1);
    assert.equal((await ns.ipJson<unknown[]>("neigh", "show", "dev", "vx-red")).length, 1);
    // A fresh start adopts the device and its entries.
    const adopt = reconcileNetwork(h, desired([base[0], base[1]], red), undefined, true);
    assert.equal(
      adopt.changes.routesAdded + adopt.changes.fdbChanged + adopt.changes.neighChanged,
      0,
    );
    assert.deepEqual(adopt.deviceChanges, []);
    // A device of the wrong VNI (changed behind the router's back) is recreated by the next
    // full pass, with everything hanging off it.
    await run("ip", "-n", ns.name, "link", "del", "vx-red");
    await run(
      "ip",
      "-n",
      ns.name,
      "link",
      "add",
      "vx-red",
      "type",
      "vxlan",
      "id",
      "7",
      "dstport",
      "8472",
    );
    const recreated = reconcileNetwork(h, desired([base[0], base[1]], red), adopt.mirror, true);
    assert.match(recreated.deviceChanges.join(), /recreated \(vni 7 → 42/);
    assert.equal((await routes(ns, "proto", "204")).length, 1);
  });
});

Deno.test("vxlan: a device of another kind under the name is a conflict and nothing is touched", async () => {
  await withNode("hyr", async (ns, h) => {
    await run("ip", "-n", ns.name, "link", "add", "vx-red", "type", "bridge");
    const r = reconcileNetwork(h, desired(base, red), undefined, true);
    assert.deepEqual(r.problems.map((p) => p.kind), ["device_conflict"]);
    assert.match(r.problems[0].message, /is a bridge device/);
    assert.deepEqual(await routes(ns, "proto", "204"), []);
  });
});

Deno.test("dual stack: IPv6 routes carry the kernel's default metric and are adopted like IPv4 ones", async () => {
  await withNode("hyr", async (ns, h) => {
    await run("ip", "-n", ns.name, "addr", "add", "fd50::1/64", "dev", "ul0", "nodad");
    const dual = (name: string, n: number): NodeInfo => ({
      name,
      podCIDRs: [`10.244.${n}.0/24`, `fd44:${n}::/64`],
      internalIPs: [`192.168.50.${n}`, `fd50::${n}`],
      annotations: {},
    });
    const nodes = [dual("n1", 1), dual("n2", 2)];
    const first = reconcileNetwork(h, desired(nodes), undefined, true);
    assert.deepEqual(first.problems, []);
    assert.equal(first.changes.routesAdded, 2);
    const v6 = await ns.ipJson<IpRoute[]>("-6", "route", "show", "proto", "202");
    assert.deepEqual(v6.map((r) => `${r.dst} via ${r.gateway}`), ["fd44:2::/64 via fd50::2"]);
    const adopt = reconcileNetwork(h, desired(nodes), undefined, true);
    assert.equal(adopt.changes.routesAdded + adopt.changes.routesReplaced, 0);
    const moved = [dual("n1", 1), { ...dual("n2", 2), internalIPs: ["192.168.50.2", "fd50::22"] }];
    const r = reconcileNetwork(h, desired(moved), adopt.mirror, true);
    assert.equal(r.changes.routesReplaced, 1);
    const after = await ns.ipJson<IpRoute[]>("-6", "route", "show", "proto", "202");
    assert.deepEqual(after.map((x) => `${x.dst} via ${x.gateway}`), ["fd44:2::/64 via fd50::22"]);
  });
});

Deno.test("plugin-owned vxlan: waits for hydra-vxlan's tunnel, then programs its entries without touching it", async () => {
  await withNode("hyr", async (ns, h) => {
    const green = parseNetwork(
      {
        allowedCIDRs: ANYWHERE,
        name: "red",
        mode: "vxlan",
        protocol: 205,
        vxlan: { owner: "plugin", vni: 42 },
      },
      2,
    );
    const waiting = reconcileNetwork(h, desired(base, green), undefined, true);
    assert.deepEqual(waiting.problems.map((p) => `${p.kind}:${p.level}`), ["device_missing:warn"]);
    assert.equal(waiting.retry, false);
    // The tunnel as the plugin makes it: its MAC from the underlay address, on a bridge.
    await run("ip", "-n", ns.name, "link", "add", "hydrabr42", "type", "bridge");
    await run(
      "ip",
      "-n",
      ns.name,
      "link",
      "add",
      "hydravx42",
      "address",
      vtepMac("192.168.50.1"),
      "type",
      "vxlan",
      "id",
      "42",
      "dstport",
      "4789",
      "local",
      "192.168.50.1",
      "nolearning",
    );
    await run("ip", "-n", ns.name, "link", "set", "hydravx42", "master", "hydrabr42", "up");
    const r = reconcileNetwork(h, desired(base, green), waiting.mirror, false);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(r.deviceChanges, []);
    const routes = await ns.ipJson<IpRoute[]>("route", "show", "proto", "205");
    assert.deepEqual(routes.map((x) => `${x.dst} via ${x.gateway} dev ${x.dev}`).sort(), [
      "10.246.2.0/24 via 10.246.2.1 dev hydravx42",
      "10.246.3.0/24 via 10.246.3.1 dev hydravx42",
    ]);
    assert.deepEqual(await neighbours(ns, "hydravx42"), [
      `10.246.2.1=${vtepMac("192.168.50.2")}`,
      `10.246.3.1=${vtepMac("192.168.50.3")}`,
    ]);
    assert.deepEqual(
      await fdbRemotes(ns, "hydravx42"),
      [
        `${vtepMac("192.168.50.2")}>192.168.50.2`,
        `${vtepMac("192.168.50.3")}>192.168.50.3`,
      ].sort(),
    );
    const link =
      (await ns.ipJson<{ address: string; master?: string }[]>("link", "show", "hydravx42"))[0];
    assert.equal(link.address, vtepMac("192.168.50.1"), "the plugin's MAC is left alone");
    assert.equal(link.master, "hydrabr42");
    const addrs = await ns.ipJson<{ addr_info: { scope: string }[] }[]>(
      "addr",
      "show",
      "hydravx42",
    );
    assert.equal(addrs[0].addr_info.filter((a) => a.scope === "global").length, 0);
  });
});
