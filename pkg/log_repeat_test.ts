import assert from "node:assert/strict";
import { createRepeatFilter } from "./log_repeat.ts";

Deno.test("an unchanged message is admitted once, then once per interval with the count", () => {
  let t = 0;
  const f = createRepeatFilter(60_000, () => t);
  assert.equal(f.admit("no default conf"), 0);
  const admitted: (number | undefined)[] = [];
  for (let i = 0; i < 20; i++) {
    t += 5_000;
    admitted.push(f.admit("no default conf"));
  }
  // Every 5 s for 100 s: the 12th retry (60 s later) is logged, saying 11 were held back.
  assert.deepEqual(admitted.filter((a) => a !== undefined), [11]);
  assert.equal(admitted.indexOf(11), 11);
});

Deno.test("a changed message is admitted at once; clear starts afresh", () => {
  let t = 0;
  const f = createRepeatFilter(60_000, () => t);
  assert.equal(f.admit("a"), 0);
  t += 1_000;
  assert.equal(f.admit("a"), undefined);
  assert.equal(f.admit("b"), 0);
  assert.equal(f.clear(), 1);
  assert.equal(f.admit("b"), 0);
});
