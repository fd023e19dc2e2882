/**
 * End to end with the static node list: three (then four) node namespaces
 * on an underlay bridge, a router in each, pods pinging across nodes on a
 * routed and a vxlan network while nodes are added, moved and deleted and
 * routers are restarted or killed.
 */

import assert from "node:assert/strict";
import { stringify } from "yaml";
import {
  addForeignRoutes,
  allRoutes,
  changeAddress,
  createWorld,
  destroyWorld,
  eventually,
  foreignRoutes,
  killRouter,
  metricsOf,
  NETWORKS_YAML,
  routedCidr,
  type RouterProcess,
  sample,
  startRouter,
  stopRouter,
  unreachable,
  vxlanCidr,
  waitForRoutes,
  waitReady,
  type WorldNode,
} from "./world.ts";

function nodeEntry(n: WorldNode) {
  return {
    name: n.name,
    podCIDRs: [routedCidr(n.index)],
    addresses: [n.address],
    annotations: {
      "hydra.clusternet.io/red.cidr": vxlanCidr(n.index),
      "hydra.clusternet.io/red.address": n.address,
    },
  };
}

Deno.test("node list file: routes follow added, moved and deleted nodes; restarts lose nothing", async (t) => {
  const world = await createWorld(4);
  const routers = new Map<string, RouterProcess>();
  const [n1, n2, n3, n4] = world.nodes;
  const config = `${world.dir}/networks.yaml`;
  const nodesFile = `${world.dir}/nodes.yaml`;
  // Written whole then renamed, as a config management tool would.
  const writeNodes = async (nodes: WorldNode[]) => {
    await Deno.writeTextFile(`${nodesFile}.tmp`, stringify({ nodes: nodes.map(nodeEntry) }));
    await Deno.rename(`${nodesFile}.tmp`, nodesFile);
  };
  const start = (n: WorldNode) => {
    routers.set(n.name, startRouter(world, n, ["--config", config, "--nodes-file", nodesFile]));
    return routers.get(n.name)!;
  };
  try {
    await Deno.writeTextFile(config, NETWORKS_YAML);
    const foreign = new Map<string, string[]>();
    for (const n of world.nodes) foreign.set(n.name, await addForeignRoutes(n));
    await writeNodes([n1, n2, n3]);
    for (const n of [n1, n2, n3]) start(n);

    await t.step(
      "every node routes to the others; pods reach each other on both networks",
      async () => {
        for (const n of [n1, n2, n3]) await waitForRoutes(n, [n1, n2, n3]);
        assert.deepEqual(unreachable([n1, n2, n3]), []);
      },
    );

    await t.step(
      "once the passes go quiet, a router collects its heap (V8's gc through bin/hydra's flags)",
      async () => {
        const collected = async () =>
          (await Deno.readTextFile(routers.get(n1.name)!.logFile)).split("\n").filter(Boolean)
            .map((l) => JSON.parse(l))
            .filter((e) => e.msg === "heap collected after the updates went quiet");
        const [first] = await eventually("a collection", collected, (v) => v.length > 0);
        assert.equal(typeof first.freedMiB, "number");
        assert.ok(first.residentMiB > 0);
      },
    );

    await t.step(
      "a node added to the list gets routes everywhere, and its router joins",
      async () => {
        await writeNodes([n1, n2, n3, n4]);
        start(n4);
        for (const n of [n1, n2, n3, n4]) await waitForRoutes(n, [n1, n2, n3, n4]);
        assert.deepEqual(unreachable([n1, n2, n3, n4]), []);
      },
    );

    await t.step("a node's address changes: routes and vxlan entries follow", async () => {
      await changeAddress(n3, "192.168.60.33");
      await writeNodes([n1, n2, n3, n4]);
      for (const n of [n1, n2, n3, n4]) await waitForRoutes(n, [n1, n2, n3, n4]);
      const fdb = await n1.ns.exec("bridge", "fdb", "show", "dev", "vx-red");
      assert.match(fdb, /dst 192\.168\.60\.33 /);
      assert.doesNotMatch(fdb, /dst 192\.168\.60\.13 /);
      assert.deepEqual(unreachable([n1, n2, n3, n4]), []);
    });

    await t.step("a node deleted from the list: its routes go everywhere", async () => {
      assert.equal((await stopRouter(routers.get(n4.name)!)).code, 0);
      routers.delete(n4.name);
      await writeNodes([n1, n2, n3]);
      for (const n of [n1, n2, n3]) await waitForRoutes(n, [n1, n2, n3]);
      const neigh = await n1.ns.exec("ip", "neigh", "show", "dev", "vx-red");
      assert.doesNotMatch(neigh, /10\.246\.4\.0/);
      assert.deepEqual(unreachable([n1, n2, n3]), []);
    });

    await t.step(
      "SIGTERM and kill -9: routes stay, restarted routers adopt them, none duplicated",
      async () => {
        const before1 = await allRoutes(n1);
        const before2 = await allRoutes(n2);
        assert.equal((await stopRouter(routers.get(n1.name)!)).code, 0);
        await killRouter(routers.get(n2.name)!);
        assert.deepEqual(await allRoutes(n1), before1, "routes stay after SIGTERM");
        assert.deepEqual(await allRoutes(n2), before2, "routes stay after kill -9");
        assert.deepEqual(unreachable([n1, n2, n3]), [], "the data plane works without routers");
        const again = [start(n1), start(n2)];
        for (const r of again) await waitReady(r);
        for (const [n, before] of [[n1, before1], [n2, before2]] as const) {
          const now = await allRoutes(n);
          assert.deepEqual(now, before, `${n.name}: same routes after restart`);
          const dsts = now.map((r) => r.split(" ")[0]);
          assert.equal(new Set(dsts).size, dsts.length, `${n.name}: no destination twice`);
        }
        for (const r of again) {
          const m = await metricsOf(r);
          assert.equal(sample(m, 'hydra_route_changes_total{object="route",op="add"}'), 0);
          assert.equal(sample(m, 'hydra_route_routes_owned{network="default"}'), 2);
          assert.equal(sample(m, 'hydra_route_routes_owned{network="red"}'), 2);
          assert.equal(sample(m, "hydra_route_nodes_seen"), 3);
        }
        assert.deepEqual(unreachable([n1, n2, n3]), []);
      },
    );

    await t.step("routes of other protocols were never touched", async () => {
      for (const n of world.nodes) assert.deepEqual(await foreignRoutes(n), foreign.get(n.name));
    });
  } finally {
    for (const r of routers.values()) await stopRouter(r);
    await destroyWorld(world);
  }
});
