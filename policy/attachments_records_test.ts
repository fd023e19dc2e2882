import assert from "node:assert/strict";
import { withTempDir } from "../tests/helpers/netns.ts";
import { writeCacheEntry } from "../cni/cache.ts";
import { formatIpAddr } from "../ipaddr/ip.ts";
import { type AttachmentRecord, RECORD_KIND, saveRecord } from "../engine/record.ts";
import { recordAttachmentSource } from "./attachments_records.ts";

function record(containerId: string, ifName: string, delegates: [string, string, string?][]) {
  return {
    kind: RECORD_KIND,
    containerId,
    ifName,
    netns: `/var/run/netns/${containerId}`,
    pod: { namespace: "ns1", name: `pod-${containerId}`, uid: `uid-${containerId}` },
    delegates: delegates.map(([ifName, network, deleted]) => ({
      ifName,
      network,
      config: { cniVersion: "1.0.0", name: network.replace("/", "-"), plugins: [] },
      ...(deleted ? { deleted: true } : {}),
    })),
  } as AttachmentRecord;
}

async function cacheResult(dir: string, net: string, id: string, ifName: string, ip: string) {
  await writeCacheEntry(
    dir,
    {
      kind: "cniCacheV1",
      containerId: id,
      config: new TextEncoder().encode("{}"),
      ifName,
      networkName: net,
      result: { cniVersion: "1.1.0", ips: [{ address: ip }] },
    } as unknown as Parameters<typeof writeCacheEntry>[1],
  );
}

Deno.test("record source: secondary interfaces of meta and NRI records, with cached addresses", async () => {
  await withTempDir(async (dir) => {
    const meta = `${dir}/meta`;
    const nri = `${dir}/nri`;
    await saveRecord(
      meta,
      record("c1", "eth0", [["eth0", "kube-system/cluster"], ["net1", "ns1/blue"], [
        "net2",
        "ns1/green",
        "deleted",
      ]]),
    );
    await saveRecord(nri, record("s1", "net1", [["net1", "ns1/blue"], ["net2", "ns1/green"]]));
    await saveRecord(meta, { ...record("c2", "eth0", [["eth0", "x/y"]]), pod: undefined });
    await cacheResult(meta, "ns1-blue", "c1", "net1", "10.1.0.5/24");
    await Deno.writeTextFile(`${meta}/attachments/junk-eth0`, "{not json");
    const damaged: string[] = [];
    const source = recordAttachmentSource({
      folders: [{ cacheDir: meta, kind: "meta" }, { cacheDir: nri, kind: "nri" }],
      onError: (path) => damaged.push(path),
    });
    const list = await source.list();
    assert.deepEqual(
      list.map((
        a,
      ) => [
        a.pod.name,
        a.netns,
        a.interfaces.map((i) => [i.network, i.ifName, i.addresses.map(formatIpAddr)]),
      ]),
      [
        ["pod-c1", "/var/run/netns/c1", [["ns1/blue", "net1", ["10.1.0.5"]]]],
        ["pod-s1", "/var/run/netns/s1", [["ns1/blue", "net1", []], ["ns1/green", "net2", []]]],
      ],
    );
    assert.equal(damaged.length, 1);
  });
});

Deno.test("record source: a new record is noticed through inotify", async () => {
  await withTempDir(async (dir) => {
    await saveRecord(dir, record("c1", "eth0", [["net1", "ns1/blue"]]));
    const source = recordAttachmentSource({
      folders: [{ cacheDir: dir, kind: "meta" }],
      pollMs: 60_000,
    });
    let calls = 0;
    const w = source.watch(() => calls++);
    try {
      await new Promise((r) => setTimeout(r, 100));
      const before = calls;
      await saveRecord(dir, record("c3", "eth0", [["net1", "ns1/blue"]]));
      const end = Date.now() + 5_000;
      while (calls === before && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      assert.ok(calls > before, "told about the new record");
      assert.equal((await source.list()).length, 2);
    } finally {
      await w.stop();
    }
  });
});
