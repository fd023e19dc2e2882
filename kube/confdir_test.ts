import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { confFromText, findConfByName, loadConfPath, mapPlugins } from "./confdir.ts";
import { legacyNetworkConf } from "./networks.ts";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "hydra-confdir-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const bridge = (name: string) => JSON.stringify({ cniVersion: "1.0.0", name, type: "bridge" });

Deno.test("by name: every extension in file-name order, first match wins", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/10-a.conf`, bridge("alpha"));
    await Deno.writeTextFile(
      `${dir}/20-b.conflist`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "beta",
        plugins: [{ type: "macvlan" }, { type: "tuning" }],
      }),
    );
    await Deno.writeTextFile(`${dir}/30-b.json`, bridge("beta"));
    await Deno.writeTextFile(`${dir}/ignored.txt`, "not json");
    const beta = await findConfByName("beta", dir);
    assert.equal(beta?.plugins.length, 2);
    assert.equal(beta?.source, `${dir}/20-b.conflist`);
    assert.equal((await findConfByName("alpha", dir))?.plugins[0].type, "bridge");
    assert.equal((await findConfByName("", dir))?.name, "alpha");
    assert.equal(await findConfByName("gamma", dir), undefined);
    assert.equal(await findConfByName("x", `${dir}/missing`), undefined);
  });
});

Deno.test("paths: a directory's first conf, a file, a conflist's sub-directory plugins", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/net`);
    await Deno.writeTextFile(`${dir}/net/b.conf`, bridge("second"));
    await Deno.writeTextFile(`${dir}/net/a.conf`, bridge("first"));
    assert.equal((await loadConfPath(`${dir}/net`)).name, "first");
    await Deno.writeTextFile(
      `${dir}/chain.conflist`,
      JSON.stringify({ cniVersion: "1.0.0", name: "chain", plugins: [{ type: "bridge" }] }),
    );
    await Deno.mkdir(`${dir}/chain`);
    await Deno.writeTextFile(`${dir}/chain/10-tuning.conf`, JSON.stringify({ type: "tuning" }));
    const chain = await loadConfPath(`${dir}/chain.conflist`);
    assert.deepEqual(chain.plugins.map((p) => p.type), ["bridge", "tuning"]);
    await assert.rejects(
      loadConfPath(`${dir}/nope.conf`),
      (e: unknown) => e instanceof CniError && e.code === ErrorCode.InvalidNetworkConfig,
    );
    await Deno.mkdir(`${dir}/empty`);
    await assert.rejects(loadConfPath(`${dir}/empty`), /no CNI config in it/);
  });
});

Deno.test("NAD config text: name filled in when missing, errors name the object", () => {
  const named = confFromText(
    bridge("own"),
    "nad",
    "NetworkAttachmentDefinition ns/nad spec.config",
  );
  assert.equal(named.name, "own");
  const nameless = confFromText(
    '{"cniVersion":"0.3.1","type":"macvlan","master":"eth0"}',
    "nad",
    "X",
  );
  assert.equal(nameless.name, "nad");
  assert.equal(nameless.plugins[0].master, "eth0");
  const list = confFromText(
    '{"cniVersion":"1.0.0","name":"","plugins":[{"type":"bridge"}]}',
    "nad",
    "X",
  );
  assert.equal(list.name, "nad");
  assert.throws(
    () => confFromText("{oops", "nad", "NetworkAttachmentDefinition ns/nad spec.config"),
    (e: unknown) =>
      e instanceof CniError && e.code === ErrorCode.DecodingFailure &&
      /NetworkAttachmentDefinition ns\/nad spec\.config: not valid JSON/.test(e.message),
  );
  assert.throws(
    () => confFromText("[1]", "nad", "NAD x spec.config"),
    /NAD x spec\.config: must be a JSON object/,
  );
  assert.throws(
    () => confFromText('{"cniVersion":"1.0.0"}', "nad", "NAD x spec.config"),
    /NAD x spec\.config.*type/,
  );
});

Deno.test("editing plugins keeps bytes in step", () => {
  const list = confFromText(
    '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},{"type":"b"}]}',
    "n",
    "X",
  );
  const edited = mapPlugins(list, (p) => ({ ...p, args: { cni: { k: 1 } } }));
  const bytes = JSON.parse(new TextDecoder().decode(edited.bytes));
  assert.deepEqual(bytes.plugins, [{ type: "a", args: { cni: { k: 1 } } }, {
    type: "b",
    args: { cni: { k: 1 } },
  }]);
  assert.equal(bytes.name, "n");
  assert.deepEqual(edited.plugins, bytes.plugins);
});

Deno.test("the seed's Network objects: plugin plus args", () => {
  const meta = { name: "flannel-networkobj", namespace: "default" };
  const conf = legacyNetworkConf({
    metadata: meta,
    plugin: "flannel",
    args: '[ { "delegate": { "isDefaultGateway": true } } ]',
  });
  assert.equal(conf.name, "flannel-networkobj");
  assert.deepEqual(conf.plugins, [{
    name: "flannel-networkobj",
    delegate: { isDefaultGateway: true },
    type: "flannel",
  }]);
  assert.equal(
    legacyNetworkConf({ metadata: meta, plugin: "bridge", args: '{"bridge":"br1"}' }).plugins[0]
      .bridge,
    "br1",
  );
  assert.equal(
    legacyNetworkConf({ metadata: meta, plugin: "loopback" }).plugins[0].type,
    "loopback",
  );
  assert.throws(
    () => legacyNetworkConf({ metadata: meta }),
    /Network default\/flannel-networkobj: "plugin" is missing/,
  );
  assert.throws(
    () => legacyNetworkConf({ metadata: meta, plugin: "x", args: "[1,2]" }),
    /"args" must be an object/,
  );
  assert.throws(
    () => legacyNetworkConf({ metadata: meta, plugin: "x", args: "{" }),
    /"args" is not JSON/,
  );
});
