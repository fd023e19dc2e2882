import assert from "node:assert/strict";
import { createConfCache, folderFingerprint, RACY_MS } from "./conf_cache.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-conf-cache-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function conf(name: string, subnet: string): string {
  return JSON.stringify({
    cniVersion: "1.1.0",
    name,
    type: "hydra-bridge",
    ipam: { type: "hydra-ipam", subnet },
  });
}

/** Writes a file and dates it `ageMs` back. */
function writeAged(path: string, text: string, ageMs: number): void {
  Deno.writeTextFileSync(path, text);
  const when = new Date(Date.now() - ageMs);
  Deno.utimeSync(path, when, when);
}

function subnetOf(list: { plugins: Record<string, unknown>[] }): unknown {
  return (list.plugins[0].ipam as Record<string, unknown>).subnet;
}

Deno.test("conf cache: an edited file is read again, also with the same size", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/blue.conf`;
    writeAged(path, conf("blue", "10.1.0.0/24"), 10 * RACY_MS);
    const cache = createConfCache(dir);
    assert.equal(subnetOf(await cache.load("blue")), "10.1.0.0/24");
    // Same length, new content, an older time stamp than any cached one.
    writeAged(path, conf("blue", "10.2.0.0/24"), 20 * RACY_MS);
    assert.equal(subnetOf(await cache.load("blue")), "10.2.0.0/24");
    // Just written: never trusted, read on every call.
    Deno.writeTextFileSync(path, conf("blue", "10.3.0.0/24"));
    assert.equal(subnetOf(await cache.load("blue")), "10.3.0.0/24");
    Deno.writeTextFileSync(path, conf("blue", "10.4.0.0/24"));
    assert.equal(subnetOf(await cache.load("blue")), "10.4.0.0/24");
  });
});

Deno.test("conf cache: added and removed files and a conflist's plugin folder count", async () => {
  await withDir(async (dir) => {
    const cache = createConfCache(dir);
    await assert.rejects(cache.load("red"), /no net configuration|no net configurations/);
    writeAged(`${dir}/red.conf`, conf("red", "10.5.0.0/24"), 10 * RACY_MS);
    assert.equal(subnetOf(await cache.load("red")), "10.5.0.0/24");
    writeAged(
      `${dir}/green.conflist`,
      JSON.stringify({ cniVersion: "1.1.0", name: "green", plugins: [{ type: "hydra-bridge" }] }),
      10 * RACY_MS,
    );
    await Deno.mkdir(`${dir}/green`);
    const extra = (value: string) => JSON.stringify({ type: "hydra-tuning", value });
    writeAged(`${dir}/green/10-a.conf`, extra("one"), 10 * RACY_MS);
    Deno.utimeSync(`${dir}/green`, new Date(0), new Date(0));
    assert.equal((await cache.load("green")).plugins[1].value, "one");
    writeAged(`${dir}/green/10-a.conf`, extra("two"), 20 * RACY_MS);
    assert.equal((await cache.load("green")).plugins[1].value, "two");
    await Deno.remove(`${dir}/red.conf`);
    await assert.rejects(cache.load("red"), /no net configuration/);
  });
});

Deno.test("conf cache: what a caller changes does not reach the next caller", async () => {
  await withDir(async (dir) => {
    writeAged(`${dir}/blue.conf`, conf("blue", "10.1.0.0/24"), 10 * RACY_MS);
    const cache = createConfCache(dir);
    const first = await cache.load("blue");
    (first.plugins[0].ipam as Record<string, unknown>).subnet = "changed";
    first.plugins.push({ type: "extra" });
    const second = await cache.load("blue");
    assert.equal(subnetOf(second), "10.1.0.0/24");
    assert.equal(second.plugins.length, 1);
  });
});

Deno.test("conf cache: no fingerprint for a missing folder or a fresh file", async () => {
  await withDir((dir) => {
    assert.equal(folderFingerprint(`${dir}/missing`), undefined);
    writeAged(`${dir}/a.conf`, "{}", 10 * RACY_MS);
    assert.notEqual(folderFingerprint(dir), undefined);
    Deno.writeTextFileSync(`${dir}/b.conf`, "{}");
    assert.equal(folderFingerprint(dir), undefined);
    return Promise.resolve();
  });
});
