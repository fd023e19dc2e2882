/**
 * `hydra install --once` and `--uninstall` on a fake node: what lands where,
 * with which modes; re-runs rewrite nothing; uninstall restores the node.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { builtinNames } from "../../engine/builtins.ts";
import { INSTALL_LOCK_NAME } from "../../install/reconcile.ts";
import {
  changedPaths,
  DEFAULT_CONF,
  errorMessages,
  FAKE_CA,
  makeNode,
  removeNode,
  runInstall,
  snapshot,
} from "./helpers.ts";

const ROLE_NAMES = [...new Set([...builtinNames(), "hydra-ipam", "kube-node"])]
  .filter((n) => n !== "hydra").sort();

function mode(st: Deno.FileInfo): number {
  return (st.mode ?? 0) & 0o7777;
}

Deno.test("fresh install in meta mode: executable, symlinks, meta conf, kubeconfig, manifest", async () => {
  const node = await makeNode();
  try {
    const source = join(node.root, "hydra-build");
    await Deno.writeTextFile(source, "#!/bin/sh\necho build-1\n");
    const defaultBefore = await Deno.stat(node.defaultConf);

    const run = await runInstall([...node.flags, "--once", `--source=${source}`]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "", "stdout stays empty; logs go to stderr");
    assert.ok(run.logs.some((l) => l.msg === "installed"), run.stderr);

    // The executable: same bytes as the source, executable by everyone.
    const exe = join(node.binDir, "hydra");
    const exeStat = await Deno.lstat(exe);
    assert.ok(exeStat.isFile);
    assert.equal(mode(exeStat), 0o755);
    assert.equal(await Deno.readTextFile(exe), await Deno.readTextFile(source));

    // One relative symlink per role.
    for (const name of ROLE_NAMES) {
      const p = join(node.binDir, name);
      assert.ok((await Deno.lstat(p)).isSymlink, `${name} is a symlink`);
      assert.equal(await Deno.readLink(p), "hydra");
    }
    assert.ok(ROLE_NAMES.includes("kube-node") && ROLE_NAMES.includes("hydra-ipam"));
    // The default network's plugins are untouched.
    assert.equal(await Deno.readTextFile(join(node.binDir, "bridge")), "#!/bin/sh\necho bridge\n");

    // The meta conf sorts first and wraps the default conf as first delegate.
    const confNames = [...Deno.readDirSync(node.confDir)].filter((e) => e.isFile)
      .map((e) => e.name).sort();
    assert.equal(confNames[0], "00-hydra.conflist");
    const confPath = join(node.confDir, "00-hydra.conflist");
    assert.equal(mode(await Deno.stat(confPath)), 0o644);
    const conf = JSON.parse(await Deno.readTextFile(confPath));
    const kubeconfigPath = join(node.confDir, "hydra.d", "hydra.kubeconfig");
    assert.equal(conf.cniVersion, DEFAULT_CONF.cniVersion);
    assert.equal(conf.plugins.length, 1);
    assert.equal(conf.plugins[0].type, "hydra");
    assert.deepEqual(conf.plugins[0].delegates, [DEFAULT_CONF]);
    assert.equal(conf.plugins[0].kubeconfig, kubeconfigPath);
    assert.equal(conf.plugins[0].binDir, node.binDir);
    assert.deepEqual(conf.plugins[0].capabilities, { portMappings: true });

    // The default conf itself is untouched.
    const defaultAfter = await Deno.stat(node.defaultConf);
    assert.equal(defaultAfter.mtime?.getTime(), defaultBefore.mtime?.getTime());
    assert.equal(defaultAfter.ino, defaultBefore.ino);

    // The kubeconfig: private, embedding the token and CA.
    assert.equal(mode(await Deno.stat(kubeconfigPath)), 0o600);
    const kc = parseYaml(await Deno.readTextFile(kubeconfigPath));
    assert.equal(kc.kind, "Config");
    assert.equal(kc.clusters[0].cluster.server, "https://10.96.0.1:443");
    assert.equal(atob(kc.clusters[0].cluster["certificate-authority-data"]), FAKE_CA);
    assert.equal(kc.users[0].user.token, "token-one");
    assert.equal(kc["current-context"], kc.contexts[0].name);

    // The manifest records every path written, and nothing else.
    const manifestPath = join(node.confDir, "hydra.d", "install-manifest.json");
    assert.equal(mode(await Deno.stat(manifestPath)), 0o600);
    const manifest = JSON.parse(await Deno.readTextFile(manifestPath));
    const recorded = manifest.entries.map((e: { path: string }) => e.path).sort();
    assert.deepEqual(
      recorded,
      [
        exe,
        confPath,
        join(node.confDir, "hydra.d"),
        kubeconfigPath,
        ...ROLE_NAMES.map((n) => join(node.binDir, n)),
      ].sort(),
    );
    // No temporary or backup names left behind.
    for (const dir of [node.binDir, node.confDir, join(node.confDir, "hydra.d")]) {
      for (const e of Deno.readDirSync(dir)) {
        if (dir === node.binDir && e.name === INSTALL_LOCK_NAME) continue;
        assert.ok(!e.name.startsWith("."), e.name);
      }
    }
  } finally {
    await removeNode(node);
  }
});

Deno.test("a re-run with nothing changed rewrites nothing (inodes and mtimes stay)", async () => {
  const node = await makeNode();
  try {
    const source = join(node.root, "hydra-build");
    await Deno.writeTextFile(source, "#!/bin/sh\necho build-1\n");
    const first = await runInstall([...node.flags, "--once", `--source=${source}`]);
    assert.equal(first.code, 0, first.stderr);
    const before = await snapshot(node.root, node.binDir, node.confDir);

    const second = await runInstall([...node.flags, "--once", `--source=${source}`]);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(changedPaths(second.logs), []);
    assert.deepEqual(await snapshot(node.root, node.binDir, node.confDir), before);
  } finally {
    await removeNode(node);
  }
});

Deno.test("a wrong or missing role symlink is fixed, and only it", async () => {
  const node = await makeNode();
  try {
    const source = join(node.root, "hydra-build");
    await Deno.writeTextFile(source, "#!/bin/sh\necho build-1\n");
    assert.equal((await runInstall([...node.flags, "--once", `--source=${source}`])).code, 0);
    const [first, second] = ROLE_NAMES;
    await Deno.remove(join(node.binDir, first));
    await Deno.remove(join(node.binDir, second));
    await Deno.symlink("bridge", join(node.binDir, second));

    const run = await runInstall([...node.flags, "--once", `--source=${source}`]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(
      changedPaths(run.logs).sort(),
      [join(node.binDir, first), join(node.binDir, second)].sort(),
    );
    assert.equal(await Deno.readLink(join(node.binDir, first)), "hydra");
    assert.equal(await Deno.readLink(join(node.binDir, second)), "hydra");
  } finally {
    await removeNode(node);
  }
});

Deno.test("installed from source, the executable and its role names run hydra", async () => {
  const node = await makeNode();
  try {
    // No --source: running from the source tree installs a launcher pinned to it.
    const run = await runInstall([...node.flags, "--once"]);
    assert.equal(run.code, 0, run.stderr);
    const out = await new Deno.Command(join(node.binDir, "hydra"), {
      args: ["version", "--json"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const version = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.ok(Array.isArray(version.cniVersions) && version.cniVersions.includes("1.0.0"));

    // A role symlink dispatches by its name: a CNI VERSION call answers as a plugin.
    const role = ROLE_NAMES.find((n) => builtinNames().includes(n))!;
    const cni = await new Deno.Command(join(node.binDir, role), {
      env: { CNI_COMMAND: "VERSION" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = cni.stdin.getWriter();
    await w.write(new TextEncoder().encode('{"cniVersion":"1.0.0"}'));
    await w.close();
    const res = await cni.output();
    assert.ok(res.success, new TextDecoder().decode(res.stderr));
    const answer = JSON.parse(new TextDecoder().decode(res.stdout));
    assert.ok(answer.supportedVersions.includes("1.0.0"), JSON.stringify(answer));
  } finally {
    await removeNode(node);
  }
});

Deno.test("installed from source, a CNI exec runs as the tree's own launcher runs it", async () => {
  const node = await makeNode();
  try {
    const run = await runInstall([...node.flags, "--once"]);
    assert.equal(run.code, 0, run.stderr);
    // An ADD waits for its config on stdin: long enough to read what runs.
    const cni = new Deno.Command(join(node.binDir, "hydra-bridge"), {
      env: { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c1", CNI_IFNAME: "eth0", CNI_NETNS: "/x" },
      stdin: "piped",
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      let cmdline = "";
      for (let i = 0; i < 200 && !cmdline.includes(" run "); i++) {
        await new Promise((r) => setTimeout(r, 10));
        cmdline = (await Deno.readTextFile(`/proc/${cni.pid}/cmdline`)).replaceAll("\0", " ");
      }
      // One process (no helper left in between), the bundle, the image's V8 flags.
      assert.match(
        cmdline,
        /\/deno run .*--v8-flags=\S*--lite-mode\S* .*\/\.cache\/bundle\/hydra-cni\.js/,
      );
      const environ = await Deno.readTextFile(`/proc/${cni.pid}/environ`);
      assert.ok(environ.split("\0").includes("HYDRA_ARGV0=hydra-bridge"), "the role is its name");
    } finally {
      await cni.stdin.close();
      await cni.status;
    }
  } finally {
    await removeNode(node);
  }
});

Deno.test("uninstall leaves the node's directories exactly as they were before install", async () => {
  const node = await makeNode();
  try {
    const source = join(node.root, "hydra-build");
    await Deno.writeTextFile(source, "#!/bin/sh\necho build-1\n");
    const before = await snapshot(node.root, node.binDir, node.confDir);

    assert.equal((await runInstall([...node.flags, "--once", `--source=${source}`])).code, 0);
    // A rotated token and an upgrade in between: the manifest follows them.
    await Deno.writeTextFile(source, "#!/bin/sh\necho build-2\n");
    assert.equal((await runInstall([...node.flags, "--once", `--source=${source}`])).code, 0);
    assert.notDeepEqual(await snapshot(node.root, node.binDir, node.confDir), before);

    const run = await runInstall([...node.flags, "--uninstall"]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(errorMessages(run.logs), []);
    assert.deepEqual(await snapshot(node.root, node.binDir, node.confDir), before);

    // Nothing recorded any more: a second uninstall is a no-op that says so.
    const again = await runInstall([...node.flags, "--uninstall"]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.logs.some((l) => String(l.msg).includes("nothing recorded")), again.stderr);
  } finally {
    await removeNode(node);
  }
});

Deno.test("uninstall leaves a file someone else replaced, and says so", async () => {
  const node = await makeNode();
  try {
    const source = join(node.root, "hydra-build");
    await Deno.writeTextFile(source, "#!/bin/sh\necho build-1\n");
    assert.equal((await runInstall([...node.flags, "--once", `--source=${source}`])).code, 0);
    const foreign = join(node.binDir, ROLE_NAMES[0]);
    await Deno.remove(foreign);
    await Deno.writeTextFile(foreign, "someone else's plugin\n");

    const run = await runInstall([...node.flags, "--uninstall"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await Deno.readTextFile(foreign), "someone else's plugin\n");
    assert.ok(
      run.logs.some((l) => l.level === "warn" && String(l.msg).includes(foreign)),
      run.stderr,
    );
    await assert.rejects(Deno.lstat(join(node.binDir, "hydra")), Deno.errors.NotFound);
    await assert.rejects(Deno.lstat(join(node.confDir, "00-hydra.conflist")), Deno.errors.NotFound);
  } finally {
    await removeNode(node);
  }
});

Deno.test("nri mode writes no CNI conf, and switching from meta to nri takes hydra's conf back", async () => {
  const node = await makeNode();
  try {
    const source = join(node.root, "hydra-build");
    await Deno.writeTextFile(source, "#!/bin/sh\necho build-1\n");
    const confBefore = await snapshot(node.root, node.confDir);

    const nri = await runInstall([...node.flags, "--once", "--mode=nri", `--source=${source}`]);
    assert.equal(nri.code, 0, nri.stderr);
    await assert.rejects(Deno.lstat(join(node.confDir, "00-hydra.conflist")), Deno.errors.NotFound);
    assert.ok((await Deno.lstat(join(node.binDir, "hydra"))).isFile);
    assert.ok((await Deno.lstat(join(node.confDir, "hydra.d", "hydra.kubeconfig"))).isFile);

    assert.equal((await runInstall([...node.flags, "--once", `--source=${source}`])).code, 0);
    assert.ok((await Deno.lstat(join(node.confDir, "00-hydra.conflist"))).isFile);

    const back = await runInstall([...node.flags, "--once", "--mode=nri", `--source=${source}`]);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(changedPaths(back.logs), [
      join(node.confDir, "00-hydra.conflist"),
      join(node.confDir, "hydra.d", "install-manifest.json"),
    ]);
    await assert.rejects(Deno.lstat(join(node.confDir, "00-hydra.conflist")), Deno.errors.NotFound);

    // Router mode installs nothing on the host: it takes back everything.
    const router = await runInstall([...node.flags, "--once", "--mode=router"]);
    assert.equal(router.code, 0, router.stderr);
    assert.deepEqual(await snapshot(node.root, node.confDir), confBefore);
    await assert.rejects(Deno.lstat(join(node.binDir, "hydra")), Deno.errors.NotFound);
  } finally {
    await removeNode(node);
  }
});

Deno.test("--help prints usage on stdout and exits 0; a bad flag exits 2 with a JSON error", async () => {
  const help = await runInstall(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--bin-dir/);
  assert.match(help.stdout, /--uninstall/);

  const bad = await runInstall(["--mode=sideways", "--once"]);
  assert.equal(bad.code, 2);
  assert.match(errorMessages(bad.logs).join("\n"), /--mode "sideways"/);
});

Deno.test("a corrupt manifest: uninstall refuses (exit 1, nothing removed); install rewrites it", async () => {
  const node = await makeNode();
  try {
    const source = join(node.root, "hydra-build");
    await Deno.writeTextFile(source, "#!/bin/sh\necho build-1\n");
    assert.equal((await runInstall([...node.flags, "--once", `--source=${source}`])).code, 0);
    const manifestPath = join(node.confDir, "hydra.d", "install-manifest.json");
    const good = await Deno.readTextFile(manifestPath);
    await Deno.writeTextFile(manifestPath, good.slice(0, 40));
    const before = await snapshot(node.root, node.binDir, node.confDir);

    const un = await runInstall([...node.flags, "--uninstall"]);
    assert.equal(un.code, 1);
    assert.match(errorMessages(un.logs).join("\n"), /install manifest .* is not valid JSON/);
    assert.deepEqual(await snapshot(node.root, node.binDir, node.confDir), before);

    const again = await runInstall([...node.flags, "--once", `--source=${source}`]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(again.logs.some((l) => l.level === "warn" && String(l.msg).includes("manifest")));
    // Every file and link is recorded again. Whether hydra made the hydra.d directory was
    // only in the lost record, so that directory is no longer claimed.
    type Entry = { kind: string };
    const files = (text: string) => JSON.parse(text).entries.filter((e: Entry) => e.kind !== "dir");
    assert.deepEqual(files(await Deno.readTextFile(manifestPath)), files(good));
  } finally {
    await removeNode(node);
  }
});

Deno.test("another local user cannot stall the installer by holding a lock on the bin dir", async () => {
  const node = await makeNode();
  const holders: Deno.ChildProcess[] = [];
  try {
    // As on a node: root's folders, readable by everyone.
    for (const dir of [node.root, node.binDir]) await Deno.chmod(dir, 0o755);
    assert.equal((await runInstall([...node.flags, "--once"])).code, 0);
    // User nobody locks what an installer locks: the folder (as before) and the lock file.
    for (const path of [node.binDir, join(node.binDir, INSTALL_LOCK_NAME)]) {
      holders.push(
        new Deno.Command("setpriv", {
          args: ["--reuid=65534", "--regid=65534", "--clear-groups", "flock", path, "sleep", "60"],
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    await new Promise((r) => setTimeout(r, 500));
    // A pass takes well under a second; a stalled one would wait out nobody's minute.
    const run = runInstall([...node.flags, "--once"]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"stalled">((r) => timer = setTimeout(() => r("stalled"), 20_000));
    const outcome = await Promise.race([run, late]);
    clearTimeout(timer);
    assert.notEqual(outcome, "stalled", "the install pass waited on a lock user nobody holds");
    // The lock is a root-only file nobody could open.
    const lock = await Deno.lstat(join(node.binDir, INSTALL_LOCK_NAME));
    assert.ok(lock.isFile);
    assert.equal(mode(lock), 0o600);
    // Uninstall takes the lock file away with everything else.
    assert.equal((await runInstall([...node.flags, "--uninstall"])).code, 0);
    await assert.rejects(Deno.lstat(join(node.binDir, INSTALL_LOCK_NAME)), Deno.errors.NotFound);
  } finally {
    for (const h of holders) {
      try {
        h.kill("SIGKILL");
      } catch {
        // already gone
      }
      await h.status;
    }
    await removeNode(node);
  }
});
