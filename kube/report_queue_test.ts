import assert from "node:assert/strict";
import type { KubeClient } from "./client.ts";
import { KubeTransportError } from "./errors.ts";
import { silentLogger } from "../pkg/log.ts";
import { delay } from "../pkg/async.ts";
import { withTempDir } from "../tests/helpers/netns.ts";
import { startReportQueue } from "./report_queue.ts";
import type { SpooledReport } from "./report_spool.ts";

/** An API server that never answers: every call fails as a timeout (transient: retried). */
function unreachable(): KubeClient {
  const fail = (method: string) => (path: string) =>
    Promise.reject(new KubeTransportError("timeout", "no answer", method, path));
  return {
    server: "https://nowhere",
    timeoutMs: 10,
    request: (method: string, path: string) => fail(method)(path),
    get: fail("GET"),
    list: fail("GET"),
    create: fail("POST"),
    update: fail("PUT"),
    patch: fail("PATCH"),
    delete: fail("DELETE"),
    stream: fail("GET"),
    close: () => {},
  } as unknown as KubeClient;
}

function report(name: string): SpooledReport {
  return {
    pod: { namespace: "ns", name, uid: `u-${name}`, infraContainerId: "c" },
    reports: [{ name: "blue", isDefault: false, result: { cniVersion: "1.1.0" } }],
    at: Date.now(),
  };
}

Deno.test("the report queue holds a bounded number in memory and spools the rest", async () => {
  await withTempDir(async (dir) => {
    const spoolDir = `${dir}/reports`;
    const q = startReportQueue(unreachable(), {
      log: silentLogger,
      spoolDir,
      workers: 1,
      attemptMs: 5,
      maxQueued: 3,
    });
    try {
      for (let i = 0; i < 10; i++) await q.enqueue(report(`p${i}`));
      await delay(100);
      assert.equal(q.pending(), 3, "three in memory");
      const spooled = [...Deno.readDirSync(spoolDir)].filter((e) => e.name.endsWith(".json"));
      assert.equal(spooled.length, 10, "every one on disk");
      // Read back only as far as there is room.
      assert.equal(await q.loadSpool(), 0);
    } finally {
      await q.stop(0);
    }
    const all = [...Deno.readDirSync(spoolDir)].filter((e) => e.name.endsWith(".json"));
    assert.equal(all.length, 10, "nothing lost at stop");
  });
});

/** An API server that takes every status write; `written` lists the pods written. */
function recording(written: string[]): KubeClient {
  const nameOf = (path: string) => /\/pods\/([^/]+)/.exec(path)?.[1] ?? "";
  const pod = (path: string) => ({
    metadata: { name: nameOf(path), namespace: "ns", uid: `u-${nameOf(path)}` },
  });
  return {
    ...unreachable(),
    get: (path: string) => Promise.resolve(pod(path)),
    patch: (path: string) => {
      written.push(nameOf(path));
      return Promise.resolve(pod(path));
    },
    create: () => Promise.resolve({}),
  } as unknown as KubeClient;
}

Deno.test("a report is in the spool once the queue took it: a daemon killed then loses none", async () => {
  await withTempDir(async (dir) => {
    const spoolDir = `${dir}/reports`;
    // The first daemon takes two reports and dies (kill -9: no stop, nothing drained).
    const first = startReportQueue(unreachable(), {
      log: silentLogger,
      spoolDir,
      workers: 1,
      attemptMs: 5,
    });
    await first.enqueue(report("a"));
    await first.enqueue(report("b"));
    const onDisk = [...Deno.readDirSync(spoolDir)].filter((e) => e.name.endsWith(".json"));
    assert.equal(onDisk.length, 2, "both on disk before the answer");
    // Stopping spools nothing more: what it holds is in the spool already.
    await first.stop(0);
    // The next start reads them back and writes them.
    const written: string[] = [];
    const next = startReportQueue(recording(written), { log: silentLogger, spoolDir, workers: 1 });
    try {
      assert.equal(await next.loadSpool(), 2);
      for (let i = 0; i < 100 && next.pending() > 0; i++) await delay(20);
    } finally {
      await next.stop(0);
    }
    assert.deepEqual(written.sort(), ["a", "b"]);
    assert.deepEqual([...Deno.readDirSync(spoolDir)].filter((e) => e.name.endsWith(".json")), []);
  });
});

Deno.test("a spooled report a crash truncated is set aside, the others are queued", async () => {
  await withTempDir(async (dir) => {
    const spoolDir = `${dir}/reports`;
    await Deno.mkdir(spoolDir);
    await Deno.writeTextFile(`${spoolDir}/ns_a_u_1.json`, JSON.stringify(report("a")));
    await Deno.writeTextFile(`${spoolDir}/ns_b_u_2.json`, JSON.stringify(report("b")).slice(0, 30));
    await Deno.writeTextFile(`${spoolDir}/ns_c_u_3.json`, "");
    const q = startReportQueue(unreachable(), {
      log: silentLogger,
      spoolDir,
      workers: 1,
      attemptMs: 5,
    });
    try {
      assert.equal(await q.loadSpool(), 1);
    } finally {
      await q.stop(0);
    }
    assert.deepEqual([...Deno.readDirSync(spoolDir)].map((e) => e.name).sort(), [
      ".damaged-ns_b_u_2.json",
      ".damaged-ns_c_u_3.json",
      "ns_a_u_1.json",
    ]);
  });
});
