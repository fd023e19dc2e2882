import assert from "node:assert/strict";
import { openBatchOf, withRemovalBatch } from "./link_batch.ts";

Deno.test("withRemovalBatch: the batch is open with its owner while the work runs, and closed after, also when it throws", async () => {
  const failures = await withRemovalBatch("c1", "/run/netns/p", async () => {
    await Promise.resolve();
    assert.equal(openBatchOf("c1", "/run/netns/p")?.owner, 3);
  }, 3);
  assert.deepEqual(failures, []);
  assert.equal(openBatchOf("c1", "/run/netns/p"), undefined);

  await assert.rejects(
    withRemovalBatch("c2", "/run/netns/p", () => Promise.reject(new Error("del failed"))),
    /del failed/,
  );
  assert.equal(openBatchOf("c2", "/run/netns/p"), undefined);
});
