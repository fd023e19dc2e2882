import assert from "node:assert/strict";
import { rejectsCni } from "../tests/cni/helpers.ts";
import { withTempDir } from "../tests/helpers/netns.ts";
import {
  type CacheEntry,
  cacheFilePath,
  decodeCacheEntry,
  deleteCacheEntry,
  encodeCacheEntry,
  fromBase64,
  listCacheEntries,
  readCachedResult,
  readCacheEntry,
  toBase64,
  writeCacheEntry,
} from "./cache.ts";

const confBytes = new TextEncoder().encode(
  '{"cniVersion":"1.0.0","name":"net1","plugins":[{"type":"bridge"}]}',
);

function entry(over: Partial<CacheEntry> = {}): CacheEntry {
  return {
    kind: "cniCacheV1",
    containerId: "c1",
    config: confBytes,
    ifName: "eth0",
    networkName: "net1",
    netns: "/run/netns/p1",
    cniArgs: [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "p"]],
    capabilityArgs: { portMappings: [{ hostPort: 80, containerPort: 8080, protocol: "tcp" }] },
    result: { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] },
    ...over,
  };
}

Deno.test("encodeCacheEntry writes libcni's fields in its order, config as base64", () => {
  const text = encodeCacheEntry(entry());
  assert.equal(
    text,
    `{"kind":"cniCacheV1","containerId":"c1","config":"${
      btoa(new TextDecoder().decode(confBytes))
    }",` +
      `"ifName":"eth0","networkName":"net1","netns":"/run/netns/p1",` +
      `"cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAME","p"]],` +
      `"capabilityArgs":{"portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp"}]},` +
      `"result":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]}}`,
  );
  // Empty optional fields are left out, as Go's omitempty does.
  const bare = JSON.parse(
    encodeCacheEntry(entry({ netns: "", cniArgs: [], capabilityArgs: {}, result: undefined })),
  );
  assert.deepEqual(Object.keys(bare), ["kind", "containerId", "config", "ifName", "networkName"]);
  assert.deepEqual(decodeCacheEntry(text), entry());
});

Deno.test("base64 round-trips arbitrary bytes", () => {
  const bytes = new Uint8Array(70000).map((_, i) => (i * 7) & 0xff);
  assert.deepEqual(fromBase64(toBase64(bytes)), bytes);
  assert.equal(toBase64(new Uint8Array([0xff, 0x00])), "/wA=");
});

Deno.test("cacheFilePath is <dir>/results/<net>-<id>-<if>; empty parts are refused", () => {
  assert.equal(cacheFilePath("/var/lib/cni", "n", "c", "eth0"), "/var/lib/cni/results/n-c-eth0");
  assert.throws(() => cacheFilePath("/x", "", "c", "eth0"));
});

Deno.test("write/read/delete: folder 0700, file 0600, nothing left behind", async () => {
  await withTempDir(async (dir) => {
    await writeCacheEntry(dir, entry());
    const path = `${dir}/results/net1-c1-eth0`;
    assert.equal((await Deno.stat(`${dir}/results`)).mode! & 0o777, 0o700);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.deepEqual([...Deno.readDirSync(`${dir}/results`)].map((e) => e.name), ["net1-c1-eth0"]);
    assert.deepEqual(await readCacheEntry(dir, "net1", "c1", "eth0"), entry());
    assert.equal(await readCacheEntry(dir, "net1", "c2", "eth0"), undefined);
    assert.equal(await deleteCacheEntry(dir, "net1", "c1", "eth0"), true);
    assert.equal(await deleteCacheEntry(dir, "net1", "c1", "eth0"), false);
    assert.deepEqual([...Deno.readDirSync(`${dir}/results`)], []);
  });
});

Deno.test("readCachedResult converts to the asked version and reads old bare-result files", async () => {
  await withTempDir(async (dir) => {
    await writeCacheEntry(dir, entry());
    assert.deepEqual(await readCachedResult(dir, "net1", "0.4.0", "c1", "eth0"), {
      cniVersion: "0.4.0",
      ips: [{ version: "4", address: "10.0.0.2/24" }],
    });
    // Before cniCacheV1, the file held just the result.
    await Deno.writeTextFile(
      `${dir}/results/old-c1-eth0`,
      '{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.0.0.9/24"}]}',
    );
    assert.deepEqual(await readCachedResult(dir, "old", "1.0.0", "c1", "eth0"), {
      cniVersion: "1.0.0",
      ips: [{ address: "10.0.0.9/24" }],
    });
    // A bare result is not an entry.
    assert.equal((await rejectsCni(() => readCacheEntry(dir, "old", "c1", "eth0"))).code, 6);
    await Deno.writeTextFile(`${dir}/results/broken-c1-eth0`, "{");
    assert.equal(
      (await rejectsCni(() => readCachedResult(dir, "broken", "1.0.0", "c1", "eth0"))).code,
      6,
    );
  });
});

Deno.test("listCacheEntries lists current entries in name order, optionally for one container", async () => {
  await withTempDir(async (dir) => {
    assert.deepEqual(await listCacheEntries(dir), []);
    await writeCacheEntry(dir, entry({ networkName: "b", containerId: "c1" }));
    await writeCacheEntry(dir, entry({ networkName: "a", containerId: "c2", ifName: "net1" }));
    await writeCacheEntry(dir, entry({ networkName: "a", containerId: "c1" }));
    await Deno.writeTextFile(`${dir}/results/junk-c1-eth0`, "not json");
    await Deno.writeTextFile(`${dir}/results/legacy-c1-eth0`, '{"cniVersion":"0.2.0"}');
    const all = await listCacheEntries(dir);
    assert.deepEqual(all.map((e) => `${e.networkName}/${e.containerId}/${e.ifName}`), [
      "a/c1/eth0",
      "a/c2/net1",
      "b/c1/eth0",
    ]);
    const c2 = await listCacheEntries(dir, "c2");
    assert.deepEqual(c2.map((e) => e.networkName), ["a"]);
  });
});
