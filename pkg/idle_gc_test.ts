import assert from "node:assert/strict";
import { collectedFields, createIdleCollector } from "./idle_gc.ts";
import { delay } from "./async.ts";

/** A collector over a fake heap: `grow` adds resident bytes, a collection gives back all but 1 MiB. */
function fakeHeap(quietMs: number) {
  let resident = 1 << 20;
  const collected: number[] = [];
  const idle = createIdleCollector({
    quietMs,
    residentBytes: () => resident,
    collect: () => (resident = 1 << 20),
    onCollected: (c) => collected.push(c.beforeBytes - c.afterBytes),
  });
  return { idle, collected, grow: (bytes: number) => (resident += bytes) };
}

Deno.test("idle collector: one collection once the work goes quiet, none while it goes on", async () => {
  const { idle, collected, grow } = fakeHeap(250);
  for (let i = 0; i < 5; i++) {
    grow(1 << 20);
    idle.touch();
    await delay(20);
  }
  assert.deepEqual(collected, [], "work kept coming: no collection yet");
  await delay(500);
  assert.deepEqual(collected, [5 << 20]);
  idle.touch();
  await delay(500);
  assert.deepEqual(collected, [5 << 20], "no growth since: nothing to give back");
  grow(3 << 20);
  idle.touch();
  idle.stop();
  await delay(500);
  assert.equal(collected.length, 1, "stopped: no collection");
});

Deno.test("idle collector: does nothing without V8's gc, and its fields name what it gave back", async () => {
  const idle = createIdleCollector({ quietMs: 1, collect: undefined, residentBytes: () => 1e9 });
  idle.touch();
  await delay(10);
  idle.stop();
  assert.deepEqual(collectedFields({ ms: 12.4, beforeBytes: 90 << 20, afterBytes: 75 << 20 }), {
    ms: 12,
    freedMiB: 15,
    residentMiB: 75,
  });
});
