import assert from "node:assert/strict";
import { catchCni, rejectsCni } from "../tests/cni/helpers.ts";
import { withTempDir } from "../tests/helpers/netns.ts";
import {
  confListFromConf,
  loadConfDir,
  loadConfFile,
  loadNetworkConf,
  parseConfList,
  parseNetworkConfig,
  parsePluginConf,
} from "./conf.ts";

const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : JSON.stringify(v));

Deno.test("parseConfList reads the list fields; version is the highest of cniVersion(s)", () => {
  const bytes = enc({
    cniVersion: "0.4.0",
    cniVersions: ["1.0.0", "0.3.1", "5.0.0"],
    name: "mynet",
    disableCheck: "TRUE",
    disableGC: false,
    plugins: [{ type: "bridge", capabilities: { portMappings: true } }, { type: "portmap" }],
  });
  const list = parseConfList(bytes, "mynet.conflist");
  assert.equal(list.name, "mynet");
  assert.equal(list.cniVersion, "1.0.0");
  assert.equal(list.disableCheck, true);
  assert.equal(list.disableGC, false);
  assert.equal(list.loadOnlyInlinedPlugins, false);
  assert.deepEqual(list.plugins.map((p) => p.type), ["bridge", "portmap"]);
  assert.equal(list.bytes, bytes);
});

Deno.test("configuration errors carry the spec's codes and name the file and field", () => {
  const cases: [unknown, number, RegExp][] = [
    ["{oops", 6, /f\.conflist: error parsing configuration/],
    [{ plugins: [{ type: "x" }] }, 7, /no name/],
    [{ name: 3, plugins: [] }, 6, /"name" must be a string/],
    [{ name: "a b", plugins: [{ type: "x" }] }, 7, /invalid characters found in network name/],
    [{ name: "n", plugins: [] }, 7, /no plugins in configuration list/],
    [{ name: "n", plugins: {} }, 6, /"plugins" must be a list/],
    [{ name: "n", plugins: [{}] }, 7, /plugins\[0\]: missing 'type'/],
    [
      { name: "n", plugins: [{ type: "../../bin/sh" }] },
      7,
      /plugins\[0\]: "type": invalid plugin type/,
    ],
    [{ name: "n", plugins: [{ type: 4 }] }, 6, /plugins\[0\]: "type" must be a string/],
    [{ name: "n", plugins: [{ type: "x", capabilities: { a: "yes" } }] }, 6, /capabilities/],
    [
      { name: "n", disableCheck: "maybe", plugins: [{ type: "x" }] },
      7,
      /invalid value "maybe" for "disableCheck"/,
    ],
    [{ name: "n", disableGC: 1, plugins: [{ type: "x" }] }, 6, /"disableGC" must be a boolean/],
    [{ name: "n", loadOnlyInlinedPlugins: true }, 7, /loadOnlyInlinedPlugins/],
    [
      { name: "n", cniVersion: "3.0.0", plugins: [{ type: "x" }] },
      1,
      /unsupported cniVersion "3.0.0"/,
    ],
    [
      { name: "n", cniVersions: ["1.0.0", "x.y"], plugins: [{ type: "x" }] },
      1,
      /invalid version "x.y"/,
    ],
    [{ name: "n", cniVersions: "1.0.0", plugins: [{ type: "x" }] }, 6, /cniVersions/],
  ];
  for (const [raw, code, re] of cases) {
    const err = catchCni(() => parseConfList(enc(raw), "f.conflist"));
    assert.equal(err.code, code, JSON.stringify(raw));
    assert.match(err.message, re);
  }
});

Deno.test("a single plugin config needs type and name and wraps into a list of one", () => {
  const conf = parsePluginConf(
    enc({ cniVersion: "0.3.1", name: "n", type: "macvlan", master: "eth9" }),
  );
  const list = confListFromConf(conf);
  assert.equal(list.name, "n");
  assert.equal(list.cniVersion, "0.3.1");
  assert.deepEqual(list.plugins, [{
    cniVersion: "0.3.1",
    name: "n",
    type: "macvlan",
    master: "eth9",
  }]);
  assert.equal(catchCni(() => parsePluginConf(enc({ name: "n" }))).code, 7);
  assert.equal(catchCni(() => parsePluginConf(enc({ type: "x" }))).code, 7);
  // parseNetworkConfig tells the two forms apart by "plugins".
  assert.equal(parseNetworkConfig(enc({ name: "n", type: "x" })).plugins.length, 1);
  assert.equal(
    parseNetworkConfig(enc({ name: "n", plugins: [{ type: "a" }, { type: "b" }] })).plugins.length,
    2,
  );
});

