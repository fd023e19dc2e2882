/**
 * A real libcni client drives hydra: cnitool (built from
 * github.com/containernetworking/cni by tests/infra/build-peers.sh) runs
 * add/check/status/gc/del on a conflist whose plugin is hydra, inside a
 * "node" namespace so nothing lands on the real host. Also checks the result
 * cache both ways: hydra reads the file libcni writes, libcni reads the one
 * hydra writes.
 *
 * cnitool always caches under /var/lib/cni; the networks here have unique
 * names and their files are removed at the end.
 */

import assert from "node:assert/strict";
import { peerBin } from "../infra/peers.ts";
import { DEFAULT_CACHE_DIR, readCacheEntry, writeCacheEntry } from "../../cni/cache.ts";
import { uniqueName } from "../helpers/netns.ts";
import { clearCalls, makeFakePlugins, readCalls } from "./fakes.ts";
import { REPO_ROOT } from "./helpers.ts";
import {
  addresses,
  execIn,
  type HydraOutput,
  ipamReservations,
  linkName,
  links,
  listFiles,
  REFERENCE_CNI,
  withWorld,
  type World,
} from "../meta/harness.ts";

/** cnitool's container ID for a netns path: "cnitool-" + hex(sha512(path)[:10]). */
async function cnitoolContainerId(netnsPath: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-512", new TextEncoder().encode(netnsPath)),
  );
  return "cnitool-" + [...digest.slice(0, 10)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function cnitool(w: World, netconfDir: string, cniPath: string) {
  const bin = peerBin("cnitool");
  return (verb: string, net: string): Promise<HydraOutput> =>
    execIn(w.node, bin, [verb, net, w.pods[0].path], {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      NETCONFPATH: netconfDir,
      CNI_PATH: cniPath,
    }, "");
}

async function removeCnitoolCache(prefix: string): Promise<void> {
  for (const f of await listFiles(`${DEFAULT_CACHE_DIR}/results`)) {
    if (f.startsWith(`${prefix}-`)) {
      await Deno.remove(`${DEFAULT_CACHE_DIR}/results/${f}`).catch(() => {});
    }
  }
}

Deno.test("cnitool add/check/status/del through hydra, with the kernel state asserted", async () => {
  await withWorld(1, async (w) => {
    const net = uniqueName("hytool");
    const netconf = `${w.dir}/net.d`;
    await Deno.mkdir(netconf);
    const [s1, s2] = [w.subnet(), w.subnet()];
    const ipam = (s: string) => ({
      type: "host-local",
      dataDir: w.dataDir,
      ranges: [[{ subnet: `${s}.0/24` }]],
    });
    const bridge = linkName("hbr");
    const confText = JSON.stringify(
      {
        cniVersion: "1.1.0",
        name: net,
        plugins: [{
          type: "hydra",
          cacheDir: w.cacheDir,
          delegates: [
            {
              cniVersion: "1.0.0",
              name: "tbr",
              plugins: [{ type: "bridge", bridge, isGateway: true, ipam: ipam(s1) }],
            },
            { cniVersion: "1.0.0", name: "tptp", type: "ptp", ipam: ipam(s2) },
          ],
        }],
      },
      null,
      2,
    );
    await Deno.writeTextFile(`${netconf}/10-${net}.conflist`, confText);
    const tool = cnitool(w, netconf, `${REPO_ROOT}/bin:${REFERENCE_CNI}`);
    const pod = w.pods[0];
    const containerId = await cnitoolContainerId(pod.path);
    try {
      const add = await tool("add", net);
      assert.equal(add.code, 0, add.stdout + add.stderr);
      const result = add.json as { cniVersion: string; ips: { address: string }[] };
      assert.equal(result.cniVersion, "1.1.0");
      assert.equal(result.ips[0].address, `${s1}.2/24`);
      const podLinks = await links(pod);
      assert.deepEqual(addresses(podLinks.get("eth0")), [`${s1}.2/24`]);
      assert.deepEqual(addresses(podLinks.get("net1")), [`${s2}.2/24`]);

      // hydra reads the cache file libcni wrote for the hydra network.
      const entry = await readCacheEntry(DEFAULT_CACHE_DIR, net, containerId, "eth0");
      assert.ok(entry, "libcni cached the ADD");
      assert.equal(entry.containerId, containerId);
      assert.equal(entry.networkName, net);
      assert.equal(entry.ifName, "eth0");
      assert.equal(entry.netns, pod.path);
      assert.equal(new TextDecoder().decode(entry.config), confText);
      assert.deepEqual(entry.result, result);
      // hydra's own cache for its delegates has the same layout.
      assert.deepEqual(await listFiles(`${w.cacheDir}/results`), [
        `tbr-${containerId}-eth0`,
        `tptp-${containerId}-net1`,
      ]);

      const check = await tool("check", net);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      const status = await tool("status", net);
      assert.equal(status.code, 0, status.stdout + status.stderr);

      const del = await tool("del", net);
      assert.equal(del.code, 0, del.stdout + del.stderr);
      assert.deepEqual([...(await links(pod)).keys()], ["lo"]);
      assert.equal(await readCacheEntry(DEFAULT_CACHE_DIR, net, containerId, "eth0"), undefined);
      assert.deepEqual(await listFiles(w.cacheDir), []);
      assert.deepEqual(await ipamReservations(w.dataDir), []);

      // gc with no valid attachments: libcni DELs the cached attachment, then hydra GCs its delegates.
      assert.equal((await tool("add", net)).code, 0);
      assert.equal((await links(pod)).has("eth0"), true);
      const gc = await tool("gc", net);
      assert.equal(gc.code, 0, gc.stdout + gc.stderr);
      assert.deepEqual([...(await links(pod)).keys()], ["lo"]);
      assert.deepEqual(await listFiles(w.cacheDir), []);
      assert.deepEqual(await ipamReservations(w.dataDir), []);
    } finally {
      await removeCnitoolCache(net);
    }
  });
});

Deno.test("libcni reads the cache file hydra writes: cnitool check/del pass it as prevResult", async () => {
  await withWorld(1, async (w) => {
    const net = uniqueName("hyrec");
    const netconf = `${w.dir}/net.d`;
    const bin = `${w.dir}/bin`;
    await Deno.mkdir(netconf);
    await Deno.mkdir(bin);
    await makeFakePlugins(bin, ["recorder"]);
    const confText = JSON.stringify({
      cniVersion: "1.0.0",
      name: net,
      plugins: [{ type: "recorder" }],
    });
    await Deno.writeTextFile(`${netconf}/${net}.conflist`, confText);
    const containerId = await cnitoolContainerId(w.pods[0].path);
    const cached = {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: w.pods[0].path }],
      ips: [{ interface: 0, address: "10.99.0.7/24", gateway: "10.99.0.1" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.99.0.1" }],
      dns: { nameservers: ["10.99.0.53"] },
    };
    try {
      await writeCacheEntry(DEFAULT_CACHE_DIR, {
        kind: "cniCacheV1",
        containerId,
        config: new TextEncoder().encode(confText),
        ifName: "eth0",
        networkName: net,
        netns: w.pods[0].path,
        cniArgs: [["IgnoreUnknown", "1"]],
        result: cached,
      });
      const tool = cnitool(w, netconf, bin);
      const check = await tool("check", net);
      assert.equal(check.code, 0, check.stdout + check.stderr);
      const del = await tool("del", net);
      assert.equal(del.code, 0, del.stdout + del.stderr);
      const calls = await readCalls(bin);
      assert.deepEqual(calls.map((c) => c.command), ["CHECK", "DEL"]);
      for (const c of calls) {
        assert.deepEqual(c.stdin.prevResult, cached);
        assert.equal(c.containerId, containerId);
      }
      // libcni removed the file after its DEL.
      assert.equal(await readCacheEntry(DEFAULT_CACHE_DIR, net, containerId, "eth0"), undefined);
      await clearCalls(bin);
    } finally {
      await removeCnitoolCache(net);
    }
  });
});
