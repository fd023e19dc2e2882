import assert from "node:assert/strict";
import type { KubeClient, KubeList, ListOptions } from "./client.ts";
import { KubeApiError } from "./errors.ts";
import { startInformer } from "./informer.ts";
import type { KubeObject } from "./watch.ts";

/**
 * A client serving `n` objects of about `size` bytes each in pages, and a watch that stays
 * open; `expireOnce` makes the first continued page fail as an expired continue token does.
 */
function fakeClient(
  n: number,
  size: number,
  limits: (number | undefined)[],
  expireOnce = false,
): KubeClient {
  const items: KubeObject[] = Array.from({ length: n }, (_, i) => ({
    metadata: { name: `o${i}`, resourceVersion: "1" },
  }));
  const unused = () => Promise.reject(new Error("not used"));
  return {
    server: "https://fake",
    timeoutMs: 1000,
    request: unused,
    get: unused,
    create: unused,
    update: unused,
    patch: unused,
    delete: unused,
    list<T>(_path: string, lo: ListOptions = {}): Promise<KubeList<T>> {
      limits.push(lo.limit);
      if (lo.continue && expireOnce) {
        expireOnce = false;
        return Promise.reject(
          new KubeApiError({
            status: 410,
            reason: "Expired",
            message: "continue token expired",
            method: "GET",
            path: _path,
          }),
        );
      }
      const from = Number(lo.continue ?? 0);
      const page = items.slice(from, from + (lo.limit ?? n));
      const next = from + page.length;
      return Promise.resolve({
        metadata: { resourceVersion: "1", continue: next < n ? String(next) : undefined },
        items: page as T[],
        bytes: page.length * size,
      });
    },
    stream(_path, ro) {
      // A watch that delivers nothing until it is stopped.
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          ro.signal.addEventListener("abort", () => c.close());
        },
      });
      return Promise.resolve(new Response(body));
    },
    close() {},
  };
}

Deno.test("informer: with pageBytes, a few objects tell their size, then the list starts over in pages of that size", async () => {
  const limits: (number | undefined)[] = [];
  const inf = startInformer(fakeClient(40, 100, limits), "/api/v1/things", {
    pageSize: 4,
    pageBytes: 1000,
  });
  const few: (number | undefined)[] = [];
  const small = startInformer(fakeClient(5, 100, few), "/api/v1/things", {
    pageSize: 4,
    pageBytes: 1000,
  });
  try {
    await inf.synced;
    await small.synced;
    assert.equal(inf.list().length, 40);
    // 8 to learn the size, then 1000 / 100 = 10 per page from the start.
    assert.deepEqual(limits, [8, 10, 10, 10, 10]);
    // Everything came with the first request.
    assert.deepEqual(few, [8]);
    assert.equal(small.list().length, 5);
  } finally {
    await inf.stop();
    await small.stop();
  }
});

Deno.test("informer: an expired continue token starts the list over, and the list is complete", async () => {
  const limits: (number | undefined)[] = [];
  const inf = startInformer(fakeClient(10, 100, limits, true), "/api/v1/things", {
    pageSize: 4,
  });
  try {
    await inf.synced;
    assert.equal(inf.list().length, 10);
    assert.equal(inf.lists, 1);
    assert.deepEqual(limits, [4, 4, 4, 4, 4]);
  } finally {
    await inf.stop();
  }
});

Deno.test("informer: without pageBytes every page has pageSize items; large objects never shrink it", async () => {
  const limits: (number | undefined)[] = [];
  const inf = startInformer(fakeClient(9, 100, limits), "/api/v1/things", { pageSize: 4 });
  const big: (number | undefined)[] = [];
  const inf2 = startInformer(fakeClient(9, 10_000, big), "/api/v1/things", {
    pageSize: 4,
    pageBytes: 1000,
  });
  try {
    await inf.synced;
    await inf2.synced;
    assert.deepEqual(limits, [4, 4, 4]);
    assert.deepEqual(big, [8, 4, 4, 4]);
    assert.equal(inf2.list().length, 9);
  } finally {
    await inf.stop();
    await inf2.stop();
  }
});
