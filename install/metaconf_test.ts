import assert from "node:assert/strict";
import { join } from "node:path";
import { InstallError } from "./error.ts";
import {
  confFileNames,
  delegateCapabilities,
  findDefaultConf,
  isHydraConf,
  parseDefaultConf,
  renderMetaConf,
} from "./metaconf.ts";

async function withConfDir(files: Record<string, string>, fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "hydra-metaconf-" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(join(dir, name), text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const bridge = JSON.stringify({ cniVersion: "0.4.0", name: "a", type: "bridge" });

Deno.test("conf files are the runtime's: .conf/.conflist/.json, byte order, no hidden files", async () => {
  await withConfDir({
    "10-b.conflist": bridge,
    "10-B.conf": bridge,
    "05-a.json": bridge,
    "99-z.txt": bridge,
    ".00-hidden.conf": bridge,
  }, async (dir) => {
    await Deno.mkdir(join(dir, "hydra.d.conf"));
    assert.deepEqual(await confFileNames(dir), ["05-a.json", "10-B.conf", "10-b.conflist"]);
  });
});

Deno.test("the default conf is the first that is not hydra's own", async () => {
  const hydraList = JSON.stringify({ name: "x", plugins: [{ type: "hydra" }] });
  await withConfDir({
    "00-hydra.conflist": "garbage is fine: skipped by name",
    "01-old-hydra.conflist": hydraList,
    "10-net.conf": bridge,
    "20-other.conf": "{",
  }, async (dir) => {
    const def = await findDefaultConf(dir, "00-hydra.conflist");
    assert.equal(def?.path, join(dir, "10-net.conf"));
    assert.equal(def?.conf.type, "bridge");
    // Pinned by name, the broken one is reported.
    await assert.rejects(findDefaultConf(dir, "00-hydra.conflist", "20-other.conf"), InstallError);
    assert.equal(await findDefaultConf(dir, "00-hydra.conflist", "absent.conf"), undefined);
  });
  await withConfDir({}, async (dir) => {
    assert.equal(await findDefaultConf(dir, "00-hydra.conflist"), undefined);
  });
});

Deno.test("a default conf is checked before use", () => {
  const bad: [string, RegExp][] = [
    ["[]", /not a JSON object/],
    ['{"type":"bridge"}', /no "name"/],
    ['{"name":"n"}', /neither "type" nor "plugins"/],
    ['{"name":"n","plugins":[]}', /"plugins" is empty/],
    ['{"name":"n","cniVersion":"9.9.9","type":"bridge"}', /cniVersion "9.9.9"/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseDefaultConf("/c", text), re);
  assert.equal(isHydraConf({ type: "hydra" }), true);
  assert.equal(isHydraConf({ plugins: [{ type: "bridge" }] }), false);
});

Deno.test("the meta conf declares every capability of the delegate's plugins", () => {
  const conf = {
    cniVersion: "1.0.0",
    name: "podnet",
    plugins: [
      { type: "ptp", capabilities: { ips: true, mac: false } },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "bandwidth", capabilities: { bandwidth: true } },
    ],
  };
  assert.deepEqual(delegateCapabilities(conf), { bandwidth: true, ips: true, portMappings: true });
  const meta = JSON.parse(new TextDecoder().decode(renderMetaConf({ path: "/c", conf }, {
    binDir: "/opt/cni/bin",
    kubeconfig: "/k",
    extra: { logLevel: "info", type: "not-overridable", delegates: [] },
  })));
  assert.equal(meta.cniVersion, "1.0.0");
  assert.equal(meta.plugins[0].type, "hydra");
  assert.equal(meta.plugins[0].logLevel, "info");
  assert.deepEqual(meta.plugins[0].delegates, [conf]);
  assert.deepEqual(meta.plugins[0].capabilities, delegateCapabilities(conf));
});

Deno.test("a single-plugin default conf without cniVersion is wrapped as is", () => {
  const conf = { name: "n", type: "bridge" };
  const meta = JSON.parse(
    new TextDecoder().decode(renderMetaConf({ path: "/c", conf }, { binDir: "/b" })),
  );
  assert.equal(meta.cniVersion, "1.0.0");
  assert.equal(meta.plugins[0].kubeconfig, undefined);
  assert.equal(meta.plugins[0].capabilities, undefined);
  assert.deepEqual(meta.plugins[0].delegates, [conf]);
});
