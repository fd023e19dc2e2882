/**
 * The meta-CNI exec'd through the launcher, as a runtime would, with
 * Debian's reference plugins as delegates, in real network namespaces.
 * hydra runs inside a "node" namespace, so bridges, veth host ends and the
 * macvlan parent never touch the real host.
 */

import assert from "node:assert/strict";
import { run } from "../helpers/netns.ts";
import {
  addresses,
  ipamReservations,
  linkName,
  links,
  listFiles,
  withWorld,
  type World,
} from "./harness.ts";

function hostLocal(w: World, subnet: string) {
  return { type: "host-local", dataDir: w.dataDir, ranges: [[{ subnet: `${subnet}.0/24` }]] };
}

Deno.test("meta-CNI ADD/CHECK/DEL with bridge, macvlan, ptp, loopback and host-local", async () => {
  await withWorld(1, async (w) => {
    const pod = w.pods[0];
    const bridge = linkName("hbr");
    const parent = linkName("hmv");
    await run(
      "ip",
      "-n",
      w.node.name,
      "link",
      "add",
      parent,
      "type",
      "veth",
      "peer",
      "name",
      `${parent}p`,
    );
    await run("ip", "-n", w.node.name, "link", "set", parent, "up");
    await run("ip", "-n", w.node.name, "link", "set", `${parent}p`, "up");
    const [s1, s2, s3] = [w.subnet(), w.subnet(), w.subnet()];
    const conf = {
      cniVersion: "1.0.0",
      name: "pods",
      type: "hydra",
      cacheDir: w.cacheDir,
      delegates: [
        {
          cniVersion: "1.0.0",
          name: "tbr",
          plugins: [{ type: "bridge", bridge, isGateway: true, ipam: hostLocal(w, s1) }],
        },
        {
          cniVersion: "1.0.0",
          name: "tmv",
          type: "macvlan",
          master: parent,
          mode: "bridge",
          ipam: hostLocal(w, s2),
        },
        { cniVersion: "0.4.0", name: "tptp", type: "ptp", ipam: hostLocal(w, s3), ifname: "p2p0" },
        { cniVersion: "1.0.0", name: "tlo", type: "loopback" },
      ],
    };
    const nodeBefore = await links(w.node);

    const add = await w.cni("ADD", conf);
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const result = add.json as {
      cniVersion: string;
      interfaces: { name: string; sandbox?: string }[];
      ips: { address: string }[];
    };
    assert.equal(result.cniVersion, "1.0.0");
    assert.equal(result.ips[0].address, `${s1}.2/24`);
    assert.ok(result.interfaces.some((i) => i.name === "eth0" && i.sandbox === pod.path));

    const podLinks = await links(pod);
    assert.deepEqual(addresses(podLinks.get("eth0")), [`${s1}.2/24`]);
    assert.deepEqual(addresses(podLinks.get("net1")), [`${s2}.2/24`]);
    assert.deepEqual(addresses(podLinks.get("p2p0")), [`${s3}.2/24`]);
    assert.equal(podLinks.get("net1")?.link_type, "ether");
    assert.ok(podLinks.get("lo")?.flags.includes("UP"));
    const nodeLinks = await links(w.node);
    assert.deepEqual(addresses(nodeLinks.get(bridge)), [`${s1}.1/24`]);
    assert.equal(
      [...nodeLinks.values()].filter((l) => l.master === bridge).length,
      1,
      "one veth on the bridge",
    );
    assert.deepEqual(await listFiles(`${w.cacheDir}`), [
      `attachments/ctr-${pod.name}-eth0`,
      `results/tbr-ctr-${pod.name}-eth0`,
      `results/tlo-ctr-${pod.name}-net3`,
      `results/tmv-ctr-${pod.name}-net1`,
      `results/tptp-ctr-${pod.name}-p2p0`,
    ]);
    assert.deepEqual(await ipamReservations(w.dataDir), [
      `tbr/${s1}.2`,
      `tmv/${s2}.2`,
      `tptp/${s3}.2`,
    ]);

    const check = await w.cni("CHECK", conf);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.equal(check.stdout, "");

    const del = await w.cni("DEL", conf);
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.equal(del.stdout, "");
    const podAfter = await links(pod);
    assert.deepEqual([...podAfter.keys()], ["lo"]);
    const nodeAfter = await links(w.node);
    // The reference bridge plugin keeps the bridge itself (it is shared); nothing else is left.
    assert.deepEqual([...nodeAfter.keys()].sort(), [...nodeBefore.keys(), bridge].sort());
    assert.equal([...nodeAfter.values()].filter((l) => l.master === bridge).length, 0);
    assert.deepEqual(await ipamReservations(w.dataDir), []);
    assert.deepEqual(await listFiles(w.cacheDir), []);

    // DEL again: everything is already gone, still a success.
    const again = await w.cni("DEL", conf);
    assert.equal(again.code, 0, again.stdout);
  });
});

