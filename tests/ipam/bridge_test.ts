/**
 * The reference `bridge` plugin delegating its IPAM to hydra-ipam, found
 * in CNI_PATH through the launcher symlink, in a real network namespace.
 */

import assert from "node:assert/strict";
import { createNetns, deleteNetns, tryRun, uniqueName, withTempDir } from "../helpers/netns.ts";
import {
  execPlugin,
  randomV4Subnet24,
  randomV6Subnet64,
  referenceDir,
  repoRoot,
  reservedNames,
  snapshot,
} from "./helpers.ts";

interface AddrInfo {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number }[];
}

Deno.test("reference bridge with hydra-ipam: dual-stack ADD, CHECK, DEL in a real netns", async () => {
  const ns = await createNetns("hyib");
  const bridge = uniqueName("hyib");
  try {
    await withTempDir(async (dataDir) => {
      const v4 = randomV4Subnet24();
      const v6 = randomV6Subnet64();
      const p4 = v4.split(".").slice(0, 3).join(".");
      const p6 = v6.replace("::/64", "::");
      const network = uniqueName("ipamnet");
      const config = {
        cniVersion: "1.0.0",
        name: network,
        type: "bridge",
        bridge,
        // No gateway role: the host's forwarding settings stay untouched.
        isGateway: false,
        ipam: {
          type: "hydra-ipam",
          dataDir,
          ranges: [[{ subnet: v4 }], [{ subnet: v6 }]],
          // An explicit gw: the reference bridge's CHECK wants routes exactly as it installed them.
          routes: [{ dst: "198.18.0.0/15", gw: `${p4}.1` }],
        },
      };
      const env = {
        containerId: "bridge-ipam-test",
        ifName: "eth0",
        netns: ns.path,
        path: `${repoRoot}/bin:${referenceDir}`,
      };
      const bridgePlugin = `${referenceDir}/bridge`;
      const store = `${dataDir}/${network}`;

      const add = await execPlugin(bridgePlugin, { ...env, command: "ADD" }, config);
      assert.equal(add.code, 0, `${JSON.stringify(add.json)}\n${add.stderr}`);
      const result = add.json as {
        interfaces: { name: string; sandbox?: string }[];
        ips: { address: string; gateway: string; interface: number }[];
      };
      assert.deepEqual(
        result.ips.map((i) => [i.address, i.gateway]),
        [[`${p4}.2/24`, `${p4}.1`], [`${p6}2/64`, `${p6}1`]],
      );
      assert.equal(result.interfaces[result.ips[0].interface].sandbox, ns.path);

      const links = await ns.ipJson<AddrInfo[]>("addr", "show", "dev", "eth0");
      const addrs = links[0].addr_info.map((a) => `${a.local}/${a.prefixlen}`);
      assert.ok(addrs.includes(`${p4}.2/24`), addrs.join(" "));
      assert.ok(addrs.includes(`${p6}2/64`), addrs.join(" "));
      const routes = await ns.ipJson<{ dst: string; gateway?: string }[]>("route", "show");
      assert.ok(routes.some((r) => r.dst === "198.18.0.0/15" && r.gateway === `${p4}.1`));

      const snap = await snapshot(store);
      assert.deepEqual(reservedNames(snap), [`${p4}.2`, `${p6}2`]);
      assert.equal(snap[`${p4}.2`], "bridge-ipam-test\r\neth0");

      // CHECK goes through bridge to hydra-ipam, which finds the reservations.
      const check = await execPlugin(
        bridgePlugin,
        { ...env, command: "CHECK" },
        { ...config, prevResult: add.json },
      );
      assert.equal(check.code, 0, `${JSON.stringify(check.json)}\n${check.stderr}`);

      const del = await execPlugin(
        bridgePlugin,
        { ...env, command: "DEL" },
        { ...config, prevResult: add.json },
      );
      assert.equal(del.code, 0, `${JSON.stringify(del.json)}\n${del.stderr}`);
      assert.deepEqual(reservedNames(await snapshot(store)), []);
      assert.deepEqual(await ns.ipJson("link", "show", "dev", "eth0").catch(() => []), []);
    });
  } finally {
    await deleteNetns(ns);
    await tryRun("ip", "link", "del", bridge);
  }
});
