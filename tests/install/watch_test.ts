/**
 * The installer left running: it rewrites the kubeconfig when the projected
 * token rotates, regenerates the meta conf when the default conf changes,
 * repairs deleted files, waits for a default conf that is not there yet,
 * serves its health endpoint, and on SIGTERM exits leaving everything.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import {
  DEFAULT_CONF,
  makeNode,
  removeNode,
  runInstall,
  snapshot,
  startInstall,
  waitFor,
  writeProjectedToken,
} from "./helpers.ts";

async function tokenIn(kubeconfig: string): Promise<string | undefined> {
  try {
    return parseYaml(await Deno.readTextFile(kubeconfig)).users[0].user.token;
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("token rotation rewrites the kubeconfig; SIGTERM exits 0 and leaves the conf", async () => {
  const node = await makeNode({ token: "token-one" });
  const source = join(node.root, "build");
  await Deno.writeTextFile(source, "#!/bin/sh\necho build\n");
  const kubeconfig = join(node.confDir, "hydra.d", "hydra.kubeconfig");
  const conf = join(node.confDir, "00-hydra.conflist");
  const installer = startInstall([...node.flags, `--source=${source}`, "--interval=0.1"]);
  try {
    await installer.waitForLog((l) => l.msg === "installed", "the first install");
    assert.equal(await tokenIn(kubeconfig), "token-one");
    const before = await Deno.stat(kubeconfig);

    // The kubelet rotates the projected token.
    await writeProjectedToken(node.saDir, "token-two");
    await waitFor(async () => await tokenIn(kubeconfig) === "token-two", "the rotated token");
    const after = await Deno.stat(kubeconfig);
    assert.notEqual(after.ino, before.ino, "rewritten by rename, not in place");
    assert.equal((after.mode ?? 0) & 0o777, 0o600);

    // The meta conf still points at the same kubeconfig path: it did not change.
    const metaBefore = await Deno.stat(conf);
    await writeProjectedToken(node.saDir, "token-three");
    await waitFor(async () => await tokenIn(kubeconfig) === "token-three", "the third token");
    assert.equal((await Deno.stat(conf)).ino, metaBefore.ino);

    const nodeBefore = await snapshot(node.root, node.binDir, node.confDir);
    const result = await installer.stop("SIGTERM");
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.logs.some((l) => String(l.msg).startsWith("SIGTERM received")));
    // Nothing removed or changed on the way out.
    assert.deepEqual(await snapshot(node.root, node.binDir, node.confDir), nodeBefore);
    assert.ok(await exists(conf));
    // The manifest follows the rotation, so uninstall still recognises the file.
    const manifest = JSON.parse(
      await Deno.readTextFile(join(node.confDir, "hydra.d", "install-manifest.json")),
    );
    const entry = manifest.entries.find((e: { path: string }) => e.path === kubeconfig);
    const { createHash } = await import("node:crypto");
    assert.equal(
      entry.sha256,
      createHash("sha256").update(await Deno.readFile(kubeconfig)).digest("hex"),
    );
  } finally {
    await installer.stop("SIGKILL");
    await removeNode(node);
  }
});

Deno.test("the watch loop follows the default conf and repairs deleted files", async () => {
  const node = await makeNode();
  const source = join(node.root, "build");
  await Deno.writeTextFile(source, "#!/bin/sh\necho build\n");
  const conf = join(node.confDir, "00-hydra.conflist");
  const installer = startInstall([...node.flags, `--source=${source}`, "--interval=0.1"]);
  try {
    await installer.waitForLog((l) => l.msg === "installed", "the first install");

    // The default network's operator changes its conf: hydra's delegate follows.
    const changed = { ...DEFAULT_CONF, plugins: [DEFAULT_CONF.plugins[0]] };
    await Deno.writeTextFile(node.defaultConf, JSON.stringify(changed));
    await waitFor(async () => {
      const c = JSON.parse(await Deno.readTextFile(conf));
      return c.plugins[0].delegates[0].plugins.length === 1;
    }, "the regenerated meta conf");
    assert.equal(JSON.parse(await Deno.readTextFile(conf)).plugins[0].capabilities, undefined);

    // Someone deletes the executable and a symlink: both come back.
    await Deno.remove(join(node.binDir, "hydra"));
    await Deno.remove(join(node.binDir, "kube-node"));
    await waitFor(
      async () =>
        await exists(join(node.binDir, "hydra")) && await exists(join(node.binDir, "kube-node")),
      "the repaired files",
    );
    assert.equal(await Deno.readTextFile(join(node.binDir, "hydra")), "#!/bin/sh\necho build\n");

    // A broken default conf later on: hydra keeps its last good conf and says why.
    const good = await Deno.readTextFile(conf);
    await Deno.writeTextFile(node.defaultConf, "{ not json");
    await installer.waitForLog(
      (l) => l.level === "error" && String(l.msg).includes("not valid JSON"),
      "the error about the broken default conf",
    );
    assert.equal(await Deno.readTextFile(conf), good);
    // And the default conf vanishing entirely does not take hydra's conf away.
    await Deno.remove(node.defaultConf);
    await installer.waitForLog((l) => String(l.msg).includes("is gone"), "the warning");
    assert.equal(await Deno.readTextFile(conf), good);

    const result = await installer.stop("SIGTERM");
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await Deno.readTextFile(conf), good);
  } finally {
    await installer.stop("SIGKILL");
    await removeNode(node);
  }
});

Deno.test("waits for the default conf to appear before writing anything", async () => {
  const node = await makeNode({ defaultConf: null });
  const source = join(node.root, "build");
  await Deno.writeTextFile(source, "#!/bin/sh\necho build\n");
  const installer = startInstall([
    ...node.flags,
    `--source=${source}`,
    "--once",
    "--default-conf-timeout=120",
  ]);
  try {
    await installer.waitForLog((l) => String(l.msg).startsWith("waiting for"), "waiting");
    assert.equal(await exists(join(node.binDir, "hydra")), false, "nothing written yet");
    assert.equal(await exists(join(node.confDir, "hydra.d")), false);

    await Deno.writeTextFile(node.defaultConf, JSON.stringify(DEFAULT_CONF));
    await installer.waitForLog((l) => l.msg === "installed", "the install");
    const result = await installer.wait();
    assert.equal(result.code, 0, result.stderr);
    const conf = JSON.parse(await Deno.readTextFile(join(node.confDir, "00-hydra.conflist")));
    assert.deepEqual(conf.plugins[0].delegates, [DEFAULT_CONF]);
  } finally {
    await installer.stop("SIGKILL");
    await removeNode(node);
  }
});

Deno.test("no default conf within the timeout: exit 1, nothing written", async () => {
  const node = await makeNode({ defaultConf: null });
  try {
    const before = await snapshot(node.root, node.binDir, node.confDir);
    const run = await runInstall([...node.flags, "--once", "--default-conf-timeout=0.3"]);
    assert.equal(run.code, 1);
    const errors = run.logs.filter((l) => l.level === "error").map((l) => String(l.msg));
    assert.match(errors.join("\n"), /no default CNI conf in .* after 0\.3s/);
    assert.deepEqual(await snapshot(node.root, node.binDir, node.confDir), before);
  } finally {
    await removeNode(node);
  }
});

Deno.test("health endpoint: /healthz, /readyz and /metrics", async () => {
  const node = await makeNode({ defaultConf: null });
  const source = join(node.root, "build");
  await Deno.writeTextFile(source, "#!/bin/sh\necho build\n");
  const installer = startInstall([
    ...node.flags,
    `--source=${source}`,
    "--interval=0.1",
    "--health-addr=127.0.0.1:0",
  ]);
  try {
    await installer.waitForLog((l) => typeof l.address === "string", "the endpoint");
    const address = String(installer.logs.find((l) => typeof l.address === "string")!.address);
    const get = async (path: string) => {
      const res = await fetch(`http://${address}${path}`);
      return { status: res.status, body: await res.text() };
    };
    await installer.waitForLog((l) => String(l.msg).startsWith("waiting for"), "waiting");
    assert.equal((await get("/healthz")).status, 200);
    const notReady = await get("/readyz");
    assert.equal(notReady.status, 503);
    assert.match(notReady.body, /waiting for a default CNI conf/);

    await Deno.writeTextFile(node.defaultConf, JSON.stringify(DEFAULT_CONF));
    await installer.waitForLog((l) => l.msg === "installed", "the install");
    await waitFor(async () => (await get("/readyz")).status === 200, "readiness");
    const metrics = await get("/metrics");
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^hydra_install_ready 1$/m);
    assert.match(metrics.body, /^hydra_install_changes_total\{role="conf"\} 1$/m);
    assert.match(metrics.body, /^hydra_install_passes_total\{result="ok"\} [1-9]/m);
    assert.equal((await get("/nope")).status, 404);

    const result = await installer.stop("SIGTERM");
    assert.equal(result.code, 0, result.stderr);
  } finally {
    await installer.stop("SIGKILL");
    await removeNode(node);
  }
});

Deno.test("a health port already in use: clear error, exit 1, nothing written", async () => {
  const node = await makeNode();
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const before = await snapshot(node.root, node.binDir, node.confDir);
    const port = (busy.addr as Deno.NetAddr).port;
    const run = await runInstall([...node.flags, `--health-addr=127.0.0.1:${port}`]);
    assert.equal(run.code, 1);
    assert.match(
      run.logs.filter((l) => l.level === "error").map((l) => String(l.msg)).join("\n"),
      new RegExp(`cannot serve health on 127\\.0\\.0\\.1:${port}`),
    );
    assert.deepEqual(await snapshot(node.root, node.binDir, node.confDir), before);
  } finally {
    busy.close();
    await removeNode(node);
  }
});
