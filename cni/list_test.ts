import assert from "node:assert/strict";
import { rejectsCni } from "../tests/cni/helpers.ts";
import { clearCalls, failNext, makeFakePlugins, readCalls } from "../tests/cni/fakes.ts";
import { withTempDir } from "../tests/helpers/netns.ts";
import { readCacheEntry } from "./cache.ts";
import { parseConfList } from "./conf.ts";
import {
  addNetworkList,
  buildPluginConfig,
  checkNetworkList,
  delNetworkList,
  gcNetworkList,
  type RuntimeConf,
  statusNetworkList,
} from "./list.ts";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function list(version: string, extra: Record<string, unknown> = {}) {
  return parseConfList(enc({
    cniVersion: version,
    name: "chain",
    plugins: [
      {
        type: "first",
        capabilities: { portMappings: true, bandwidth: false },
        foo: 1,
        "cni.dev/x": 1,
      },
      { type: "second", name: "ignored", cniVersion: "0.1.0" },
    ],
    ...extra,
  }));
}

const rt = (containerId = "c1"): RuntimeConf => ({
  containerId,
  netns: "/run/netns/p",
  ifName: "eth0",
  args: [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "p"]],
  capabilityArgs: {
    portMappings: [{ hostPort: 8080, containerPort: 80 }],
    bandwidth: { egressRate: 1 },
  },
});

async function withFakes(fn: (dir: string, cacheDir: string) => Promise<void>) {
  await withTempDir(async (dir) => {
    await makeFakePlugins(dir, ["first", "second"]);
    await fn(dir, `${dir}/cache`);
  });
}

Deno.test("buildPluginConfig: list name/version win, runtimeConfig only for declared caps, capabilities stripped", () => {
  const l = list("1.1.0");
  const cfg = buildPluginConfig(l, l.plugins[0], "ADD", undefined, rt().capabilityArgs);
  assert.deepEqual(cfg, {
    cniVersion: "1.1.0",
    name: "chain",
    type: "first",
    foo: 1,
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80 }] },
  });
  const second = buildPluginConfig(
    l,
    l.plugins[1],
    "ADD",
    { cniVersion: "1.1.0" },
    rt().capabilityArgs,
  );
  assert.deepEqual(second, {
    cniVersion: "1.1.0",
    name: "chain",
    type: "second",
    prevResult: { cniVersion: "1.1.0" },
  });
  // GC keeps the plugin object as is, bar runtime-reserved keys.
  assert.deepEqual(Object.keys(buildPluginConfig(l, l.plugins[0], "GC")), [
    "cniVersion",
    "name",
    "type",
    "capabilities",
    "foo",
  ]);
});

Deno.test("ADD chains prevResult in the list's version and caches the final result", async () => {
  await withFakes(async (dir, cacheDir) => {
    const l = list("0.4.0");
    const result = await addNetworkList(l, rt(), { path: [dir], cacheDir });
    const calls = await readCalls(dir);
    assert.deepEqual(calls.map((c) => `${c.type} ${c.command}`), ["first ADD", "second ADD"]);
    assert.deepEqual(
      [calls[0].containerId, calls[0].ifName, calls[0].netns, calls[0].args, calls[0].path],
      ["c1", "eth0", "/run/netns/p", "IgnoreUnknown=1;K8S_POD_NAME=p", dir],
    );
    assert.equal(calls[0].stdin.prevResult, undefined);
    assert.deepEqual(calls[1].stdin.prevResult, {
      cniVersion: "0.4.0",
      interfaces: [{ name: "first-if", sandbox: "/run/netns/p" }],
      ips: [{ version: "4", interface: 0, address: "10.0.0.1/24" }],
    });
    assert.deepEqual(result, {
      cniVersion: "0.4.0",
      interfaces: [{ name: "second-if", sandbox: "/run/netns/p" }],
      ips: [{ version: "4", interface: 0, address: "10.0.1.2/24" }],
    });
    const entry = await readCacheEntry(cacheDir, "chain", "c1", "eth0");
    assert.deepEqual(entry?.config, l.bytes);
    assert.deepEqual(entry?.result, result);
    assert.deepEqual(entry?.cniArgs, rt().args);
    assert.equal(entry?.netns, "/run/netns/p");
  });
});

