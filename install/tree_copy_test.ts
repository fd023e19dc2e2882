import assert from "node:assert/strict";
import { join } from "node:path";
import { commitTxn, newTxn, rollbackTxn } from "./txn.ts";
import {
  ensureVersion,
  isVersionFolder,
  nodeLauncher,
  removeVersion,
  TREES_DIR_NAME,
  treeSource,
} from "./tree_copy.ts";

/** A small tree with what a copy keeps and what it leaves out, and a stand-in Deno. */
async function fakeTree(dir: string): Promise<{ root: string; deno: string }> {
  const root = join(dir, "src");
  const files: Record<string, string> = {
    "main.ts": "console.log('hydra');\n",
    "deno.json": "{}\n",
    "bin/hydra": "#!/bin/sh\n",
    ".cache/bundle/hydra-cni.js": "// bundle\n",
    ".cache/deno/npm/pkg/index.js": "// npm\n",
    ".cache/deno/gen/file/x.js": "// transpiled at the tree's path\n",
    ".cache/deno/dep_analysis_cache_v2": "sqlite",
    ".cache/images/hydra.tar": "image",
    ".git/HEAD": "ref\n",
  };
  for (const [rel, text] of Object.entries(files)) {
    await Deno.mkdir(join(root, rel, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, rel), text);
  }
  await Deno.chmod(join(root, "bin/hydra"), 0o755);
  const deno = join(dir, "deno");
  await Deno.writeTextFile(deno, "#!/bin/sh\necho deno\n", { mode: 0o755 });
  return { root, deno };
}

Deno.test("a version folder holds Deno and the tree, without caches bound to the tree's path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { root, deno } = await fakeTree(dir);
    const src = await treeSource(root, deno);
    assert.deepEqual(src.files.map((f) => f.rel).sort(), [
      ".cache/bundle/hydra-cni.js",
      ".cache/deno/npm/pkg/index.js",
      "bin/hydra",
      "deno.json",
      "main.ts",
    ]);
    const trees = join(dir, "bin", TREES_DIR_NAME);
    await Deno.mkdir(trees, { recursive: true });
    const path = join(trees, src.version);
    const txn = newTxn();
    assert.equal(await ensureVersion(txn, path, src), true);
    await commitTxn(txn);
    assert.equal(await Deno.readTextFile(join(path, "deno")), "#!/bin/sh\necho deno\n");
    assert.equal((await Deno.stat(join(path, "tree/bin/hydra"))).mode! & 0o777, 0o755);
    // Modification times are kept: the bundle must stay as new as in the image.
    assert.equal(
      (await Deno.stat(join(path, "tree/.cache/bundle/hydra-cni.js"))).mtime?.getTime(),
      (await Deno.stat(join(root, ".cache/bundle/hydra-cni.js"))).mtime?.getTime(),
    );
    assert.ok(await isVersionFolder(path, src.version));
    // Nothing but the version folder in the trees folder (no scratch left).
    assert.deepEqual([...Deno.readDirSync(trees)].map((e) => e.name), [src.version]);
    assert.equal(await ensureVersion(newTxn(), path, src), false, "already in place");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a changed tree is a new version; the old one goes on commit and comes back on rollback", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { root, deno } = await fakeTree(dir);
    const trees = join(dir, "bin", TREES_DIR_NAME);
    await Deno.mkdir(trees, { recursive: true });
    const old = await treeSource(root, deno);
    const first = newTxn();
    await ensureVersion(first, join(trees, old.version), old);
    await commitTxn(first);

    await Deno.writeTextFile(join(root, "main.ts"), "console.log('hydra, upgraded');\n");
    const next = await treeSource(root, deno);
    assert.notEqual(next.version, old.version);

    const failed = newTxn();
    await ensureVersion(failed, join(trees, next.version), next);
    await removeVersion(failed, join(trees, old.version));
    await rollbackTxn(failed);
    assert.deepEqual([...Deno.readDirSync(trees)].map((e) => e.name), [old.version]);

    const upgrade = newTxn();
    await ensureVersion(upgrade, join(trees, next.version), next);
    await removeVersion(upgrade, join(trees, old.version));
    // Until the commit, the old version is only put aside (a launcher naming it still runs).
    assert.equal([...Deno.readDirSync(trees)].length, 2);
    await commitTxn(upgrade);
    assert.deepEqual([...Deno.readDirSync(trees)].map((e) => e.name), [next.version]);
    assert.equal(
      await Deno.readTextFile(join(trees, next.version, "tree/main.ts")),
      "console.log('hydra, upgraded');\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the launcher finds its version beside itself and passes its name as the role", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const version = "0123abcd";
    const root = join(dir, TREES_DIR_NAME, version);
    await Deno.mkdir(join(root, "tree/.cache/bundle"), { recursive: true });
    // A stand-in Deno that prints what it was asked to run and the role.
    await Deno.writeTextFile(
      join(root, "deno"),
      '#!/bin/sh\necho "$HYDRA_ARGV0 $DENO_DIR $*"\n',
      { mode: 0o755 },
    );
    await Deno.writeTextFile(join(root, "tree/.cache/bundle/hydra-cni.js"), "");
    await Deno.writeTextFile(join(dir, "hydra"), nodeLauncher(version), { mode: 0o755 });
    await Deno.symlink("hydra", join(dir, "hydra-bridge"));
    const run = async (exe: string, args: string[], env: Record<string, string>) => {
      const out = await new Deno.Command(join(dir, exe), {
        args,
        env: { PATH: "/usr/bin:/bin", ...env },
        clearEnv: true,
        stdout: "piped",
      }).output();
      assert.ok(out.success);
      return new TextDecoder().decode(out.stdout).trim();
    };
    const plugin = await run("hydra-bridge", [], { CNI_COMMAND: "ADD" });
    assert.match(
      plugin,
      /^hydra-bridge \S+\/tree\/\.cache\/deno run .*--no-config \S+hydra-cni\.js$/,
    );
    const cli = await run("hydra", ["version"], {});
    assert.match(cli, /^hydra \S+ run .*\/tree\/main\.ts version$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
