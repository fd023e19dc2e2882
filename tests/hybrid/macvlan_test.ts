/**
 * Hybrid networks whose underlay pods are macvlan devices of the nodes'
 * NIC (`underlayAttachment: macvlan`), end to end in namespaces (see
 * world.ts): the router's shim lets each node reach its macvlan pods and
 * be their way into the overlay; every pair reaches the other both ways on
 * the path the model says (vxlan counters, switch ports, shim counters),
 * the outside reaches macvlan pods on the fabric and still never an overlay
 * pod, the fabric keeps the NIC's MAC for the node's address, and the shim
 * goes when its network goes.
 */

import assert from "node:assert/strict";
import {
  createHybridWorld,
  destroyHybridWorld,
  HYBRID_MACVLAN_YAML,
  OUTSIDE_IP,
  pings,
  syncNode,
  writeNodeList,
} from "./world.ts";
import { checkPair, type Path, vxlanCounts } from "./paths.ts";
import { run } from "../helpers/netns.ts";
import { shimMac } from "../../hybrid/shim.ts";
import type { TestNetns } from "../helpers/netns.ts";

interface LinkInfo {
  ifname: string;
  address: string;
  linkinfo?: { info_kind: string; info_data?: { mode?: string } };
  ifalias?: string;
}

async function link(ns: TestNetns, dev: string): Promise<LinkInfo | undefined> {
  const links = await ns.ipJson<LinkInfo[]>("-d", "link", "show").catch(() => []);
  return links.find((l) => l.ifname === dev);
}

Deno.test({
  name: "hybrid macvlan: every pod pair both ways on its path through the shims; outside; ARP",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const w = await createHybridWorld(2, "macvlan");
    try {
      await writeNodeList(w);
      for (const n of w.nodes) assert.equal((await syncNode(w, n)).ok, true);
      const [n1] = w.nodes;
      const shim = await link(n1.ns, "hym-hy");
      assert.equal(shim?.linkinfo?.info_kind, "macvlan");
      assert.equal(shim?.linkinfo?.info_data?.mode, "bridge");
      const routes = await n1.ns.ipJson<{ dst: string; dev: string; prefsrc?: string }[]>(
        "route",
        "show",
        "proto",
        "210",
      );
      assert.deepEqual(routes.map((r) => [r.dst, r.dev, r.prefsrc]), [
        ["192.168.50.64/28", "hym-hy", n1.address],
      ]);

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

      const [ov1, ul1] = n1.pods;
      const vx0 = await vxlanCounts(w);
      assert.ok(await pings(w.outside, ul1.ip), "outside → macvlan underlay pod");
      assert.ok(await pings(ul1.ns, OUTSIDE_IP), "macvlan underlay pod → outside");
      assert.deepEqual(await vxlanCounts(w), vx0, "underlay ↔ outside must not use vxlan");
      assert.ok(await pings(n1.ns, ul1.ip), "node → its own macvlan pod (through the shim)");
      assert.ok(await pings(ov1.ns, OUTSIDE_IP), "overlay → outside (masqueraded)");

      // The fabric resolves the node's address to its NIC alone: the shim, hearing the same
      // request, does not answer it (one reply reaches the fabric's gateway, with the NIC's MAC).
      await w.fabric.exec(
        "nft",
        "add table arp t; add chain arp t in { type filter hook input priority 0; }; " +
          "add rule arp t in arp operation reply counter",
      );
      await run("ip", "-n", w.fabric.name, "neigh", "flush", "dev", "sw");
      assert.ok(await pings(w.fabric, n1.address), "fabric → node");
      await new Promise((r) => setTimeout(r, 300)); // a late second answer would arrive by now
      const counted = await w.fabric.exec("nft", "list", "chain", "arp", "t", "in");
      assert.match(counted, /counter packets 1 /, "ARP answered by more than the NIC");
      const nic = (await link(n1.ns, "eth0"))!.address;
      const neigh = await w.fabric.ipJson<{ lladdr?: string }[]>(
        "neigh",
        "show",
        n1.address,
        "dev",
        "sw",
      );
      assert.deepEqual(neigh.map((e) => e.lladdr), [nic], "the fabric took the shim's MAC");

      // Outside → overlay: not even when the gateway routes the overlay to a node.
      await run("ip", "-n", w.fabric.name, "route", "add", "10.250.0.0/16", "via", n1.address);
      assert.equal(await pings(w.outside, ov1.ip), false, "outside reached an overlay pod");
    } finally {
      await destroyHybridWorld(w);
    }
  },
});

