/**
 * The source launcher (bin/hydra), the launcher `hydra install` writes on a
 * node running from a tree copy, and the compiled executable (deno.json's
 * compile task, which the Dockerfile runs) give V8 the same flags, so the
 * memory and speed measured here through the launcher are the image's.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { nodeLauncher } from "../../install/tree_copy.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("bin/hydra, the node's launcher and `deno task compile` run V8 with the same flags", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${root}deno.json`)).tasks as Record<
    string,
    string
  >;
  const compiled = /--v8-flags=(\S+)/.exec(tasks.compile)?.[1];
  assert.ok(compiled, `the compile task sets no V8 flags: ${tasks.compile}`);

  const launcher = await Deno.readTextFile(`${root}bin/hydra`);
  const assigned = /^v8_flags=(\S+)$/m.exec(launcher)?.[1];
  assert.equal(assigned, compiled);
  const runs = launcher.split("\n").filter((l) => /exec "\$HYDRA_DENO" run /.test(l));
  assert.equal(runs.length, 2, "the bundle's and the sources' deno run");
  for (const line of runs) assert.match(line, /--v8-flags=\$v8_flags /);

  const node = nodeLauncher("v1");
  assert.equal(/^v8=(\S+)$/m.exec(node)?.[1], compiled);
  const nodeRuns = node.split("\n").filter((l) => /exec "\$root\/deno" run /.test(l));
  assert.equal(nodeRuns.length, 2, "the node launcher's bundle and sources runs");
  for (const line of nodeRuns) assert.match(line, /--v8-flags=\$v8 /);

  assert.match(await Deno.readTextFile(`${root}Dockerfile`), /deno task compile/);
});