Deno.test("ADD stops at the first failure, keeps its code, caches nothing", async () => {
  await withFakes(async (dir, cacheDir) => {
    await failNext(dir, "second", "ADD", 11);
    const err = await rejectsCni(() =>
      addNetworkList(list("1.0.0"), rt(), { path: [dir], cacheDir })
    );
    assert.equal(err.code, 11);
    assert.equal(
      err.message,
      'plugin type="second" name="ignored" failed (add): second refuses ADD',
    );
    assert.equal(await readCacheEntry(cacheDir, "chain", "c1", "eth0"), undefined);
  });
});

Deno.test("ADD validates the attachment first (container ID, interface name)", async () => {
  await withFakes(async (dir, cacheDir) => {
    assert.equal(
      (await rejectsCni(() =>
        addNetworkList(list("1.0.0"), { ...rt(), containerId: "" }, { path: [dir], cacheDir })
      )).code,
      3,
    );
    assert.equal(
      (await rejectsCni(() =>
        addNetworkList(list("1.0.0"), { ...rt(), ifName: "a/b" }, { path: [dir], cacheDir })
      )).code,
      4,
    );
    assert.deepEqual(await readCalls(dir), []);
  });
});

Deno.test("DEL runs in reverse with the cached result, then drops the cache", async () => {
  await withFakes(async (dir, cacheDir) => {
    const l = list("1.0.0");
    const added = await addNetworkList(l, rt(), { path: [dir], cacheDir });
    await clearCalls(dir);
    await delNetworkList(l, rt(), { path: [dir], cacheDir });
    const calls = await readCalls(dir);
    assert.deepEqual(calls.map((c) => `${c.type} ${c.command}`), ["second DEL", "first DEL"]);
    for (const c of calls) assert.deepEqual(c.stdin.prevResult, added);
    assert.equal(await readCacheEntry(cacheDir, "chain", "c1", "eth0"), undefined);
    // Again, with nothing cached: still runs and succeeds, without prevResult.
    await clearCalls(dir);
    await delNetworkList(l, rt(), { path: [dir], cacheDir });
    assert.deepEqual((await readCalls(dir)).map((c) => c.stdin.prevResult), [undefined, undefined]);
  });
});

Deno.test("DEL of a pre-0.4.0 list passes no prevResult; a failing DEL keeps the cache", async () => {
  await withFakes(async (dir, cacheDir) => {
    const old = list("0.3.1");
    await addNetworkList(old, rt(), { path: [dir], cacheDir });
    await clearCalls(dir);
    await failNext(dir, "first", "DEL");
    const err = await rejectsCni(() => delNetworkList(old, rt(), { path: [dir], cacheDir }));
    assert.match(err.message, /plugin type="first" failed \(delete\)/);
    assert.deepEqual((await readCalls(dir)).map((c) => c.stdin.prevResult), [undefined, undefined]);
    assert.notEqual(await readCacheEntry(cacheDir, "chain", "c1", "eth0"), undefined);
  });
});

Deno.test("CHECK: needs >= 0.4.0, skipped by disableCheck, else each plugin with the cached result", async () => {
  await withFakes(async (dir, cacheDir) => {
    const err = await rejectsCni(() =>
      checkNetworkList(list("0.3.1"), rt(), { path: [dir], cacheDir })
    );
    assert.equal(err.code, 1);
    await checkNetworkList(list("1.0.0", { disableCheck: true }), rt(), { path: [dir], cacheDir });
    assert.deepEqual(await readCalls(dir), []);
    const l = list("1.1.0");
    const added = await addNetworkList(l, rt(), { path: [dir], cacheDir });
    await clearCalls(dir);
    await checkNetworkList(l, rt(), { path: [dir], cacheDir });
    const calls = await readCalls(dir);
    assert.deepEqual(calls.map((c) => `${c.type} ${c.command}`), ["first CHECK", "second CHECK"]);
    assert.deepEqual(calls[0].stdin.prevResult, added);
    assert.deepEqual(calls[0].stdin.runtimeConfig, {
      portMappings: [{ hostPort: 8080, containerPort: 80 }],
    });
  });
});