Deno.test({
  name: "hybrid macvlan: the shim goes with its network, or when it is back on a bridge",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const w = await createHybridWorld(1, "macvlan");
    try {
      await writeNodeList(w);
      const [n1] = w.nodes;
      assert.equal((await syncNode(w, n1)).ok, true);
      assert.equal((await link(n1.ns, "hym-hy"))?.ifalias, "hydra-hybrid shim hy");
      // Killed between creating the shim and naming it: the next pass adopts it by its MAC.
      const mac = shimMac("hy", n1.address);
      assert.equal((await link(n1.ns, "hym-hy"))?.address, mac);
      await run("ip", "-n", n1.ns.name, "link", "del", "hym-hy");
      await run(
        "ip",
        ...["-n", n1.ns.name, "link", "add", "hym-hy", "link", "eth0", "address", mac],
        ...["type", "macvlan", "mode", "bridge"],
      );
      const index = async () =>
        (await n1.ns.ipJson<{ ifindex: number }[]>("link", "show", "hym-hy"))[0].ifindex;
      const before = await index();
      assert.equal((await syncNode(w, n1)).ok, true);
      assert.equal((await link(n1.ns, "hym-hy"))?.ifalias, "hydra-hybrid shim hy");
      assert.equal(await index(), before, "the unnamed shim was not adopted");
      // A device of the shim's name the router did not make is never touched.
      await run("ip", "-n", n1.ns.name, "link", "add", "hym-hz", "link", "eth0", "type", "macvlan");
      const hz = HYBRID_MACVLAN_YAML.replaceAll("hy-hy", "hy-hz").replace("name: hy", "name: hz")
        .replace("vni: 7000", "vni: 7001");
      await Deno.writeTextFile(w.config, hz);
      // The node's blocks of network hz: the same as of hy.
      const list = JSON.parse(await Deno.readTextFile(w.nodesFile));
      for (const n of list.nodes) {
        n.annotations["hydra.clusternet.io/hz.cidr"] = n.annotations["hydra.clusternet.io/hy.cidr"];
      }
      await Deno.writeTextFile(w.nodesFile, JSON.stringify(list));
      const conflict = await syncNode(w, n1);
      assert.equal(conflict.ok, false, "a foreign hym-hz was taken over");
      assert.match(
        conflict.networks[0].errors.join("\n"),
        /hym-hz exists and is not hydra's shim of network hz/,
      );
      assert.deepEqual(conflict.shimsRemoved, ["hym-hy"]);
      assert.equal(await link(n1.ns, "hym-hy"), undefined, "network hy is gone, its shim stayed");
      assert.equal((await link(n1.ns, "hym-hz"))?.ifalias, undefined);

      await run("ip", "-n", n1.ns.name, "link", "del", "hym-hz");
      assert.equal((await syncNode(w, n1)).ok, true);
      assert.equal((await link(n1.ns, "hym-hz"))?.ifalias, "hydra-hybrid shim hz");
      assert.equal(
        (await n1.ns.ipJson<unknown[]>("route", "show", "proto", "210", "dev", "hym-hz")).length,
        1,
      );
      // Back on a bridge: no shim, no route of the protocol left in the main table.
      await Deno.writeTextFile(w.config, hz.replace("\n    underlayAttachment: macvlan", ""));
      const back = await syncNode(w, n1);
      assert.equal(back.ok, true);
      assert.deepEqual(back.shimsRemoved, ["hym-hz"]);
      assert.equal(await link(n1.ns, "hym-hz"), undefined, "the shim stayed on a bridge network");
      assert.deepEqual(await n1.ns.ipJson<unknown[]>("route", "show", "proto", "210"), []);
    } finally {
      await destroyHybridWorld(w);
    }
  },
});
