import assert from "node:assert/strict";
import { watchNodeFile } from "./source_file.ts";
import type { NodeInfo } from "./nodes.ts";

const list = (...names: string[]) =>
  JSON.stringify({ nodes: names.map((name) => ({ name, podCIDRs: [], addresses: [] })) });

/** Watches a node file in a fresh folder with a long settle time and no polling to speak of. */
async function watching(settleMs: number) {
  const dir = await Deno.makeTempDir({ prefix: "hydra-nodefile-" });
  const path = `${dir}/nodes.json`;
  await Deno.writeTextFile(path, list("a"));
  const seen: { names: string[]; at: number }[] = [];
  const errors: Error[] = [];
  const source = watchNodeFile(
    path,
    {
      onNodes: (nodes: NodeInfo[]) =>
        seen.push({ names: nodes.map((n) => n.name), at: Date.now() }),
      onError: (err) => errors.push(err),
    },
    60_000,
    settleMs,
  );
  await source.ready;
  return {
    path,
    seen,
    errors,
    async close() {
      await source.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
}

Deno.test("node file: a file renamed into place is read at once, without the settle wait", async () => {
  const w = await watching(3_000);
  try {
    assert.deepEqual(w.seen.map((s) => s.names), [["a"]]);
    await Deno.writeTextFile(`${w.path}.tmp`, list("a", "b"));
    const renamed = Date.now();
    await Deno.rename(`${w.path}.tmp`, w.path);
    await until(() => w.seen.length === 2, 2_500);
    assert.equal(w.seen.length, 2, "the renamed file was not read before the settle time");
    assert.deepEqual(w.seen[1].names, ["a", "b"]);
    assert.ok(w.seen[1].at - renamed < 2_500);
    assert.deepEqual(w.errors, []);
  } finally {
    await w.close();
  }
});

Deno.test("node file: a file written in place is read only after the settle wait", async () => {
  const w = await watching(1_500);
  try {
    const written = Date.now();
    await Deno.writeTextFile(w.path, list("a", "c"));
    await until(() => w.seen.length === 2, 5_000);
    assert.deepEqual(w.seen[1]?.names, ["a", "c"]);
    assert.ok(w.seen[1].at - written >= 1_400, "read before the writer could have finished");
    assert.deepEqual(w.errors, []);
  } finally {
    await w.close();
  }
});
