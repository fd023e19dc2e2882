/**
 * End to end with a real kube-apiserver holding the Node objects: routers
 * in node namespaces watch them (through a relay to the host loopback) with
 * a least-privilege ServiceAccount; nodes are created, moved and deleted
 * through the API; routers restart and get killed; the API server itself
 * stops and comes back.
 */

import assert from "node:assert/strict";
import { createKubeClient, type KubeClient } from "../../kube/client.ts";
import { loadKubeconfig } from "../../kube/kubeconfig.ts";
import { type ControlPlane, startControlPlane } from "../infra/cluster.ts";
import { type Daemon, spawnDaemon, stopProcessGroup, waitUntil } from "../infra/process.ts";
import { startRelay } from "./relay.ts";
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

function nodeObject(n: WorldNode) {
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name: n.name,
      annotations: {
        "hydra.clusternet.io/red.cidr": vxlanCidr(n.index),
        "hydra.clusternet.io/red.address": n.address,
      },
    },
    spec: { podCIDR: routedCidr(n.index), podCIDRs: [routedCidr(n.index)] },
    status: { addresses: [{ type: "InternalIP", address: n.address }] },
  };
}

/** The router's RBAC as the DaemonSet has it: read Node objects, Events about them. */
async function routerKubeconfig(cp: ControlPlane): Promise<string> {
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
    metadata: { name: "hydra-router-test" },
    rules: [{ apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"] }],
  });
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", {
    metadata: { name: "hydra-router-test" },
    rules: [{ apiGroups: [""], resources: ["events"], verbs: ["create"] }],
  });
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", {
    metadata: { name: "hydra-router-test" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "hydra-router-test" },
    subjects: [{ kind: "ServiceAccount", name: "hydra-router", namespace: "hydra-system" }],
  });
  await cp.api.must("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
    metadata: { name: "hydra-router-test" },
    roleRef: {
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: "hydra-router-test",
    },
    subjects: [{ kind: "ServiceAccount", name: "hydra-router", namespace: "hydra-system" }],
  });
  return await cp.mintServiceAccountKubeconfig("hydra-system", "hydra-router");
}

async function moveNode(client: KubeClient, n: WorldNode, address: string): Promise<void> {
  await changeAddress(n, address);
  await client.patch(`/api/v1/nodes/${n.name}/status`, {
    status: { addresses: [{ type: "InternalIP", address }] },
  }, "merge");
  await client.patch(`/api/v1/nodes/${n.name}`, {
    metadata: { annotations: { "hydra.clusternet.io/red.address": address } },
  }, "merge");
}

/** Stops the API server process and starts it again later with the same command line. */
async function stopApiserver(cp: ControlPlane, pid: number): Promise<() => Promise<Daemon>> {
  const argv = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a) => a);
  await stopProcessGroup(pid);
  return async () => {
    const d = spawnDaemon("kube-apiserver", argv[0], {
      args: argv.slice(1),
      logPath: cp.logPaths.apiserver,
    });
    await waitUntil(
      "kube-apiserver back",
      async () => {
        try {
          return (await cp.api.request("GET", "/readyz")).status === 200;
        } catch {
          return false;
        }
      },
      120_000,
      d,
    );
    return d;
  };
}

