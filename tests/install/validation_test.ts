/**
 * The installer checks the conf it would write: a `--meta-json` typo (an
 * unknown key, a key of the wrong type, text that is not JSON) never
 * reaches the node's conf. With --once it exits 1; running, it stays up and
 * not ready with the reason on /readyz, leaving the conf the node has as it
 * is, so a rollout with a bad argument stops at its first node. NRI mode
 * beside Multus is refused the same way. From an image carrying hydra as a
 * source tree, meta mode installs a copy of it that the node runs, keeping the
 * previous version through one upgrade.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { nodeLauncher } from "../../install/tree_copy.ts";
import { thinConf } from "../infra/multus_module.ts";
import { makeNode, removeNode, runInstall, startInstall } from "./helpers.ts";

const CONF = "00-hydra.conflist";

Deno.test("--meta-json typos are refused with --once: exit 1 naming the key, nothing written", async () => {
  const cases: [string, RegExp][] = [
    [
      '{"delegateTimout": 30}',
      /"hydra\.delegateTimout" is not a key .* did you mean "delegateTimeout"/,
    ],
    ['{"daemonExec": "yes"}', /"hydra\.daemonExec" must be a boolean, got string/],
    ['{"logLevel": "loud"}', /"hydra\.logLevel" is "loud"; expected one of debug, info/],
    ['{"cacheDir": "/c",}', /--meta-json is not valid JSON/],
  ];
  for (const [json, re] of cases) {
    const node = await makeNode();
    try {
      const out = await runInstall(["--once", ...node.flags, `--meta-json=${json}`]);
      assert.equal(out.code, 1, `${json}: ${out.stderr}`);
      assert.match(String(out.logs.find((l) => l.level === "error")?.msg), re, json);
      const written = await Deno.lstat(join(node.confDir, CONF)).then(() => true, () => false);
      assert.equal(written, false, `${json}: conf written`);
    } finally {
      await removeNode(node);
    }
  }
});

Deno.test("--meta-json with Multus's spellings is accepted with their meaning", async () => {
  const node = await makeNode();
  try {
    const extra = { logLevel: "verbose", cniDir: "/var/lib/cni/multus", logToStderr: false };
    const out = await runInstall(["--once", ...node.flags, `--meta-json=${JSON.stringify(extra)}`]);
    assert.equal(out.code, 0, out.stderr);
    const plugin = JSON.parse(await Deno.readTextFile(join(node.confDir, CONF))).plugins[0];
    assert.equal(plugin.logLevel, "verbose");
    assert.equal(plugin.cniDir, "/var/lib/cni/multus");
  } finally {
    await removeNode(node);
  }
});

Deno.test("a running installer given a --meta-json typo keeps the node's conf, is not ready, logs it once", async () => {
  const node = await makeNode();
  try {
    const good = await runInstall(["--once", ...node.flags]);
    assert.equal(good.code, 0, good.stderr);
    const before = await Deno.readTextFile(join(node.confDir, CONF));
    const installer = startInstall([
      ...node.flags,
      '--meta-json={"delegateTimout": 30}',
      "--interval=0.1",
      "--health-addr=127.0.0.1:0",
    ]);
    try {
      await installer.waitForLog((l) => typeof l.address === "string", "the endpoint");
      const address = String(installer.logs.find((l) => typeof l.address === "string")!.address);
      // Ten passes or more, every 0.1 s, each refused alike: the error is logged once.
      const failedPasses = async () => {
        const text = await (await fetch(`http://${address}/metrics`)).text();
        return Number(/^hydra_install_passes_total\{result="error"\} (\d+)$/m.exec(text)?.[1] ?? 0);
      };
      for (let i = 0; i < 100 && await failedPasses() < 10; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(await failedPasses() >= 10, "ten failed passes");
      const errors = installer.logs.filter((l) => l.level === "error");
      assert.equal(errors.length, 1, JSON.stringify(errors));
      assert.match(String(errors[0].msg), /delegateTimout/);
      const ready = await fetch(`http://${address}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /delegateTimout/);
      assert.equal(await Deno.readTextFile(join(node.confDir, CONF)), before, "conf changed");
      const result = await installer.stop("SIGTERM");
      assert.equal(result.code, 0, result.stderr);
    } finally {
      await installer.stop("SIGKILL");
    }
  } finally {
    await removeNode(node);
  }
});

Deno.test("nri mode beside Multus is refused: both would attach every pod's networks", async () => {
  const node = await makeNode();
  try {
    const master = JSON.parse(await Deno.readTextFile(node.defaultConf));
    const thin = await thinConf(master);
    await Deno.writeTextFile(join(node.confDir, thin.name), thin.text);
    const out = await runInstall(["--once", "--mode=nri", ...node.flags]);
    assert.equal(out.code, 1, out.stderr);
    const error = String(out.logs.find((l) => l.level === "error")?.msg);
    assert.match(error, /another meta-plugin; hydra nri serve beside it would attach/);
    assert.match(error, /docs\/migrating-from-multus\.md/);
    const installed = await Deno.lstat(join(node.binDir, "hydra")).then(() => true, () => false);
    assert.equal(installed, false, "nothing installed");
  } finally {
    await removeNode(node);
  }
});

Deno.test("from an image carrying hydra as a source tree, meta mode installs a copy the node runs", async () => {
  const node = await makeNode();
  const image = { HYDRA_TREE_IN_IMAGE: "1" };
  const hidden = ".hydra";
  const bin = () =>
    [...Deno.readDirSync(node.binDir)].map((e) => e.name).filter((n) =>
      n === hidden || !n.startsWith(".")
    ).sort();
  try {
    const meta = await runInstall(["--once", ...node.flags], image);
    assert.equal(meta.code, 0, meta.stderr);
    const versions = [...Deno.readDirSync(join(node.binDir, hidden))].map((e) => e.name);
    assert.equal(versions.length, 1, versions.join(", "));
    const launcher = await Deno.readTextFile(join(node.binDir, "hydra"));
    assert.match(launcher, new RegExp(`/\\.hydra/'${versions[0]}'`));
    // The node runs the copy: the tree it came from is not on its path.
    const run = async (exe: string, args: string[], env: Record<string, string> = {}) => {
      const out = await new Deno.Command(join(node.binDir, exe), {
        args,
        env: { PATH: "/usr/bin:/bin", ...env },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.ok(out.success, `${exe}: ${new TextDecoder().decode(out.stderr)}`);
      return text;
    };
    assert.match(await run("hydra", ["version"]), /hydra/);
    const cniVersion = JSON.parse(await run("hydra-bridge", [], { CNI_COMMAND: "VERSION" }));
    assert.ok(cniVersion.supportedVersions.includes("1.1.0"), JSON.stringify(cniVersion));
    // A second pass finds it all in place.
    const again = await runInstall(["--once", ...node.flags], image);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(!again.logs.some((l) => /^(created|replaced|removed) /.test(String(l.msg))));

    const un = await runInstall(["--uninstall", ...node.flags], image);
    assert.equal(un.code, 0, un.stderr);
    assert.deepEqual(
      [...Deno.readDirSync(node.binDir)].map((e) => e.name).sort(),
      ["bridge", "host-local", "portmap"],
      "the bin dir as it was",
    );
    assert.deepEqual(bin(), ["bridge", "host-local", "portmap"]);
    assert.deepEqual(
      [...Deno.readDirSync(node.confDir)].map((e) => e.name),
      ["10-podnet.conflist"],
      "the node's conf as it was",
    );
  } finally {
    await removeNode(node);
  }
});

Deno.test("an upgrade of the node's copy keeps the version before it and removes older ones", async () => {
  const node = await makeNode();
  const image = { HYDRA_TREE_IN_IMAGE: "1" };
  const trees = join(node.binDir, ".hydra");
  const manifestPath = join(node.confDir, "hydra.d", "install-manifest.json");
  const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
  try {
    const first = await runInstall(["--once", ...node.flags], image);
    assert.equal(first.code, 0, first.stderr);
    const [current] = [...Deno.readDirSync(trees)].map((e) => e.name);
    // The node as two earlier upgrades left it: the launcher names "v2", "v1" was kept before it.
    await Deno.rename(join(trees, current), join(trees, "v2"));
    await Deno.mkdir(join(trees, "v1"));
    await Deno.writeTextFile(join(trees, "v1", "deno"), "");
    await Deno.writeTextFile(join(node.binDir, "hydra"), nodeLauncher("v2"), { mode: 0o755 });
    const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
    manifest.entries = manifest.entries.flatMap((e: { path: string; sha256?: string }) => {
      if (e.path === join(trees, current)) {
        return ["v1", "v2"].map((v) => ({ ...e, path: join(trees, v), sha256: v }));
      }
      if (e.path === join(node.binDir, "hydra")) {
        return [{ ...e, sha256: sha256(nodeLauncher("v2")) }];
      }
      return [e];
    });
    await Deno.writeTextFile(manifestPath, JSON.stringify(manifest));

    const upgrade = await runInstall(["--once", ...node.flags], image);
    assert.equal(upgrade.code, 0, upgrade.stderr);
    assert.deepEqual(
      [...Deno.readDirSync(trees)].map((e) => e.name).sort(),
      [current, "v2"].sort(),
    );
    assert.equal(await Deno.readTextFile(join(node.binDir, "hydra")), nodeLauncher(current));
    const again = await runInstall(["--once", ...node.flags], image);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(
      !again.logs.some((l) => /^(created|replaced|removed) /.test(String(l.msg))),
      "the kept version stays until the next upgrade",
    );

    const un = await runInstall(["--uninstall", ...node.flags], image);
    assert.equal(un.code, 0, un.stderr);
    assert.deepEqual(
      [...Deno.readDirSync(node.binDir)].map((e) => e.name).sort(),
      ["bridge", "host-local", "portmap"],
      "both versions removed",
    );
  } finally {
    await removeNode(node);
  }
});
