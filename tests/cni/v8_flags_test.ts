/**
 * The source launcher (bin/hydra) and the compiled executable (deno.json's
 * compile task, which the Dockerfile runs) give V8 the same flags, so the
 * memory and speed measured here through the launcher are the image's.
 */

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("bin/hydra and `deno task compile` run V8 with the same flags", async () => {
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

  assert.match(await Deno.readTextFile(`${root}Dockerfile`), /deno task compile/);
});