Deno.test("GC deletes cached attachments not listed as valid, then GCs every plugin", async () => {
  await withFakes(async (dir, cacheDir) => {
    const l = list("1.1.0");
    await addNetworkList(l, rt("keep"), { path: [dir], cacheDir });
    await addNetworkList(l, rt("stale"), { path: [dir], cacheDir });
    await clearCalls(dir);
    const valid = [{ containerID: "keep", ifname: "eth0" }];
    await gcNetworkList(l, valid, { path: [dir], cacheDir });
    const calls = await readCalls(dir);
    assert.deepEqual(calls.map((c) => `${c.type} ${c.command} ${c.containerId}`), [
      "second DEL stale",
      "first DEL stale",
      "first GC ",
      "second GC ",
    ]);
    assert.equal(calls[0].netns, "/run/netns/p", "stale DEL uses the cached netns");
    assert.deepEqual(calls[2].stdin["cni.dev/valid-attachments"], valid);
    assert.deepEqual(calls[2].stdin["cni.dev/attachments"], valid);
    assert.equal(calls[2].ifName, "");
    assert.notEqual(await readCacheEntry(cacheDir, "chain", "keep", "eth0"), undefined);
    assert.equal(await readCacheEntry(cacheDir, "chain", "stale", "eth0"), undefined);
  });
});

Deno.test("GC: disableGC does nothing; before 1.1.0 only stale attachments are deleted; errors are collected", async () => {
  await withFakes(async (dir, cacheDir) => {
    await addNetworkList(list("1.0.0"), rt("old"), { path: [dir], cacheDir });
    await clearCalls(dir);
    await gcNetworkList(list("1.0.0", { disableGC: true }), [], { path: [dir], cacheDir });
    assert.deepEqual(await readCalls(dir), []);
    await gcNetworkList(list("1.0.0"), [], { path: [dir], cacheDir });
    assert.deepEqual((await readCalls(dir)).map((c) => c.command), ["DEL", "DEL"]);
    await clearCalls(dir);
    await failNext(dir, "first", "GC", 7);
    await failNext(dir, "second", "GC", 5);
    const err = await rejectsCni(() => gcNetworkList(list("1.1.0"), [], { path: [dir], cacheDir }));
    assert.equal(err.code, 7);
    assert.match(err.message, /first refuses GC; .*second refuses GC/);
  });
});

Deno.test("STATUS: each plugin from 1.1.0, a no-op before, stops at the first error", async () => {
  await withFakes(async (dir, cacheDir) => {
    await statusNetworkList(list("1.0.0"), { path: [dir], cacheDir });
    assert.deepEqual(await readCalls(dir), []);
    await statusNetworkList(list("1.1.0"), { path: [dir], cacheDir });
    assert.deepEqual((await readCalls(dir)).map((c) => `${c.type} ${c.command}`), [
      "first STATUS",
      "second STATUS",
    ]);
    await clearCalls(dir);
    await failNext(dir, "first", "STATUS", 50);
    assert.equal(
      (await rejectsCni(() => statusNetworkList(list("1.1.0"), { path: [dir], cacheDir }))).code,
      50,
    );
    assert.equal((await readCalls(dir)).length, 1);
  });
});

Deno.test("a result cache a crash truncated is set aside: CHECK runs without it, DEL and GC still delete", async () => {
  await withFakes(async (dir, cacheDir) => {
    const l = list("1.1.0");
    const file = (id: string) => `${cacheDir}/results/chain-${id}-eth0`;
    const damaged: string[] = [];
    const opts = {
      path: [dir],
      cacheDir,
      onDamaged: (network: string, movedTo: string) => damaged.push(`${network} ${movedTo}`),
    };
    for (const id of ["chk", "gc"]) {
      await addNetworkList(l, rt(id), opts);
      const text = await Deno.readTextFile(file(id));
      await Deno.writeTextFile(file(id), text.slice(0, 20));
    }
    await clearCalls(dir);
    // CHECK: the plugins decide, without prevResult, as with no cache at all.
    await checkNetworkList(l, rt("chk"), opts);
    let calls = await readCalls(dir);
    assert.deepEqual(calls.map((c) => `${c.type} ${c.command}`), ["first CHECK", "second CHECK"]);
    assert.equal(calls[0].stdin.prevResult, undefined);
    assert.deepEqual(damaged, [`chain ${cacheDir}/results/.damaged-chain-chk-eth0`]);
    // GC: the attachment whose cache cannot be read is deleted like any stale one.
    await clearCalls(dir);
    await gcNetworkList(l, [], opts);
    calls = await readCalls(dir);
    assert.deepEqual(
      calls.filter((c) => c.command === "DEL").map((c) => `${c.type} ${c.containerId}`),
      ["second gc", "first gc"],
    );
    await assert.rejects(Deno.stat(file("gc")), Deno.errors.NotFound);
    assert.equal(damaged.length, 2);
  });
});