Deno.test("ADD failing in the second delegate leaves nothing of the first", async () => {
  await withWorld(1, async (w) => {
    const pod = w.pods[0];
    const bridge = linkName("hbr");
    const [s1, s2] = [w.subnet(), w.subnet()];
    const conf = {
      cniVersion: "1.0.0",
      name: "pods",
      type: "hydra",
      cacheDir: w.cacheDir,
      delegates: [
        { cniVersion: "1.0.0", name: "tbr", type: "bridge", bridge, ipam: hostLocal(w, s1) },
        {
          cniVersion: "1.0.0",
          name: "tmv",
          type: "macvlan",
          master: linkName("nope"),
          ipam: hostLocal(w, s2),
        },
      ],
    };
    const add = await w.cni("ADD", conf);
    assert.notEqual(add.code, 0);
    assert.equal(typeof add.json?.code, "number");
    assert.match(String(add.json?.msg), /error adding network "tmv" \(interface net1\)/);
    assert.deepEqual([...(await links(pod)).keys()], ["lo"]);
    const nodeLinks = await links(w.node);
    assert.equal([...nodeLinks.values()].filter((l) => l.master === bridge).length, 0);
    assert.deepEqual(await ipamReservations(w.dataDir), []);
    assert.deepEqual(await listFiles(w.cacheDir), []);
    // The runtime's DEL after a failed ADD succeeds.
    assert.equal((await w.cni("DEL", conf)).code, 0);
  });
});

