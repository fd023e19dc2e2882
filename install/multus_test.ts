import assert from "node:assert/strict";
import { join } from "node:path";
import {
  foreignMeta,
  metaPluginKind,
  MetaPluginRefused,
  MULTUS_DEFAULT_CNI_DIR,
  unwrapMetaPlugin,
} from "./multus.ts";

const flannel = {
  cniVersion: "0.3.1",
  name: "cbr0",
  plugins: [{ type: "flannel", delegate: { isDefaultGateway: true } }, {
    type: "portmap",
    capabilities: { portMappings: true },
  }],
};

async function withConfDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-multus-unit-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("meta-plugins are found by type, by their keys and by Multus's file name; hydra's is not one", () => {
  assert.equal(metaPluginKind({ type: "multus" }), "multus-thin");
  assert.equal(metaPluginKind({ plugins: [{ type: "multus-shim" }] }), "multus-thick");
  assert.equal(metaPluginKind({ type: "genie", delegates: [] }), "meta-plugin");
  assert.equal(metaPluginKind({ type: "hydra", delegates: [] }), undefined);
  assert.equal(metaPluginKind(flannel), undefined);
  assert.equal(foreignMeta("/n/00-multus.conf", { type: "odd" })?.kind, "meta-plugin");
  assert.equal(foreignMeta("/n/10-flannel.conflist", flannel), undefined);
});

Deno.test("thin with delegates: the first is the default network, the rest stay, keys translated", async () => {
  await withConfDir(async (dir) => {
    const conf = {
      cniVersion: "0.3.1",
      name: "multus-cni-network",
      type: "multus",
      capabilities: { portMappings: true },
      cniConf: "/host/etc/cni/multus/net.d",
      kubeconfig: "/etc/cni/net.d/multus.d/multus.kubeconfig",
      namespaceIsolation: true,
      logLevel: "verbose",
      delegates: [flannel, { cniVersion: "0.3.1", name: "sidecar", type: "macvlan" }],
    };
    const u = await unwrapMetaPlugin(foreignMeta(join(dir, "00-multus.conf"), conf)!, dir);
    assert.deepEqual(u.defaultConf?.conf, flannel);
    assert.deepEqual(u.moreDelegates.map((d) => d.name), ["sidecar"]);
    assert.deepEqual(u.metaKeys, {
      namespaceIsolation: true,
      cniDir: MULTUS_DEFAULT_CNI_DIR,
      capabilities: { portMappings: true },
    });
    assert.ok(u.notes.some((n) => n.startsWith("kubeconfig not carried")));
    assert.ok(u.notes.some((n) => n.startsWith("logLevel not carried")));
  });
});

Deno.test("clusterNetwork: a file is read, a name is left for hydra to resolve", async () => {
  await withConfDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "10-flannel.conflist"), JSON.stringify(flannel));
    const byFile = { type: "multus", clusterNetwork: join(dir, "10-flannel.conflist") };
    const file = await unwrapMetaPlugin(foreignMeta(join(dir, "00-multus.conf"), byFile)!, dir);
    assert.deepEqual(file.defaultConf?.conf, flannel);
    const byName = { type: "multus", clusterNetwork: "cbr0", multusNamespace: "net-system" };
    const name = await unwrapMetaPlugin(foreignMeta(join(dir, "00-multus.conf"), byName)!, dir);
    assert.equal(name.defaultConf, undefined);
    assert.equal(name.metaKeys.clusterNetwork, "cbr0");
    assert.equal(name.metaKeys.multusNamespace, "net-system");
  });
});

Deno.test("thick: refused without the daemon config; with it, container paths read in the node's folder", async () => {
  await withConfDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "10-flannel.conflist"), JSON.stringify(flannel));
    const shim = {
      cniVersion: "0.3.1",
      name: "multus-cni-network",
      type: "multus-shim",
      logLevel: "verbose",
      logToStderr: true,
      clusterNetwork: "/host/etc/cni/net.d/10-flannel.conflist",
    };
    const found = foreignMeta(join(dir, "00-multus.conf"), shim)!;
    await assert.rejects(
      unwrapMetaPlugin(found, dir),
      (e: unknown) => e instanceof MetaPluginRefused && /--multus-daemon-config/.test(e.message),
    );
    const daemon = {
      chrootDir: "/hostroot",
      cniVersion: "0.3.1",
      logLevel: "verbose",
      logToStderr: true,
      cniConfigDir: "/host/etc/cni/net.d",
      multusAutoconfigDir: "/host/etc/cni/net.d",
      multusConfigFile: "auto",
      socketDir: "/host/run/multus/",
      defaultNetworks: ["sidecar"],
    };
    const u = await unwrapMetaPlugin(found, dir, daemon);
    assert.deepEqual(u.defaultConf, { path: join(dir, "10-flannel.conflist"), conf: flannel });
    assert.deepEqual(u.metaKeys.defaultNetworks, ["sidecar"]);
    assert.ok(u.notes.some((n) => n.startsWith("chrootDir not carried")));
  });
});

Deno.test("refused: an auxiliary chain, an unknown key, another meta-plugin, no default network", async () => {
  await withConfDir(async (dir) => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ type: "multus", delegates: [flannel], auxiliaryCNIChainName: "chain" }, /auxiliary chain/],
      [{ type: "multus", delegates: [flannel], frobnicate: 1 }, /sets "frobnicate"/],
      [{ type: "genie", delegates: [flannel] }, /only knows how to unwrap Multus/],
      [{ type: "multus" }, /neither "clusterNetwork" nor "delegates"/],
      [{ type: "multus", clusterNetwork: join(dir, "missing.conf") }, /cannot be read on the node/],
    ];
    for (const [conf, re] of cases) {
      await assert.rejects(
        unwrapMetaPlugin(foreignMeta(join(dir, "00-multus.conf"), conf)!, dir),
        (e: unknown) =>
          e instanceof MetaPluginRefused && re.test(e.message) &&
          /migrating-from-multus/.test(e.message),
        JSON.stringify(conf),
      );
    }
  });
});
