import assert from "node:assert/strict";
import { inVethNetns as inNetns } from "../tests/helpers/netlink.ts";
import type { TestNetns } from "../tests/helpers/netns.ts";
import {
  addFdb,
  addLink,
  addNeigh,
  appendFdb,
  delFdb,
  delNeigh,
  isExists,
  isNotFound,
  linkIndex,
  listFdb,
  listNeighs,
  NetlinkError,
  NTF,
  NUD,
  replaceFdb,
  replaceNeigh,
} from "./mod.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

async function bridgeFdb(ns: TestNetns, ...args: string[]): Promise<Json[]> {
  const text = await ns.exec("bridge", "-j", "fdb", "show", ...args);
  return text.trim() ? JSON.parse(text) : [];
}

Deno.test(
  "permanent IPv4 and IPv6 neighbours: add, list, replace, delete",
  inNetns(async (h, ns) => {
    addNeigh(h, { link: "va", ip: "10.9.0.7", mac: "02:00:00:00:00:07" });
    addNeigh(h, { link: "va", ip: "fd09::7", mac: "02:00:00:00:00:08", flags: NTF.ROUTER });
    const ip = await ns.ipJson<Json[]>("neigh", "show", "dev", "va");
    const v4 = ip.find((n) => n.dst === "10.9.0.7")!;
    assert.equal(v4.lladdr, "02:00:00:00:00:07");
    assert.deepEqual(v4.state, ["PERMANENT"]);
    const v6 = (await ns.ipJson<Json[]>("-6", "neigh", "show", "dev", "va")).find((n) =>
      n.dst === "fd09::7"
    )!;
    assert.equal(v6.lladdr, "02:00:00:00:00:08");
    assert.equal(v6.router, null);

    const mine = listNeighs(h, { link: "va" });
    const n4 = mine.find((n) => n.ip === "10.9.0.7")!;
    assert.equal(n4.mac, "02:00:00:00:00:07");
    assert.equal(n4.state, NUD.PERMANENT);
    assert.equal(n4.family, 4);
    assert.equal(n4.index, linkIndex(h, "va"));
    assert.ok(mine.find((n) => n.ip === "fd09::7")!.flags & NTF.ROUTER);
    assert.deepEqual(listNeighs(h, { link: "va", family: 6 }).map((n) => n.ip), ["fd09::7"]);
    assert.deepEqual(listNeighs(h, { link: "vb" }), []);

    replaceNeigh(h, { link: "va", ip: "10.9.0.7", mac: "02:00:00:00:00:77" });
    const again = await ns.ipJson<Json[]>("neigh", "show", "10.9.0.7", "dev", "va");
    assert.equal(again[0].lladdr, "02:00:00:00:00:77");
    replaceNeigh(h, { link: "va", ip: "10.9.0.8", mac: "02:00:00:00:00:88", state: NUD.REACHABLE });
    assert.equal(
      listNeighs(h, { link: "va", family: 4 }).find((n) => n.ip === "10.9.0.8")?.mac,
      "02:00:00:00:00:88",
    );

    delNeigh(h, { link: "va", ip: "10.9.0.7" });
    delNeigh(h, { link: "va", ip: "fd09::7" });
    const left = await ns.ipJson<Json[]>("neigh", "show", "dev", "va");
    assert.ok(!left.some((n) => n.dst === "10.9.0.7" || n.dst === "fd09::7"));
  }),
);

Deno.test(
  "neighbour errors: EEXIST on duplicate add, ENOENT deleting a missing one",
  inNetns((h) => {
    addNeigh(h, { link: "va", ip: "10.9.0.7", mac: "02:00:00:00:00:07" });
    assert.throws(
      () => addNeigh(h, { link: "va", ip: "10.9.0.7", mac: "02:00:00:00:00:07" }),
      (e) => isExists(e),
    );
    assert.throws(
      () => delNeigh(h, { link: "va", ip: "10.9.0.99" }),
      (e) => e instanceof NetlinkError && e.code === "ENOENT" && isNotFound(e),
    );
    assert.throws(
      () => addNeigh(h, { link: 999999, ip: "10.9.0.7", mac: "02:00:00:00:00:07" }),
      (e) => isNotFound(e),
    );
  }),
);

