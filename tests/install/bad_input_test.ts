/**
 * Bad input: a missing or read-only bin dir, a broken default conf, a
 * missing token, a conf dir where hydra's conf would not come first, a
 * failure half-way through. Each gives a clear error, exit status 1, and a
 * node exactly as it was before the run.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { run as runCmd, tryRun } from "../helpers/netns.ts";
import {
  DEFAULT_CONF,
  errorMessages,
  makeNode,
  type Node,
  removeNode,
  runInstall,
  snapshot,
} from "./helpers.ts";

async function withNode(
  opts: Parameters<typeof makeNode>[0],
  fn: (node: Node, source: string) => Promise<void>,
): Promise<void> {
  const node = await makeNode(opts);
  try {
    const source = join(node.root, "build");
    await Deno.writeTextFile(source, "#!/bin/sh\necho build\n");
    await fn(node, source);
  } finally {
    await removeNode(node);
  }
}

/** Mounts a tmpfs at `dir` (read-only when `ro`); returns how to unmount it. */
async function mountTmpfs(dir: string, ro: boolean): Promise<() => Promise<void>> {
  await runCmd("mount", "-t", "tmpfs", "-o", ro ? "ro,size=1m" : "size=1m", "tmpfs", dir);
  return () => tryRun("umount", dir);
}

/** Runs an install expected to fail; checks exit 1, the message, and that nothing changed. */
async function expectFailure(
  node: Node,
  args: string[],
  message: RegExp,
  env: Record<string, string> = {},
): Promise<void> {
  const before = await snapshot(node.root, node.binDir, node.confDir);
  const run = await runInstall(args, env);
  assert.equal(run.code, 1, run.stderr);
  assert.equal(run.stdout, "");
  assert.match(errorMessages(run.logs).join("\n"), message);
  assert.deepEqual(await snapshot(node.root, node.binDir, node.confDir), before);
}

Deno.test("missing bin dir: clear error, nothing written", async () => {
  await withNode({}, async (node, source) => {
    await Deno.remove(node.binDir, { recursive: true });
    await expectFailure(
      node,
      [...node.flags, "--once", `--source=${source}`],
      /CNI bin dir .*opt-cni-bin does not exist \(--bin-dir\)/,
    );
  });
});

Deno.test("read-only bin dir: clear error, nothing written", async () => {
  await withNode({}, async (node, source) => {
    const unmount = await mountTmpfs(node.binDir, true);
    try {
      await expectFailure(
        node,
        [...node.flags, "--once", `--source=${source}`],
        /cannot write .*opt-cni-bin\/hydra \(read-only file system\)/,
      );
    } finally {
      await unmount();
    }
  });
});

Deno.test("default conf that is not valid JSON: names the file, nothing written", async () => {
  await withNode(
    { defaultConf: '{"cniVersion": "1.0.0", "name": "podnet", "plugins": [' }, //
    async (node, source) => {
      await expectFailure(
        node,
        [...node.flags, "--once", `--source=${source}`],
        /default CNI conf .*10-podnet\.conflist is not valid JSON/,
      );
    },
  );
});

Deno.test("default conf without a plugin type: names the file and the field", async () => {
  await withNode(
    { defaultConf: { cniVersion: "1.0.0", name: "podnet", plugins: [{}] } }, //
    async (node, source) => {
      await expectFailure(
        node,
        [...node.flags, "--once", `--source=${source}`],
        /10-podnet\.conflist is not a CNI network configuration: plugins\[0\] has no "type"/,
      );
    },
  );
});

Deno.test("missing ServiceAccount token: clear error, nothing written", async () => {
  await withNode({ token: "" }, async (node, source) => {
    await expectFailure(
      node,
      [...node.flags, "--once", `--source=${source}`],
      /ServiceAccount token .*serviceaccount\/token does not exist/,
    );
  });
});

Deno.test("no API server address: clear error, nothing written", async () => {
  await withNode({}, async (node, source) => {
    const flags = node.flags.filter((f) => !f.startsWith("--server="));
    await expectFailure(
      node,
      [...flags, "--once", `--source=${source}`],
      /KUBERNETES_SERVICE_HOST is not set/,
      { KUBERNETES_SERVICE_HOST: "" },
    );
  });
});

Deno.test("a conf that would sort before hydra's: refused, nothing written", async () => {
  await withNode({}, async (node, source) => {
    await Deno.writeTextFile(join(node.confDir, "00-early.conf"), JSON.stringify(DEFAULT_CONF));
    await expectFailure(
      node,
      [...node.flags, "--once", `--source=${source}`],
      /00-early\.conf sorts before 00-hydra\.conflist/,
    );
  });
});

Deno.test("failure half-way (conf dir read-only): what the run wrote is rolled back", async () => {
  await withNode({}, async (node, source) => {
    const stateDir = join(node.root, "state");
    await Deno.mkdir(stateDir);
    const flags = [...node.flags, `--state-dir=${stateDir}`, "--once"];
    // The conf dir becomes a tmpfs holding the default conf, then read-only.
    const confText = JSON.stringify(DEFAULT_CONF);
    const unmount = await mountTmpfs(node.confDir, false);
    try {
      await Deno.writeTextFile(node.defaultConf, confText);
      await runCmd("mount", "-o", "remount,ro", node.confDir);
      const before = await snapshot(node.root, node.binDir, node.confDir, stateDir);
      const run = await runInstall([...flags, `--source=${source}`]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        errorMessages(run.logs).join("\n"),
        /cannot write .*00-hydra\.conflist \(read-only file system\)/,
      );
      // The executable, symlinks and kubeconfig were written, then taken back.
      const undone = run.logs.find((l) => String(l.msg).includes("rolled back"))?.paths;
      assert.ok(Array.isArray(undone), run.stderr);
      assert.ok(undone.includes(join(node.binDir, "hydra")), run.stderr);
      assert.ok(undone.includes(join(stateDir, "hydra.kubeconfig")), run.stderr);
      assert.deepEqual(await snapshot(node.root, node.binDir, node.confDir, stateDir), before);
    } finally {
      await unmount();
    }
  });
});

Deno.test("a failed upgrade puts the previous executable back (same inode)", async () => {
  await withNode({}, async (node, source) => {
    const stateDir = join(node.root, "state");
    await Deno.mkdir(stateDir);
    const flags = [...node.flags, `--state-dir=${stateDir}`, "--once"];
    const unmount = await mountTmpfs(node.confDir, false);
    try {
      await Deno.writeTextFile(node.defaultConf, JSON.stringify(DEFAULT_CONF));
      const first = await runInstall([...flags, `--source=${source}`]);
      assert.equal(first.code, 0, first.stderr);
      // A new default conf (so the meta conf must change) on a now read-only conf dir,
      // a new build, and a rotated token.
      await Deno.writeTextFile(
        node.defaultConf,
        JSON.stringify({ ...DEFAULT_CONF, name: "podnet2" }),
      );
      await runCmd("mount", "-o", "remount,ro", node.confDir);
      await Deno.writeTextFile(source, "#!/bin/sh\necho build-2\n");
      await Deno.writeTextFile(node.tokenFile, "token-rotated");
      const before = await snapshot(node.root, node.binDir, node.confDir, stateDir);

      const run = await runInstall([...flags, `--source=${source}`]);
      assert.equal(run.code, 1, run.stderr);
      assert.deepEqual(await snapshot(node.root, node.binDir, node.confDir, stateDir), before);
      assert.equal(await Deno.readTextFile(join(node.binDir, "hydra")), "#!/bin/sh\necho build\n");
    } finally {
      await unmount();
    }
  });
});
