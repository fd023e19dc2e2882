/**
 * hydra-vxlan on two "nodes" (namespaces joined by a veth underlay), each
 * with a pod: the plugin builds bridge, pod link and tunnel; the test then
 * programs routes, neighbours and FDB entries the way `hydra route sync`
 * does, and the pods reach each other across the overlay.
 */

import assert from "node:assert/strict";
import { createNetns, deleteNetns } from "../helpers/netns.ts";
import { type TestNode, withTwoNodes } from "../helpers/two_nodes.ts";
import { vtepMac } from "../../plugins/vxlan.ts";
import { containerId, hydraBin, inNs, invoke, mustInvoke, reaches, reference } from "./helpers.ts";

const ref = reference();
const BIN = `${hydraBin}/hydra-vxlan`;

type Node = TestNode;

function withNodes(fn: (a: Node, b: Node, dir: string) => Promise<void>): Promise<void> {
  return withTwoNodes({
    underlays: ["10.250.0.1", "10.250.0.2"],
    podRanges: ["10.42.1.0/24", "10.42.2.0/24"],
    prefix: "hyvx",
  }, fn);
}

function conf(node: Node, dir: string) {
  return {
    cniVersion: "1.1.0",
    name: "blue",
    type: "hydra-vxlan",
    vni: 42,
    dev: "ul0",
    ipam: {
      type: "hydra-ipam",
      subnet: node.podRange,
      routes: [{ dst: "10.42.0.0/16" }],
      dataDir: `${dir}/${node.ns.name}`,
    },
  };
}

/** What the router programs on `node` for the remote `other`. */
async function program(node: Node, other: Node): Promise<void> {
  const gw = other.podRange.replace(/0\/24$/, "1");
  const mac = vtepMac(other.underlay);
  await inNs(
    node.ns,
    "ip",
    "route",
    "add",
    other.podRange,
    "via",
    gw,
    "dev",
    "hydravx42",
    "onlink",
  );
  await inNs(
    node.ns,
    "ip",
    "neigh",
    "add",
    gw,
    "lladdr",
    mac,
    "dev",
    "hydravx42",
    "nud",
    "permanent",
  );
  await inNs(node.ns, "bridge", "fdb", "append", mac, "dev", "hydravx42", "dst", other.underlay);
}

