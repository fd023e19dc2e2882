/**
 * engine/plug.ts with the reference bridge and host-local plugins and a
 * real pod namespace: a network plugged into a recorded attachment is in
 * the namespace and the record, names already taken are refused before
 * anything runs, a failed ADD leaves nothing behind, an unplug takes the
 * network and its address away (never the default network), and a plug a
 * crash left half-done is undone; a record made under `chrootDir` runs the
 * plugged network's plugins chrooted, as at creation.
 *
 * Needs root and the reference plugins (tests/infra/build-peers.sh).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { referencePluginDir } from "../infra/peers.ts";
import { createNetns, deleteNetns, run, uniqueName, withTempDir } from "../helpers/netns.ts";
import { parseConfList } from "../../cni/conf.ts";
import { createLogger } from "../../pkg/log.ts";
import {
  type PlugNetwork,
  plugNetwork,
  type PlugTarget,
  recordedResult,
  settlePending,
  unplugNetwork,
} from "../../engine/plug.ts";
import { loadRecord, RECORD_KIND, saveRecord } from "../../engine/record.ts";

const CID = "c0ffee";
const ARGS =
  `IgnoreUnknown=true;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=${CID}`;

function network(name: string, bridge: string, subnet: string, ipamDir: string, ifName: string) {
  const conf = {
    cniVersion: "1.1.0",
    name,
    plugins: [{
      type: "bridge",
      bridge,
      ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: ipamDir },
    }],
  };
  const net: PlugNetwork = {
    network: `ns/${name}`,
    ifName,
    list: parseConfList(new TextEncoder().encode(JSON.stringify(conf)), name),
    addArgs: ARGS,
    delArgs: ARGS,
    capabilityArgs: {},
  };
  return net;
}

async function links(netns: string): Promise<string[]> {
  const out = JSON.parse(await run("ip", "-n", netns.split("/").pop()!, "-j", "link", "show"));
  return (out as { ifname: string }[]).map((l) => l.ifname).sort();
}

function reserved(ipamDir: string, name: string): string[] {
  try {
    return [...Deno.readDirSync(join(ipamDir, name))].map((e) => e.name).filter((n) =>
      /^[0-9.]+$/.test(n)
    );
  } catch {
    return [];
  }
}

Deno.test("plug and unplug one network of a recorded attachment", async () => {
  const pod = await createNetns("hpl");
  const bridge = uniqueName("hplb");
  try {
    await withTempDir(async (dir) => {
      const ipamDir = join(dir, "ipam");
      const cacheDir = join(dir, "cache");
      await saveRecord(cacheDir, {
        kind: RECORD_KIND,
        containerId: CID,
        ifName: "eth0",
        netns: pod.path,
        pod: { namespace: "ns", name: "p", uid: "u1" },
        selectionRules: { cniPath: [referencePluginDir()], namespaceIsolation: false },
        delegates: [{
          ifName: "eth0",
          network: "cluster",
          config: { cniVersion: "1.1.0", name: "cluster", plugins: [{ type: "loopback" }] },
        }],
      });
      const t: PlugTarget = {
        cacheDir,
        containerId: CID,
        recordIfName: "eth0",
        netns: pod.path,
        log: createLogger({ level: "off" }),
      };
      const blue = network("blue", bridge, "10.219.7.0/24", ipamDir, "net1");
      const result = await plugNetwork(t, blue) as { ips: { address: string }[] };
      assert.equal(result.ips[0].address, "10.219.7.2/24");
      assert.deepEqual(await links(pod.path), ["lo", "net1"]);
      let record = (await loadRecord(cacheDir, CID, "eth0"))!;
      assert.deepEqual(record.delegates.map((d) => [d.ifName, d.selected, d.pending]), [
        ["eth0", undefined, undefined],
        ["net1", true, undefined],
      ]);
      assert.deepEqual(await recordedResult(cacheDir, record, 1), result);

      // Names taken in the record or the namespace are refused before anything runs.
      await assert.rejects(plugNetwork(t, blue), /interface "net1" is taken by network "ns\/blue"/);
      await assert.rejects(
        plugNetwork(t, { ...blue, ifName: "lo" }),
        /"lo" already exists in the pod's network namespace/,
      );
      // A failing ADD leaves neither an interface nor a record entry.
      const broken = network("broken", bridge, "10.219.300.0/24", ipamDir, "net2");
      await assert.rejects(plugNetwork(t, broken), /error adding network "broken"/);
      assert.deepEqual(await links(pod.path), ["lo", "net1"]);
      assert.equal((await loadRecord(cacheDir, CID, "eth0"))!.delegates.length, 2);

      await assert.rejects(unplugNetwork(t, "eth0"), /not one of the networks the pod selected/);
      assert.equal(await unplugNetwork(t, "net1"), "ns/blue");
      assert.deepEqual(await links(pod.path), ["lo"]);
      assert.deepEqual(reserved(ipamDir, "blue"), []);
      assert.equal(await unplugNetwork(t, "net1"), undefined, "done already");

      // A plug a crash cut short (still marked pending) is undone, address and all.
      await plugNetwork(t, { ...blue, ifName: "net3" });
      record = (await loadRecord(cacheDir, CID, "eth0"))!;
      record.delegates[1].pending = true;
      await saveRecord(cacheDir, record);
      assert.deepEqual(await settlePending(t), ["net3"]);
      assert.deepEqual(await links(pod.path), ["lo"]);
      assert.deepEqual(reserved(ipamDir, "blue"), []);
      assert.deepEqual((await loadRecord(cacheDir, CID, "eth0"))!.delegates.map((d) => d.ifName), [
        "eth0",
      ]);
    });
  } finally {
    await deleteNetns(pod);
    await run("ip", "link", "del", bridge).catch(() => {});
  }
});

Deno.test("a record made under chrootDir runs a plugged network's plugins in that root", async () => {
  const pod = await createNetns("hpc");
  const bridge = uniqueName("hpcb");
  try {
    await withTempDir(async (dir) => {
      const cacheDir = join(dir, "cache");
      // A root without the plugins: run there, the plug cannot find its bridge plugin.
      const root = join(dir, "root");
      await Deno.mkdir(root);
      await saveRecord(cacheDir, {
        kind: RECORD_KIND,
        containerId: CID,
        ifName: "eth0",
        netns: pod.path,
        pod: { namespace: "ns", name: "p", uid: "u1" },
        selectionRules: {
          cniPath: [referencePluginDir()],
          namespaceIsolation: false,
          chrootDir: root,
        },
        delegates: [{
          ifName: "eth0",
          network: "cluster",
          config: { cniVersion: "1.1.0", name: "cluster", plugins: [{ type: "loopback" }] },
        }],
      });
      const t: PlugTarget = {
        cacheDir,
        containerId: CID,
        recordIfName: "eth0",
        netns: pod.path,
        log: createLogger({ level: "off" }),
      };
      const blue = network("blue", bridge, "10.219.8.0/24", join(dir, "ipam"), "net1");
      const err = await plugNetwork(t, blue).then(() => undefined, (e: Error) => e);
      assert.ok(err, "the plug ran outside the record's chrootDir");
      assert.match(err.message, /error adding network "blue"/);
      assert.deepEqual(await links(pod.path), ["lo"]);
      assert.equal((await loadRecord(cacheDir, CID, "eth0"))!.delegates.length, 1);
    });
  } finally {
    await deleteNetns(pod);
    await run("ip", "link", "del", bridge).catch(() => {});
  }
});
