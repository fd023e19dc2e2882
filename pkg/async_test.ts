import assert from "node:assert/strict";
import {
  backoffDelay,
  createBackoff,
  createKeyedQueue,
  createSemaphore,
  delay,
  MAX_TIMER_MS,
  settlesWithin,
  withTimeout,
} from "./async.ts";

Deno.test("delay waits its time, ends at once on abort, and leaves no timer", async () => {
  let t0 = performance.now();
  await delay(30);
  assert.ok(performance.now() - t0 >= 25, "waited");
  const ctl = new AbortController();
  t0 = performance.now();
  const waiting = delay(60_000, ctl.signal);
  setTimeout(() => ctl.abort(), 10);
  await waiting;
  assert.ok(performance.now() - t0 < 5_000, "the abort ended it");
  t0 = performance.now();
  await delay(60_000, ctl.signal);
  assert.ok(performance.now() - t0 < 1_000, "an aborted signal does not wait at all");
  await delay(-5);
  await delay(Number.NaN);
  // The test sanitizer fails this test if a timer is left behind.
});

Deno.test("backoffDelay: doubles from the initial pause up to the cap; jitter spreads it", () => {
  const b = { initialMs: 100, maxMs: 1_000 };
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, b)), [
    100,
    200,
    400,
    800,
    1_000,
    1_000,
  ]);
  assert.equal(backoffDelay(0, b), 100, "attempt 0 counts as the first");
  assert.equal(backoffDelay(5_000, b), 1_000, "no overflow for a long run of failures");
  const j = { initialMs: 250, maxMs: 10_000, jitter: 0.2 };
  assert.equal(backoffDelay(1, j, () => 0), 200);
  assert.equal(backoffDelay(1, j, () => 0.5), 250);
  assert.equal(backoffDelay(1, j, () => 1), 300);
  assert.equal(backoffDelay(3, j, () => 0), 800);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(40, j);
    assert.ok(d >= 8_000 && d <= 12_000, `${d}`);
  }
});

Deno.test("createBackoff counts attempts and starts over on reset", () => {
  const b = createBackoff({ initialMs: 10, maxMs: 35 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next()], [10, 20, 35, 35]);
  assert.equal(b.attempts, 4);
  b.reset();
  assert.equal(b.attempts, 0);
  assert.equal(b.next(), 10);
});

Deno.test("withTimeout: the work's outcome, or the timeout's error; the work's later end is harmless", async () => {
  assert.equal(await withTimeout(Promise.resolve(7), 1_000, () => new Error("late")), 7);
  await assert.rejects(
    withTimeout(Promise.reject(new Error("own")), 1_000, () => new Error("late")),
    /^Error: own$/,
  );
  let finish!: () => void;
  const slow = new Promise<void>((r) => finish = r);
  await assert.rejects(withTimeout(slow, 20, () => new Error("20 ms passed")), /20 ms passed/);
  finish();
  // A deadline beyond what a timer holds is clamped, not fired at once.
  assert.equal(
    await withTimeout(delay(20).then(() => "done"), MAX_TIMER_MS * 10, () => new Error("x")),
    "done",
  );
});

Deno.test("settlesWithin: true when the work ends in time (even by failing), false when not", async () => {
  assert.equal(await settlesWithin(delay(5), 1_000), true);
  assert.equal(await settlesWithin(Promise.reject(new Error("no")), 1_000), true);
  let finish!: () => void;
  const slow = new Promise<void>((r) => finish = r);
  assert.equal(await settlesWithin(slow, 20), false);
  finish();
});

Deno.test("semaphore: at most n holders, waiters served in order, double release harmless", async () => {
  const sem = createSemaphore(2);
  const order: string[] = [];
  const a = await sem.acquire();
  const b = await sem.acquire();
  assert.equal(sem.held, 2);
  const c = sem.acquire().then((r) => (order.push("c"), r));
  const d = sem.acquire().then((r) => (order.push("d"), r));
  await delay(5);
  assert.equal(sem.waiting, 2);
  assert.deepEqual(order, []);
  a();
  a();
  const releaseC = await c;
  await delay(5);
  assert.deepEqual(order, ["c"], "one release lets one waiter in");
  b();
  const releaseD = await d;
  assert.deepEqual(order, ["c", "d"]);
  releaseC();
  releaseD();
  assert.equal(sem.held, 0);
  let running = 0;
  let most = 0;
  await Promise.all(
    Array.from({ length: 10 }, () =>
      sem.run(async () => {
        most = Math.max(most, ++running);
        await delay(2);
        running--;
      })),
  );
  assert.equal(most, 2);
  await assert.rejects(sem.run(() => Promise.reject(new Error("task failed"))), /task failed/);
  assert.equal(sem.held, 0, "a failing task gives its place back");
});

Deno.test("keyed queue: one key in call order, failures do not block it, other keys run beside", async () => {
  const q = createKeyedQueue();
  const log: string[] = [];
  const step = (name: string, ms: number, fail = false) => async () => {
    log.push(`${name}+`);
    await delay(ms);
    log.push(`${name}-`);
    if (fail) throw new Error(`${name} failed`);
    return name;
  };
  const a1 = q.run("a", step("a1", 20, true));
  const a2 = q.run("a", step("a2", 1));
  const b1 = q.run("b", step("b1", 1));
  assert.equal(q.size, 2);
  await assert.rejects(a1, /a1 failed/);
  assert.equal(await a2, "a2");
  assert.equal(await b1, "b1");
  assert.ok(log.indexOf("b1-") < log.indexOf("a1-"), "b did not wait for a");
  assert.ok(log.indexOf("a1-") < log.indexOf("a2+"), "a2 waited for a1");
  await q.idle();
  assert.equal(q.size, 0);
  await q.idle();
});