Deno.test("loadConfFile: a conflist gets <dir>/<name>/*.conf unless loadOnlyInlinedPlugins", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/10-a.conflist`,
      JSON.stringify({ name: "a", cniVersion: "1.0.0", plugins: [{ type: "bridge" }] }),
    );
    await Deno.mkdir(`${dir}/a`);
    await Deno.writeTextFile(`${dir}/a/20-tuning.conf`, JSON.stringify({ type: "tuning" }));
    await Deno.writeTextFile(`${dir}/a/10-portmap.conf`, JSON.stringify({ type: "portmap" }));
    await Deno.writeTextFile(`${dir}/a/ignored.json`, JSON.stringify({ type: "nope" }));
    const list = await loadConfFile(`${dir}/10-a.conflist`);
    assert.deepEqual(list.plugins.map((p) => p.type), ["bridge", "portmap", "tuning"]);

    await Deno.writeTextFile(
      `${dir}/10-a.conflist`,
      JSON.stringify({ name: "a", loadOnlyInlinedPlugins: true, plugins: [{ type: "bridge" }] }),
    );
    assert.deepEqual((await loadConfFile(`${dir}/10-a.conflist`)).plugins.map((p) => p.type), [
      "bridge",
    ]);

    // Plugins only from the folder.
    await Deno.writeTextFile(`${dir}/10-a.conflist`, JSON.stringify({ name: "a" }));
    assert.deepEqual((await loadConfFile(`${dir}/10-a.conflist`)).plugins.map((p) => p.type), [
      "portmap",
      "tuning",
    ]);
    await Deno.writeTextFile(`${dir}/20-b.conflist`, JSON.stringify({ name: "b" }));
    assert.match(
      (await rejectsCni(() => loadConfFile(`${dir}/20-b.conflist`))).message,
      /no plugin configs found/,
    );
    assert.equal((await rejectsCni(() => loadConfFile(`${dir}/missing.conf`))).code, 5);
  });
});

Deno.test("loadNetworkConf follows libcni: conflists first, then .conf/.json, lexical order", async () => {
  await withTempDir(async (dir) => {
    assert.match(
      (await rejectsCni(() => loadNetworkConf(dir, "x"))).message,
      /no net configurations found/,
    );
    await Deno.writeTextFile(`${dir}/00-x.conf`, JSON.stringify({ name: "x", type: "from-conf" }));
    await Deno.writeTextFile(
      `${dir}/50-x.conflist`,
      JSON.stringify({ name: "x", plugins: [{ type: "from-list-50" }] }),
    );
    await Deno.writeTextFile(
      `${dir}/40-x.conflist`,
      JSON.stringify({ name: "x", plugins: [{ type: "from-list-40" }] }),
    );
    await Deno.writeTextFile(`${dir}/30-y.json`, JSON.stringify({ name: "y", type: "from-json" }));
    assert.equal((await loadNetworkConf(dir, "x")).plugins[0].type, "from-list-40");
    assert.equal((await loadNetworkConf(dir, "y")).plugins[0].type, "from-json");
    assert.match(
      (await rejectsCni(() => loadNetworkConf(dir, "z"))).message,
      /no net configuration with name "z"/,
    );
  });
});

Deno.test("loadConfDir loads every network in file-name order, skipping and refusing duplicates", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/20-b.conf`, JSON.stringify({ name: "b", type: "macvlan" }));
    await Deno.writeTextFile(
      `${dir}/10-a.conflist`,
      JSON.stringify({ name: "a", plugins: [{ type: "bridge" }] }),
    );
    await Deno.writeTextFile(
      `${dir}/00-self.conf`,
      JSON.stringify({ name: "self", type: "hydra" }),
    );
    await Deno.writeTextFile(`${dir}/README.md`, "not a config");
    const lists = await loadConfDir(dir, (l) => l.plugins.some((p) => p.type === "hydra"));
    assert.deepEqual(lists.map((l) => l.name), ["a", "b"]);
    await Deno.writeTextFile(`${dir}/30-a.json`, JSON.stringify({ name: "a", type: "x" }));
    assert.match(
      (await rejectsCni(() => loadConfDir(dir))).message,
      /network "a" is defined twice/,
    );
    await Deno.writeTextFile(`${dir}/30-a.json`, "{");
    const err = await rejectsCni(() => loadConfDir(dir));
    assert.equal(err.code, 6);
    assert.match(err.message, /30-a\.json/);
  });
});
