/**
 * `hydra nri serve` against a real containerd: a sandbox asking for two
 * networks by annotation gets them during `crictl runp` (beside eth0 from
 * the runtime's default CNI), with the addresses and routes the results
 * name; `crictl stopp`/`rmp` release them and free the addresses; the
 * plugin shuts down cleanly on SIGTERM.
 *
 * Needs root and the built peers (tests/infra/build-peers.sh).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { uniqueName } from "../helpers/netns.ts";
import { extraLinks, v4, withNriWorld } from "./serve_world.ts";

const NETWORKS = "k8s.v1.cni.cncf.io/networks";

interface StateFile {
  sandboxId: string;
  ifName: string;
  networks: {
    name: string;
    ifName: string;
    result?: {
      interfaces?: { name: string; mac?: string; sandbox?: string }[];
      ips?: { address: string; gateway?: string; interface?: number }[];
      routes?: { dst: string; gw?: string }[];
    };
  }[];
}

Deno.test({
  name: "nri serve: runp attaches net1/net2 beside eth0 as the results say; stopp/rmp free them",
  async fn() {
    await withNriWorld(async (w) => {
      const hydra = await w.startHydra();
      const plain = await w.runp(uniqueName("plain"));
      const id = await w.runp(uniqueName("two"), { [NETWORKS]: "blue,red" });
      const netns = await w.netnsOf(id);

      const links = await w.addrs(netns);
      const eth0 = links.find((l) => l.ifname === "eth0");
      assert.ok(v4(eth0)[0]?.startsWith(w.defaultNet), "eth0 comes from the default CNI");
      const extra = extraLinks(links);
      assert.deepEqual([...extra.keys()].sort(), ["net1", "net2"]);
      const [blueAddr] = v4(extra.get("net1"));
      const [redAddr] = v4(extra.get("net2"));
      assert.ok(blueAddr?.startsWith(w.blueNet), `net1 ${blueAddr} is on blue`);
      assert.ok(redAddr?.startsWith(w.redNet), `net2 ${redAddr} is on red`);
      assert.equal(extra.get("net2")!.link_type, "ether");

      // What hydra recorded is what the kernel has.
      const state: StateFile = JSON.parse(
        await Deno.readTextFile(join(w.cacheDir, "pods", `${id}.json`)),
      );
      assert.equal(state.sandboxId, id);
      assert.deepEqual(state.networks.map((n) => `${n.name}@${n.ifName}`), [
        "blue@net1",
        "red@net2",
      ]);
      for (const n of state.networks) {
        const link = extra.get(n.ifName)!;
        const result = n.result!;
        const podIf = result.interfaces!.find((i) => i.name === n.ifName && i.sandbox);
        assert.equal(podIf?.mac, link.address, `${n.name}: MAC`);
        assert.deepEqual(result.ips!.map((ip) => ip.address), v4(link), `${n.name}: addresses`);
      }
      const routes = await w.routes(netns);
      const blueGw = state.networks[0].result!.ips![0].gateway;
      assert.ok(blueGw, "blue's result names a gateway");
      assert.ok(
        routes.some((r) => r.dst === w.blueRoute && r.dev === "net1" && r.gateway === blueGw),
        `route to ${w.blueRoute} via ${blueGw} on net1: ${JSON.stringify(routes)}`,
      );
      assert.deepEqual(
        state.networks[0].result!.routes!.map((r) => r.dst),
        [w.blueRoute],
      );

      // hydra-ipam holds exactly these addresses; the bridge has one port.
      assert.deepEqual(w.reserved("blue"), [blueAddr.split("/")[0]]);
      assert.deepEqual(w.reserved("red"), [redAddr.split("/")[0]]);
      assert.equal((await w.bridgePorts()).length, 1);

      // A pod that asks for nothing gets nothing from hydra.
      assert.deepEqual([...extraLinks(await w.addrs(await w.netnsOf(plain))).keys()], []);
      // Nor does a host-network pod, whatever it asks for: it starts, and hydra says why.
      const hostPod = await w.runp(uniqueName("host"), { [NETWORKS]: "blue" }, {
        hostNetwork: true,
      });
      await w.ctd.crictl("stopp", hostPod);
      await w.ctd.crictl("rmp", hostPod);
      assert.ok(hydra.logLines().some((l) => /^host-network pod/.test(String(l.msg))));

      await w.ctd.crictl("stopp", id);
      assert.deepEqual(w.reserved("blue"), [], "blue address freed on stopp");
      assert.deepEqual(w.reserved("red"), [], "red address freed on stopp");
      assert.deepEqual(await w.bridgePorts(), []);
      await assert.rejects(Deno.stat(join(w.cacheDir, "pods", `${id}.json`)));
      assert.deepEqual([...Deno.readDirSync(join(w.cacheDir, "attachments"))], []);
      await w.ctd.crictl("rmp", id);

      // The next pod gets addresses again, and the metrics count what happened.
      const again = await w.runp(uniqueName("again"), { [NETWORKS]: "red@data0" });
      const againLinks = extraLinks(await w.addrs(await w.netnsOf(again)));
      assert.deepEqual([...againLinks.keys()], ["data0"]);
      const metrics = (await hydra.get("/metrics")).body;
      assert.match(metrics, /hydra_nri_events_total\{event="run",result="ok"\} 4/);
      assert.match(metrics, /hydra_nri_events_total\{event="stop",result="ok"\} 2/);
      assert.match(metrics, /hydra_nri_events_total\{event="remove",result="ok"\} 2/);
      assert.match(
        metrics,
        /hydra_nri_attach_duration_seconds_count\{trigger="run",result="ok"\} 4/,
      );
      assert.match(metrics, /hydra_nri_attached_pods 1/);
      assert.match(metrics, /hydra_nri_connected 1/);
      assert.equal((await hydra.get("/healthz")).status, 200);

      assert.equal(await hydra.terminate(), 0, "SIGTERM: clean exit");
      assert.ok(hydra.logLines().some((l) => /SIGTERM: stopping/.test(String(l.msg))));
      // Attachments stay when hydra stops.
      assert.deepEqual([...extraLinks(await w.addrs(await w.netnsOf(again))).keys()], ["data0"]);
    });
  },
});

Deno.test({
  name: "nri serve: sandboxes created and stopped in parallel get distinct addresses, all freed",
  async fn() {
    await withNriWorld(async (w) => {
      await w.startHydra();
      const count = 6;
      const ids = await Promise.all(
        Array.from(
          { length: count },
          (_, i) => w.runp(uniqueName(`par${i}`), { [NETWORKS]: "blue,red" }),
        ),
      );
      const seen: string[] = [];
      for (const id of ids) {
        const extra = extraLinks(await w.addrs(await w.netnsOf(id)));
        assert.deepEqual([...extra.keys()].sort(), ["net1", "net2"], id);
        seen.push(...v4(extra.get("net1")), ...v4(extra.get("net2")));
      }
      assert.equal(new Set(seen).size, 2 * count, "every address is distinct");
      assert.equal(w.reserved("blue").length, count);
      assert.equal(w.reserved("red").length, count);
      assert.equal((await w.bridgePorts()).length, count);
      await Promise.all(ids.map((id) => w.ctd.crictl("stopp", id)));
      assert.deepEqual(w.reserved("blue"), []);
      assert.deepEqual(w.reserved("red"), []);
      assert.deepEqual(await w.bridgePorts(), []);
    });
  },
});

Deno.test({
  name: "nri serve: a record a crash damaged still lets stopp free every address",
  async fn() {
    await withNriWorld(async (w) => {
      await w.startHydra();
      for (const damage of ["", '{"kind":']) {
        const id = await w.runp(uniqueName("dmg"), { [NETWORKS]: "blue,red" });
        assert.equal(w.reserved("blue").length, 1);
        const record = join(w.cacheDir, "attachments", `${id}-net1`);
        await Deno.writeTextFile(record, damage);
        await w.ctd.crictl("stopp", id);
        assert.deepEqual(w.reserved("blue"), [], "blue address freed");
        assert.deepEqual(w.reserved("red"), [], "red address freed");
        assert.deepEqual(await w.bridgePorts(), [], "no port left on the bridge");
        await w.ctd.crictl("rmp", id);
      }
    });
  },
});