interface IpLinkDetail {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

Deno.test("vxlan: pods on two nodes reach each other once routes, neighbours and FDB are programmed", async () => {
  await withNodes(async (a, b, dir) => {
    const results = [];
    for (const n of [a, b]) {
      results.push(
        await mustInvoke(n.ns, BIN, {
          command: "ADD",
          containerId: containerId(),
          netns: n.pod.path,
          ifName: "eth0",
          path: [ref.dir],
        }, conf(n, dir)),
      );
    }
    const ra = results[0]!;
    const names = (ra.interfaces as { name: string; sandbox?: string }[]).map((i) => i.name);
    assert.equal(names.length, 4);
    assert.deepEqual([names[0], names[2], names[3]], ["hydrabr42", "eth0", "hydravx42"]);
    assert.match(names[1], /^veth[0-9a-f]{8}$/);
    assert.deepEqual(ra.ips, [{ address: "10.42.1.2/24", gateway: "10.42.1.1", interface: 2 }]);
    assert.deepEqual(ra.routes, [{ dst: "10.42.0.0/16" }]);

    const [vx] = await a.ns.ipJson<IpLinkDetail[]>("-d", "link", "show", "hydravx42");
    assert.equal(vx.linkinfo?.info_kind, "vxlan");
    assert.equal(vx.linkinfo?.info_data?.id, 42);
    assert.equal(vx.linkinfo?.info_data?.port, 4789);
    assert.equal(vx.linkinfo?.info_data?.learning, false);
    assert.equal(vx.linkinfo?.info_data?.local, "10.250.0.1");
    assert.equal(vx.address, vtepMac("10.250.0.1"));
    assert.equal(vx.mtu, 1450);
    assert.ok(vx.flags.includes("UP"));
    const [eth0] = await a.pod.ipJson<IpLinkDetail[]>("link", "show", "eth0");
    assert.equal(eth0.mtu, 1450);
    const fdb = await inNs(a.ns, "bridge", "fdb", "show", "dev", "hydravx42");
    assert.doesNotMatch(fdb, /dst/, "the plugin must leave the tunnel's FDB to the router");

    const podB = "10.42.2.2";
    assert.equal(await reaches(a.pod, podB), false, "reachable before any route was programmed");
    await program(a, b);
    await program(b, a);
    assert.ok(await reaches(a.pod, podB), "pod on node A cannot reach the pod on node B");
    assert.ok(await reaches(b.pod, "10.42.1.2"), "pod on node B cannot reach the pod on node A");
  });
});

Deno.test("vxlan: the tunnel is shared by the node's pods and outlives their DEL; CHECK sees it", async () => {
  await withNodes(async (a, _b, dir) => {
    const second = await createNetns("hyp");
    try {
      const invs = [a.pod, second].map((p) => ({
        containerId: containerId(),
        netns: p.path,
        ifName: "eth0",
        path: [ref.dir],
      }));
      const results = [];
      for (const inv of invs) {
        results.push(await mustInvoke(a.ns, BIN, { ...inv, command: "ADD" }, conf(a, dir)));
      }
      const tunnels = await a.ns.ipJson<unknown[]>("link", "show", "type", "vxlan");
      assert.equal(tunnels.length, 1);
      for (const [i, inv] of invs.entries()) {
        await mustInvoke(a.ns, BIN, { ...inv, command: "CHECK" }, {
          ...conf(a, dir),
          prevResult: results[i],
        });
        await mustInvoke(a.ns, BIN, { ...inv, command: "DEL" }, {
          ...conf(a, dir),
          prevResult: results[i],
        });
      }
      const left = (await a.ns.ipJson<{ ifname: string }[]>("link", "show")).map((l) => l.ifname);
      assert.deepEqual(left.sort(), ["hydrabr42", "hydravx42", "lo", "ul0"]);
    } finally {
      await deleteNetns(second);
    }
  });
});

Deno.test("vxlan: a clashing device, a missing vni or underlay are refused and leave nothing behind", async () => {
  await withNodes(async (a, _b, dir) => {
    const inv = {
      command: "ADD" as const,
      containerId: containerId(),
      netns: a.pod.path,
      ifName: "eth0",
      path: [ref.dir],
    };
    const hostLinks = async () =>
      (await a.ns.ipJson<{ ifname: string }[]>("link", "show")).map((l) => l.ifname).sort();
    const podLinks = async () =>
      (await a.pod.ipJson<{ ifname: string }[]>("link", "show")).map((l) => l.ifname);

    const noVni = await invoke(a.ns, BIN, inv, { ...conf(a, dir), vni: undefined });
    assert.equal(noVni.json?.code, 7);
    const noDev = await invoke(a.ns, BIN, inv, { ...conf(a, dir), dev: "nosuch0" });
    assert.equal(noDev.json?.code, 7);
    assert.match(String(noDev.json?.msg), /nosuch0/);

    await inNs(
      a.ns,
      "ip",
      "link",
      "add",
      "hydravx42",
      "type",
      "vxlan",
      "id",
      "7",
      "dstport",
      "4789",
      "dev",
      "ul0",
    );
    const before = await hostLinks();
    const clash = await invoke(a.ns, BIN, inv, conf(a, dir));
    assert.equal(clash.json?.code, 7);
    assert.match(String(clash.json?.msg), /hydravx42.*vni 42/);
    assert.deepEqual(await hostLinks(), before);
    assert.deepEqual(await podLinks(), ["lo"]);
    const reserved = [...Deno.readDirSync(dir)].length;
    assert.equal(reserved, 0, "no address may be reserved by a refused ADD");
  });
});
