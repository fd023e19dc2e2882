/**
 * The hybrid data plane end to end, in namespaces (see world.ts): every
 * pair of pods reaches the other both ways, each on the path the model
 * says — overlay ↔ overlay and overlay ↔ underlay across nodes through the
 * vxlan device (its packet counters move on both nodes), underlay ↔
 * underlay on the fabric (the vxlan counters stay still, the switch's
 * ports carry it), the outside reaches underlay pods but not overlay pods,
 * overlay pods reach the outside masqueraded. Nodes joining and leaving
 * change every other node.
 */

import assert from "node:assert/strict";
import {
  addHybridNode,
  createHybridWorld,
  destroyHybridWorld,
  hydraBin,
  OUTSIDE_IP,
  pings,
  syncNode,
  writeNodeList,
} from "./world.ts";
import { checkPair, type Path, vxlanCounts } from "./paths.ts";
import { run } from "../helpers/netns.ts";
import { getFromEndpoint } from "../../pkg/http.ts";

Deno.test({
  name: "hybrid: every pod pair both ways, each on its path; outside and masquerade",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const w = await createHybridWorld(2);
    try {
      await writeNodeList(w);
      for (const n of w.nodes) assert.equal((await syncNode(w, n)).ok, true);
      const pods = w.nodes.flatMap((n) => n.pods);
      const seen = new Map<Path, number>();
      for (const a of pods) {
        for (const b of pods) {
          if (a === b) continue;
          const p = await checkPair(w, a, b);
          seen.set(p, (seen.get(p) ?? 0) + 1);
        }
      }
      assert.deepEqual(Object.fromEntries(seen), { local: 4, vxlan: 6, fabric: 2 });

      const [ov1, ul1] = w.nodes[0].pods;
      // Underlay ↔ outside on the fabric; overlay → outside masqueraded (the
      // gateway has no route back to the overlay, so only a masqueraded ping is answered).
      const vx0 = await vxlanCounts(w);
      assert.ok(await pings(ul1.ns, OUTSIDE_IP), "underlay → outside");
      assert.ok(await pings(w.outside, ul1.ip), "outside → underlay");
      assert.deepEqual(await vxlanCounts(w), vx0, "underlay ↔ outside must not use vxlan");
      assert.ok(await pings(ov1.ns, OUTSIDE_IP), "overlay → outside (masqueraded)");
      // Outside → overlay: not even when the gateway routes the overlay to a node.
      assert.equal(await pings(w.outside, ov1.ip), false, "outside reached an overlay pod");
      await run(
        "ip",
        "-n",
        w.fabric.name,
        "route",
        "add",
        "10.250.0.0/16",
        "via",
        w.nodes[0].address,
      );
      assert.equal(
        await pings(w.outside, ov1.ip),
        false,
        "outside reached an overlay pod via a node",
      );
    } finally {
      await destroyHybridWorld(w);
    }
  },
});

Deno.test({
  name: "hybrid: a node joining and leaving updates every other node",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const w = await createHybridWorld(2);
    try {
      await writeNodeList(w);
      for (const n of w.nodes) await syncNode(w, n);
      const n3 = await addHybridNode(w, 3);
      await writeNodeList(w);
      for (const n of w.nodes) assert.equal((await syncNode(w, n)).ok, true);
      const [ov1, ul1] = w.nodes[0].pods;
      const [ov3, ul3] = n3.pods;
      for (const [a, b] of [[ov1, ul3], [ul3, ov1], [ov3, ul1], [ul1, ul3], [ov3, ov1]]) {
        await checkPair(w, a, b);
      }
      const routes = async () =>
        (await w.nodes[0].ns.ipJson<{ dst: string }[]>("route", "show", "table", "210")).map((r) =>
          r.dst
        );
      assert.ok((await routes()).includes("10.250.3.0/24"));
      assert.ok((await routes()).includes("192.168.50.96/28"));

      await writeNodeList(w, ["node1", "node2"]);
      for (const n of w.nodes.slice(0, 2)) assert.equal((await syncNode(w, n)).ok, true);
      const left = await routes();
      assert.ok(
        !left.some((d) =>
          d.startsWith("10.250.3.") || d === "192.168.50.96/28" || d === n3.address
        ),
      );
      assert.deepEqual(left.sort(), ["10.250.2.0/24", "192.168.50.12", "192.168.50.80/28"]);
      const fdb = await run("bridge", "-n", w.nodes[0].ns.name, "fdb", "show", "dev", "hy-hy");
      assert.ok(!fdb.includes(n3.address), "node3's FDB entry left behind");
      assert.equal(await pings(ov1.ns, ov3.ip), false, "node3 still reached through the overlay");
    } finally {
      await destroyHybridWorld(w);
    }
  },
});

Deno.test({
  name:
    "hybrid: the running router follows the node list: a node joining and leaving, within seconds",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const w = await createHybridWorld(2);
    let child: Deno.ChildProcess | undefined;
    try {
      await writeNodeList(w);
      const [n1] = w.nodes;
      child = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          n1.ns.name,
          hydraBin,
          "hybrid",
          "sync",
          "--config",
          w.config,
          "--nodes-file",
          w.nodesFile,
          "--node-name",
          n1.name,
          "--log-file",
          `${w.dir}/daemon.log`,
          "--health-addr",
          `unix:${w.dir}/health.sock`,
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const routes = async () =>
        (await n1.ns.ipJson<{ dst: string }[]>("route", "show", "table", "210").catch(() => []))
          .map((r) => r.dst);
      const within = async (what: string, ok: (r: string[]) => boolean) => {
        const t0 = Date.now();
        while (!ok(await routes())) {
          if (Date.now() - t0 > 10_000) {
            throw new Error(`${what}: not within 10 s: ${await routes()}`);
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      await within("first sync", (r) => r.includes("10.250.2.0/24"));
      const health = { transport: "unix" as const, path: `${w.dir}/health.sock` };
      const ready = await getFromEndpoint(health, "/readyz");
      assert.equal(ready.status, 200, ready.body);
      const metrics = (await getFromEndpoint(health, "/metrics")).body;
      assert.match(metrics, /hydra_hybrid_routes\{network="hy"\} 3\n/);
      assert.match(metrics, /hydra_hybrid_nodes_synced\{network="hy"\} 1\n/);
      const n3 = await addHybridNode(w, 3);
      await writeNodeList(w);
      await within(
        "node3 joined",
        (r) => r.includes(n3.overlayBlock) && r.includes(n3.underlayBlock),
      );
      await writeNodeList(w, ["node1", "node2"]);
      await within("node3 left", (r) => !r.includes(n3.overlayBlock) && !r.includes(n3.address));
      child.kill("SIGTERM");
      const status = await child.status;
      child = undefined;
      assert.equal(status.code, 0);
      assert.ok((await routes()).includes("10.250.2.0/24"), "routes stay when the router stops");
    } finally {
      if (child) {
        child.kill("SIGKILL");
        await child.status;
      }
      await destroyHybridWorld(w);
    }
  },
});