Deno.test("Node objects in a real API server: routes follow; restarts and an API server outage lose nothing", async (t) => {
  const cp = await startControlPlane();
  const world = await createWorld(4).catch(async (err) => {
    await cp.stop();
    throw err;
  });
  const routers = new Map<string, RouterProcess>();
  const port = Number(new URL(cp.server).port);
  const relays = world.nodes.map((n) => startRelay(n.ns.path, port));
  const admin = createKubeClient(await loadKubeconfig(cp.kubeconfigPath));
  let apiserver: Daemon | undefined;
  const [n1, n2, n3, n4] = world.nodes;
  try {
    const kubeconfig = await routerKubeconfig(cp);
    const config = `${world.dir}/networks.yaml`;
    await Deno.writeTextFile(config, NETWORKS_YAML);
    const start = (n: WorldNode) => {
      const r = startRouter(world, n, ["--config", config, "--kubeconfig", kubeconfig]);
      routers.set(n.name, r);
      return r;
    };
    const foreign = new Map<string, string[]>();
    for (const n of world.nodes) foreign.set(n.name, await addForeignRoutes(n));
    for (const n of [n1, n2, n3]) await admin.create("/api/v1/nodes", nodeObject(n));
    for (const n of [n1, n2, n3]) start(n);

    await t.step(
      "every node routes to the others; pods reach each other on both networks",
      async () => {
        for (const n of [n1, n2, n3]) await waitForRoutes(n, [n1, n2, n3]);
        assert.deepEqual(unreachable([n1, n2, n3]), []);
      },
    );

    await t.step("a Node created: routes appear everywhere, its router joins", async () => {
      await admin.create("/api/v1/nodes", nodeObject(n4));
      start(n4);
      for (const n of world.nodes) await waitForRoutes(n, world.nodes);
      assert.deepEqual(unreachable(world.nodes), []);
    });

    await t.step("a Node's address changes: routes and vxlan entries follow", async () => {
      await moveNode(admin, n3, "192.168.60.33");
      for (const n of world.nodes) await waitForRoutes(n, world.nodes);
      assert.deepEqual(unreachable(world.nodes), []);
    });

    await t.step("a Node deleted: its routes go everywhere", async () => {
      assert.equal((await stopRouter(routers.get(n4.name)!)).code, 0);
      routers.delete(n4.name);
      await admin.delete(`/api/v1/nodes/${n4.name}`);
      for (const n of [n1, n2, n3]) await waitForRoutes(n, [n1, n2, n3]);
      assert.deepEqual(unreachable([n1, n2, n3]), []);
    });

    await t.step(
      "a Node claiming CIDRs outside the allowed ranges: refused with a log line, a metric and one Event per claim, never routed",
      async () => {
        const rogue = {
          apiVersion: "v1",
          kind: "Node",
          metadata: {
            name: "rogue",
            annotations: {
              "hydra.clusternet.io/red.cidr": "8.8.8.0/24",
              "hydra.clusternet.io/red.address": "192.168.60.77",
            },
          },
          spec: { podCIDR: "169.254.169.254/32", podCIDRs: ["169.254.169.254/32"] },
          status: { addresses: [{ type: "InternalIP", address: "192.168.60.77" }] },
        };
        await admin.create("/api/v1/nodes", rogue);
        const routersNow = [n1, n2, n3].map((n) => routers.get(n.name)!);
        for (const r of routersNow) {
          await eventually(
            `${r.node.name}'s router to refuse both claims`,
            () => metricsOf(r),
            (m) => sample(m, 'hydra_route_errors_total{kind="cidr_not_allowed"}') === 2,
            30_000,
          );
          const log = await Deno.readTextFile(r.logFile);
          assert.match(log, /claims 8\.8\.8\.0\/24, outside the ranges network red allows/);
          assert.match(log, /claims 169\.254\.169\.254\/32, outside the ranges network default/);
        }
        const events = await eventually(
          "the Events on the rogue Node",
          () =>
            admin.get<{ items: { reason: string; message: string; involvedObject: unknown }[] }>(
              "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Drogue",
            ),
          (list) => list.items.length >= 2,
          30_000,
        );
        // Three routers saw each claim; the claims got one Event each.
        assert.equal(events.items.length, 2);
        for (const e of events.items) {
          assert.equal(e.reason, "CIDRNotAllowed");
          assert.deepEqual(e.involvedObject, { kind: "Node", name: "rogue", apiVersion: "v1" });
        }
        for (const n of [n1, n2, n3]) {
          const routes = await allRoutes(n);
          assert.ok(
            !routes.some((r) => /^(8\.8\.8\.0|169\.254\.169\.254)/.test(r)),
            routes.join("\n"),
          );
          await waitForRoutes(n, [n1, n2, n3]);
        }
        await admin.delete("/api/v1/nodes/rogue");
      },
    );

    await t.step(
      "SIGTERM and kill -9: routes stay, restarted routers adopt them, none duplicated",
      async () => {
        const before = [await allRoutes(n1), await allRoutes(n2)];
        assert.equal((await stopRouter(routers.get(n1.name)!)).code, 0);
        await killRouter(routers.get(n2.name)!);
        assert.deepEqual([await allRoutes(n1), await allRoutes(n2)], before);
        const again = [start(n1), start(n2)];
        for (const r of again) await waitReady(r);
        assert.deepEqual([await allRoutes(n1), await allRoutes(n2)], before);
        for (const r of again) {
          assert.equal(
            sample(await metricsOf(r), 'hydra_route_changes_total{object="route",op="add"}'),
            0,
          );
        }
        assert.deepEqual(unreachable([n1, n2, n3]), []);
      },
    );

    await t.step(
      "API server stopped: routes stay, the routers log it; back: they resync",
      async () => {
        const before = await Promise.all([n1, n2, n3].map(allRoutes));
        const restart = await stopApiserver(cp, cp.record.apiserverPid);
        const r1 = routers.get(n1.name)!;
        await eventually(
          "n1's router to notice",
          () => metricsOf(r1),
          (m) => sample(m, "hydra_route_source_up") === 0,
          60_000,
        );
        const log = await Deno.readTextFile(r1.logFile);
        assert.match(log, /node source failed; routes are kept as they are/);
        assert.deepEqual(
          await Promise.all([n1, n2, n3].map(allRoutes)),
          before,
          "routes kept while the API is away",
        );
        assert.deepEqual(unreachable([n1, n2, n3]), []);

        apiserver = await restart();
        await moveNode(admin, n2, "192.168.60.22");
        for (const n of [n1, n2, n3]) {
          await waitForRoutes(n, [n1, n2, n3], 60_000);
        }
        assert.equal(sample(await metricsOf(r1), "hydra_route_source_up"), 1);
        assert.match(await Deno.readTextFile(r1.logFile), /node source answers again/);
        // The routes are in; the moved node's tunnel peers converge within a bounded time.
        await eventually(
          "every pod reachable after the resync",
          () => Promise.resolve(unreachable([n1, n2, n3])),
          (failed) => failed.length === 0,
          15_000,
        );
      },
    );

    await t.step("routes of other protocols were never touched", async () => {
      for (const n of world.nodes) assert.deepEqual(await foreignRoutes(n), foreign.get(n.name));
    });
  } finally {
    for (const r of routers.values()) await stopRouter(r);
    for (const relay of relays) await relay.stop();
    admin.close();
    if (apiserver) await stopProcessGroup(apiserver.pid);
    await apiserver?.status;
    await destroyWorld(world);
    await cp.stop();
  }
});
