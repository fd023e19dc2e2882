/**
 * Upgrading the executable under a runtime that keeps exec'ing and reading
 * it: every exec and every read sees one whole version, never a mixture or
 * a truncated file.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { INSTALL_LOCK_NAME } from "../../install/reconcile.ts";
import { changedPaths, makeNode, removeNode, runInstall } from "./helpers.ts";

/** A large executable script printing `version` (large so a copy takes a while). */
function buildScript(version: string): Uint8Array {
  const head = `#!/bin/sh\necho ${version}\nexit 0\n`;
  const pad = "#".repeat(24 << 20) + "\n";
  return new TextEncoder().encode(head + pad);
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

Deno.test("upgrading while the old executable is exec'd and read: never a partial file", async () => {
  const node = await makeNode();
  try {
    const builds = { v1: buildScript("v1"), v2: buildScript("v2") };
    const sources = { v1: join(node.root, "build-v1"), v2: join(node.root, "build-v2") };
    await Deno.writeFile(sources.v1, builds.v1);
    await Deno.writeFile(sources.v2, builds.v2);
    const hashes = new Set([sha256(builds.v1), sha256(builds.v2)]);

    const first = await runInstall([...node.flags, "--once", `--source=${sources.v1}`]);
    assert.equal(first.code, 0, first.stderr);
    const exe = join(node.binDir, "hydra");
    const viaRole = join(node.binDir, "kube-node");

    const seen = { reads: 0, execs: 0, outputs: new Set<string>(), badReads: [] as string[] };
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const data = await Deno.readFile(exe);
        seen.reads++;
        if (!hashes.has(sha256(data))) seen.badReads.push(`read ${data.length} bytes`);
        for (const path of [exe, viaRole]) {
          seen.execs++;
          try {
            const out = await new Deno.Command(path, { stdout: "piped", stderr: "piped" }).output();
            const text = new TextDecoder().decode(out.stdout).trim();
            seen.outputs.add(out.success ? text : `exit ${out.code}: ${text}`);
          } catch (err) {
            seen.outputs.add(`exec failed: ${err}`);
          }
        }
      }
    })();

    try {
      for (const version of ["v2", "v1", "v2", "v1", "v2"] as const) {
        const run = await runInstall([...node.flags, "--once", `--source=${sources[version]}`]);
        assert.equal(run.code, 0, run.stderr);
        assert.ok(changedPaths(run.logs).includes(exe), `${version} replaced the executable`);
        assert.equal(sha256(await Deno.readFile(exe)), sha256(builds[version]));
        assert.equal(((await Deno.stat(exe)).mode ?? 0) & 0o777, 0o755);
      }
    } finally {
      stop = true;
      await loop;
    }
    assert.deepEqual(seen.badReads, []);
    assert.ok(seen.reads > 0 && seen.execs > 0);
    for (const out of seen.outputs) assert.ok(out === "v1" || out === "v2", `exec printed ${out}`);
    // No temporary or backup files are left beside it.
    const hidden = [...Deno.readDirSync(node.binDir)].filter((e) =>
      e.name.startsWith(".") && e.name !== INSTALL_LOCK_NAME
    );
    assert.deepEqual(hidden, []);
  } finally {
    await removeNode(node);
  }
});

Deno.test("a changed executable gets a new inode; the old inode keeps the old content", async () => {
  const node = await makeNode();
  try {
    const source = join(node.root, "build");
    await Deno.writeTextFile(source, "#!/bin/sh\necho one\n");
    assert.equal((await runInstall([...node.flags, "--once", `--source=${source}`])).code, 0);
    const exe = join(node.binDir, "hydra");
    // A runtime holding the old file open (as an exec in progress does).
    const held = await Deno.open(exe, { read: true });
    try {
      const before = await Deno.stat(exe);
      await Deno.writeTextFile(source, "#!/bin/sh\necho two\n");
      const run = await runInstall([...node.flags, "--once", `--source=${source}`]);
      assert.equal(run.code, 0, run.stderr);
      const after = await Deno.stat(exe);
      assert.notEqual(after.ino, before.ino);
      assert.equal(await Deno.readTextFile(exe), "#!/bin/sh\necho two\n");
      const buf = new Uint8Array(64);
      const n = await held.read(buf);
      assert.equal(new TextDecoder().decode(buf.subarray(0, n ?? 0)), "#!/bin/sh\necho one\n");
    } finally {
      held.close();
    }
  } finally {
    await removeNode(node);
  }
});