Deno.test("bad input: error JSON on stdout with the right code, non-zero exit, nothing changed", async () => {
  await withWorld(1, async (w) => {
    const pod = w.pods[0];
    const good = {
      cniVersion: "1.0.0",
      name: "pods",
      type: "hydra",
      cacheDir: w.cacheDir,
      delegates: [{
        cniVersion: "1.0.0",
        name: "tbr",
        type: "bridge",
        bridge: linkName("hbr"),
        ipam: hostLocal(w, w.subnet()),
      }],
    };
    const cases: {
      what: string;
      conf: unknown;
      env?: Record<string, string>;
      code: number;
      msg: RegExp;
    }[] = [
      { what: "not JSON", conf: "{nope", code: 6, msg: /error parsing network config/ },
      { what: "no name", conf: { ...good, name: undefined }, code: 7, msg: /missing network name/ },
      { what: "bad name", conf: { ...good, name: "a/b" }, code: 7, msg: /network name "a\/b"/ },
      {
        what: "unknown version",
        conf: { ...good, cniVersion: "3.0.0" },
        code: 1,
        msg: /incompatible CNI versions/,
      },
      {
        what: "CHECK at 0.3.1",
        conf: { ...good, cniVersion: "0.3.1" },
        env: { CNI_COMMAND: "CHECK" },
        code: 1,
        msg: /does not allow CHECK/,
      },
      {
        what: "unknown command",
        conf: good,
        env: { CNI_COMMAND: "UP" },
        code: 4,
        msg: /unknown CNI_COMMAND: UP/,
      },
      {
        what: "missing env",
        conf: good,
        env: { CNI_IFNAME: "", CNI_PATH: "" },
        code: 4,
        msg: /\[CNI_IFNAME,CNI_PATH\] missing/,
      },
      {
        what: "long ifname",
        conf: good,
        env: { CNI_IFNAME: "a-very-long-ifname" },
        code: 4,
        msg: /CNI_IFNAME/,
      },
      {
        what: "ifname with /",
        conf: good,
        env: { CNI_IFNAME: "eth/0" },
        code: 4,
        msg: /CNI_IFNAME/,
      },
      {
        what: "container ID with path",
        conf: good,
        env: { CNI_CONTAINERID: "../../etc" },
        code: 4,
        msg: /CNI_CONTAINERID/,
      },
      {
        what: "relative netns",
        conf: good,
        env: { CNI_NETNS: "netns/x" },
        code: 4,
        msg: /CNI_NETNS/,
      },
      {
        what: "netns that does not exist",
        conf: good,
        env: { CNI_NETNS: "/var/run/netns/hydra-no-such" },
        code: 4,
        msg: /CNI_NETNS/,
      },
      {
        what: "own netns",
        conf: good,
        env: { CNI_NETNS: "/proc/self/ns/net" },
        code: 8,
        msg: /should not be the same/,
      },
      {
        what: "delegate type with a path",
        conf: { ...good, delegates: [{ name: "x", type: "../../bin/sh" }] },
        code: 7,
        msg: /delegates\[0\]: "type": invalid plugin type/,
      },
      {
        what: "delegate plugin missing",
        conf: { ...good, delegates: [{ name: "x", type: "no-such-plugin" }] },
        code: 7,
        msg: /failed to find plugin "no-such-plugin"/,
      },
      {
        what: "no delegates",
        conf: { ...good, delegates: [] },
        code: 7,
        msg: /"delegates" is empty/,
      },
    ];
    const podBefore = JSON.stringify(await pod.ipJson("addr"));
    const nodeBefore = JSON.stringify(await w.node.ipJson("addr"));
    for (const c of cases) {
      const out = await w.cni(c.env?.CNI_COMMAND ?? "ADD", c.conf, { env: c.env });
      assert.notEqual(out.code, 0, c.what);
      assert.ok(out.json, `${c.what}: stdout is JSON: ${out.stdout}`);
      assert.equal(out.json.code, c.code, `${c.what}: ${out.stdout}`);
      assert.match(String(out.json.msg), c.msg, c.what);
    }
    assert.equal(JSON.stringify(await pod.ipJson("addr")), podBefore);
    assert.equal(JSON.stringify(await w.node.ipJson("addr")), nodeBefore);
    assert.deepEqual(await listFiles(w.dir), []);
  });
});

Deno.test("results come back in the caller's version, whatever the delegates speak", async () => {
  await withWorld(1, async (w) => {
    const bridge = linkName("hbr");
    const s1 = w.subnet();
    for (
      const [hydraVersion, delegateVersion] of [["0.2.0", "1.0.0"], ["0.3.1", "0.4.0"], [
        "1.1.0",
        "0.3.1",
      ]]
    ) {
      const conf = {
        cniVersion: hydraVersion,
        name: "pods",
        type: "hydra",
        cacheDir: w.cacheDir,
        delegates: [{
          cniVersion: delegateVersion,
          name: "tbr",
          type: "bridge",
          bridge,
          ipam: hostLocal(w, s1),
        }],
      };
      const add = await w.cni("ADD", conf);
      assert.equal(add.code, 0, add.stdout + add.stderr);
      assert.equal(add.json?.cniVersion, hydraVersion);
      if (hydraVersion === "0.2.0") {
        assert.deepEqual(add.json?.ip4, { ip: `${s1}.2/24`, gateway: `${s1}.1` }); // first ADD
      } else {
        const ips = add.json?.ips as { version?: string; address: string }[];
        assert.match(ips[0].address, new RegExp(`^${s1.replaceAll(".", "\\.")}\\.\\d+/24$`));
        assert.equal(ips[0].version, hydraVersion === "1.1.0" ? undefined : "4");
      }
      assert.equal((await w.cni("DEL", conf)).code, 0);
      assert.deepEqual(await listFiles(w.cacheDir), []);
    }
  });
});