Deno.test(
  "vxlan FDB: remote per MAC, several flood remotes on the zero MAC, delete one",
  inNetns(async (h, ns) => {
    addLink(h, {
      kind: "vxlan",
      name: "vx0",
      vni: 42,
      local: "10.9.0.1",
      port: 4789,
      learning: false,
      parent: "va",
    });
    addFdb(h, { link: "vx0", mac: "02:00:00:00:00:09", dst: "10.9.0.9" });
    appendFdb(h, { link: "vx0", mac: "00:00:00:00:00:00", dst: "10.9.0.10" });
    appendFdb(h, { link: "vx0", mac: "00:00:00:00:00:00", dst: "10.9.0.11" });
    addFdb(h, { link: "vx0", mac: "02:00:00:00:00:0a", dst: "10.9.0.12", port: 8472, vni: 43 });

    const ip = await bridgeFdb(ns, "dev", "vx0");
    const pairs = ip.map((e) => `${e.mac} ${e.dst}`).sort();
    assert.deepEqual(pairs, [
      "00:00:00:00:00:00 10.9.0.10",
      "00:00:00:00:00:00 10.9.0.11",
      "02:00:00:00:00:09 10.9.0.9",
      "02:00:00:00:00:0a 10.9.0.12",
    ]);
    assert.ok(ip.every((e) => e.state === "permanent" && e.flags.includes("self")));
    const special = ip.find((e) => e.mac === "02:00:00:00:00:0a")!;
    assert.equal(special.port, 8472);
    assert.equal(special.vni, 43);

    const mine = listFdb(h, { link: "vx0" });
    assert.deepEqual(mine.map((e) => `${e.mac} ${e.dst}`).sort(), pairs);
    const m = mine.find((e) => e.mac === "02:00:00:00:00:0a")!;
    assert.equal(m.port, 8472);
    assert.equal(m.vni, 43);
    assert.equal(m.state, NUD.PERMANENT);
    assert.ok(m.flags & NTF.SELF);

    assert.throws(
      () => addFdb(h, { link: "vx0", mac: "02:00:00:00:00:09", dst: "10.9.0.9" }),
      (e) => isExists(e),
    );
    replaceFdb(h, { link: "vx0", mac: "02:00:00:00:00:09", dst: "10.9.0.99" });
    assert.equal(
      listFdb(h, { link: "vx0" }).find((e) => e.mac === "02:00:00:00:00:09")?.dst,
      "10.9.0.99",
    );

    delFdb(h, { link: "vx0", mac: "00:00:00:00:00:00", dst: "10.9.0.10" });
    delFdb(h, { link: "vx0", mac: "02:00:00:00:00:09" });
    assert.deepEqual(
      (await bridgeFdb(ns, "dev", "vx0")).map((e) => `${e.mac} ${e.dst}`).sort(),
      ["00:00:00:00:00:00 10.9.0.11", "02:00:00:00:00:0a 10.9.0.12"],
    );
    assert.throws(() => delFdb(h, { link: "vx0", mac: "02:00:00:00:00:09" }), (e) => isNotFound(e));
  }),
);

Deno.test(
  "bridge FDB: a static entry held by the bridge for a port",
  inNetns(async (h, ns) => {
    addLink(h, { kind: "bridge", name: "br0", up: true });
    addLink(h, { kind: "veth", name: "p1", peer: { name: "p1b" }, master: "br0", up: true });
    addFdb(h, { link: "p1", mac: "02:00:00:00:01:01", target: "master" });
    const ip = await bridgeFdb(ns, "dev", "p1");
    const e = ip.find((x) => x.mac === "02:00:00:00:01:01")!;
    assert.equal(e.master, "br0");
    assert.equal(e.state, "permanent");
    const mine = listFdb(h, { master: "br0" }).find((x) => x.mac === "02:00:00:00:01:01")!;
    assert.equal(mine.index, linkIndex(h, "p1"));
    assert.equal(mine.master, linkIndex(h, "br0"));
    assert.equal(mine.flags & NTF.SELF, 0, "held by the bridge, not the port itself");
    delFdb(h, { link: "p1", mac: "02:00:00:00:01:01", target: "master" });
    assert.ok(!(await bridgeFdb(ns, "dev", "p1")).some((x) => x.mac === "02:00:00:00:01:01"));
  }),
);
