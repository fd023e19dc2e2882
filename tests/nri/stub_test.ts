/**
 * The plugin stub over a real unix socket against a fake runtime, for what a
 * real containerd does not produce: Synchronize split in chunks, events and
 * methods hydra did not subscribe to, a request deadline shorter than the
 * announced timeout, requests without a pod, malformed bytes and frames, and
 * random input. Everything containerd does (registration, the pod lifecycle
 * over both RPC paths, budgets, rollbacks, restarts, pre-launch) is tested
 * against a real one in containerd_test.ts.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { StatusCode, TtrpcStatusError } from "../../nri/errors.ts";
import {
  encodeNri,
  NriEvent,
  type PodSandbox,
  RunPodSandboxRequestSchema,
  StateChangeEventSchema,
} from "../../nri/messages.ts";
import { encodeFrame } from "../../nri/mux.ts";
import {
  type HookContext,
  type NriHooks,
  type PluginStatus,
  runNriPlugin,
} from "../../nri/stub.ts";
import { concat, samplePod } from "../../nri/testdata.ts";
import { decodeResponse, encodeMessage, encodeRequest, MessageType } from "../../nri/ttrpc.ts";
import { withTempDir } from "../helpers/netns.ts";
import { type FakeConnection, handshake, startFakeRuntime } from "./fake_runtime.ts";

interface Recorded {
  hook: string;
  pod?: PodSandbox;
  pods?: PodSandbox[];
  context?: HookContext;
}

function recordingHooks(overrides: Partial<NriHooks> = {}): { hooks: NriHooks; calls: Recorded[] } {
  const calls: Recorded[] = [];
  const hooks: NriHooks = {
    onSynchronize: (pods, context) => {
      calls.push({ hook: "sync", pods, context });
      return Promise.resolve();
    },
    onRunPodSandbox: (pod, context) => {
      calls.push({ hook: "run", pod, context });
      return Promise.resolve();
    },
    onStopPodSandbox: (pod, context) => {
      calls.push({ hook: "stop", pod, context });
      return Promise.resolve();
    },
    onRemovePodSandbox: (pod, context) => {
      calls.push({ hook: "remove", pod, context });
      return Promise.resolve();
    },
    ...overrides,
  };
  return { hooks, calls };
}

/** Runs the stub against a fake runtime for the duration of `body`. */
async function withPlugin(
  hooks: NriHooks,
  body: (accept: () => Promise<FakeConnection>, statuses: PluginStatus[]) => Promise<void>,
  options: { budgetMarginMs?: number } = {},
): Promise<void> {
  await withTempDir(async (dir) => {
    const runtime = startFakeRuntime(dir);
    const stop = new AbortController();
    const statuses: PluginStatus[] = [];
    const conns: FakeConnection[] = [];
    const running = runNriPlugin(hooks, {
      socketPath: runtime.socketPath,
      signal: stop.signal,
      log: () => {},
      onStatus: (s) => statuses.push(s),
      reconnectInitialMs: 10,
      reconnectMaxMs: 40,
      inheritedSocketFd: null,
      env: () => undefined,
      ...options,
    });
    try {
      await body(async () => {
        const conn = await runtime.accept();
        conns.push(conn);
        return conn;
      }, statuses);
    } finally {
      stop.abort();
      await running;
      for (const conn of conns) conn.close();
      await Promise.all(conns.map((c) => c.ended));
      runtime.close();
    }
  });
}

const podA = samplePod({ id: "a".repeat(64), name: "a" });
const podB = samplePod({ id: "b".repeat(64), name: "b" });
const podC = samplePod({ id: "c".repeat(64), name: "c" });

const podRequest = (pod: PodSandbox) => encodeNri(RunPodSandboxRequestSchema, { pod });

Deno.test("stub: joins a split Synchronize, acknowledges unsubscribed events, leaves other methods UNIMPLEMENTED", async () => {
  const { hooks, calls } = recordingHooks();
  await withPlugin(hooks, async (accept, statuses) => {
    const conn = await accept();
    const hs = await handshake(conn, {}, [[podA], [podB]]);
    assert.deepEqual(
      [hs.registration.pluginName, hs.registration.pluginIdx, hs.registration.NRIVersion],
      ["hydra", "10", "v0.12.0"],
    );
    assert.equal(hs.events, 0x7);
    // containerd splits only a Synchronize too big for one message.
    assert.deepEqual(hs.sync.map((r) => r.more), [true, false]);
    assert.deepEqual(calls.map((c) => c.hook), ["sync"]);
    assert.deepEqual(calls[0].pods!.map((p) => p.name), ["a", "b"]);
    assert.deepEqual(calls[0].pods![0], podA);
    assert.equal(calls[0].context!.runtime.name, "fake-runtime");
    assert.ok(statuses.some((s) => s.phase === "synchronized"));

    // An event hydra did not subscribe to is acknowledged without a hook.
    await conn.call(
      "StateChange",
      encodeNri(StateChangeEventSchema, { event: NriEvent.CREATE_CONTAINER, pod: podA }),
    );
    assert.deepEqual(calls.map((c) => c.hook), ["sync"]);

    // Everything else is UNIMPLEMENTED, which makes a v0.12 runtime fall back.
    for (
      const method of [
        "CreateContainer",
        "UpdatePodSandbox",
        "PostUpdatePodSandbox",
        "NoSuchMethod",
      ]
    ) {
      await assert.rejects(
        conn.call(method, podRequest(podC), 2000),
        (e) => e instanceof TtrpcStatusError && e.code === StatusCode.UNIMPLEMENTED,
      );
    }
    assert.equal((await conn.call("Shutdown", new Uint8Array(0), 2000)).length, 0);
  });
});

Deno.test("stub: the request's own timeout_nano caps the budget", async () => {
  const { hooks } = recordingHooks({
    onRunPodSandbox: (_pod, ctx) =>
      new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve())),
  });
  await withPlugin(hooks, async (accept) => {
    const conn = await accept();
    // containerd's requests carry the deadline of its own timeout; a shorter one must win.
    await handshake(conn, { requestTimeout: 60_000n });
    await assert.rejects(
      conn.call("RunPodSandbox", podRequest(podB), 400),
      (e) => e instanceof TtrpcStatusError && /budget/.test(e.message),
    );
  }, { budgetMarginMs: 100 });
});

Deno.test("stub: a status code a hook chose is kept; a request without a pod is INVALID_ARGUMENT", async () => {
  const { hooks } = recordingHooks({
    onRunPodSandbox: () =>
      Promise.reject(new TtrpcStatusError(StatusCode.FAILED_PRECONDITION, "network red not found")),
  });
  await withPlugin(hooks, async (accept) => {
    const conn = await accept();
    await handshake(conn);
    await assert.rejects(
      conn.call("StateChange", encodeNri(StateChangeEventSchema, { event: 1, pod: podB }), 2000),
      (e) => e instanceof TtrpcStatusError && e.code === StatusCode.FAILED_PRECONDITION,
    );
    await assert.rejects(
      conn.call("RunPodSandbox", new Uint8Array(0), 2000), // no pod at all
      (e) => e instanceof TtrpcStatusError && e.code === StatusCode.INVALID_ARGUMENT,
    );
  });
});

/** A raw request on conn 1 with an explicit stream id. */
function rawRequest(
  streamId: number,
  method: string,
  payload: Uint8Array,
  type: number = MessageType.REQUEST,
) {
  const data = encodeRequest({
    service: "nri.pkg.api.v1alpha1.Plugin",
    method,
    payload,
    timeoutNano: 0n,
    metadata: [],
  });
  return encodeFrame(1, encodeMessage(streamId, type, 0, data));
}

async function statusOn(conn: FakeConnection, streamId: number): Promise<number> {
  const answer = await conn.answer(streamId);
  return decodeResponse(answer.data!).status?.code ?? 0;
}

Deno.test("stub: malformed requests get ttrpc errors and the connection stays up", async () => {
  const { hooks, calls } = recordingHooks();
  await withPlugin(hooks, async (accept) => {
    const conn = await accept();
    await handshake(conn);
    await conn.raw(
      encodeFrame(1, encodeMessage(1001, MessageType.REQUEST, 0, Uint8Array.of(0x0a, 0x7f, 1))),
    );
    assert.equal(await statusOn(conn, 1001), StatusCode.INVALID_ARGUMENT); // truncated Request
    await conn.raw(rawRequest(1003, "RunPodSandbox", Uint8Array.of(0x0a, 0x05, 0x0a)));
    assert.equal(await statusOn(conn, 1003), StatusCode.INVALID_ARGUMENT); // truncated pod
    await conn.raw(rawRequest(1006, "Shutdown", new Uint8Array(0)));
    assert.equal(await statusOn(conn, 1006), StatusCode.INVALID_ARGUMENT); // even stream id
    await conn.raw(rawRequest(1001, "Shutdown", new Uint8Array(0)));
    assert.equal(await statusOn(conn, 1001), StatusCode.INVALID_ARGUMENT); // reused id
    await conn.raw(rawRequest(1005, "Shutdown", new Uint8Array(0)));
    assert.equal(await statusOn(conn, 1005), StatusCode.OK);
    // 4 MiB + 1 of data: skipped, answered RESOURCE_EXHAUSTED, framing intact.
    const big = new Uint8Array(10 + (4 << 20) + 1);
    new DataView(big.buffer).setUint32(0, (4 << 20) + 1);
    new DataView(big.buffer).setUint32(4, 1007);
    big[8] = MessageType.REQUEST;
    for (let at = 0; at < big.length; at += 1 << 20) {
      await conn.raw(encodeFrame(1, big.subarray(at, at + (1 << 20))));
    }
    assert.equal(await statusOn(conn, 1007), StatusCode.RESOURCE_EXHAUSTED);
    await conn.raw(rawRequest(1009, "Frobnicate", new Uint8Array(0)));
    assert.equal(await statusOn(conn, 1009), StatusCode.UNIMPLEMENTED);
    await conn.raw(rawRequest(1011, "RunPodSandbox", podRequest(podA)));
    assert.equal(await statusOn(conn, 1011), StatusCode.OK);
    assert.deepEqual(calls.map((c) => c.hook), ["sync", "run"]);
  });
});

Deno.test("stub: an impossible frame or a truncated message ends the connection and the stub reconnects", async () => {
  const { hooks } = recordingHooks();
  await withPlugin(hooks, async (accept) => {
    const first = await accept();
    await handshake(first);
    await first.raw(Uint8Array.of(0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff)); // 2 GiB frame
    await first.ended; // the plugin dropped it
    const second = await accept();
    await handshake(second);
    // Half a message, then the runtime vanishes.
    await second.raw(
      encodeFrame(1, encodeMessage(5, MessageType.REQUEST, 0, new Uint8Array(100)).subarray(0, 40)),
    );
    second.close();
    const third = await accept();
    const hs = await handshake(third);
    assert.equal(hs.events, 0x7);
  });
});

Deno.test("fuzz: the serve loop survives random bytes and random frames on the socket", async () => {
  const { hooks, calls } = recordingHooks();
  const frame = fc.record({
    connId: fc.constantFrom(0, 1, 2, 3),
    body: fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.record({
        streamId: fc.integer({ min: 0, max: 40 }),
        type: fc.integer({ min: 0, max: 4 }),
        data: fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.constantFrom(
            rawRequestData("Configure"),
            rawRequestData("Synchronize"),
            rawRequestData("RunPodSandbox"),
          ),
        ),
      }).map((m) => encodeMessage(m.streamId, m.type, 0, m.data)),
    ),
  }).map((f) => encodeFrame(f.connId === 0 ? 7 : f.connId, f.body));
  const input = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.array(frame, { maxLength: 6 }).map((fs) => concat(...fs)),
  );
  await withPlugin(hooks, async (accept) => {
    await fc.assert(
      fc.asyncProperty(input, fc.boolean(), async (bytes, afterHandshake) => {
        const conn = await accept();
        await conn.registered;
        if (afterHandshake) await handshake(conn);
        await conn.raw(bytes).catch(() => {}); // the plugin may already have hung up
        conn.close();
        await conn.ended;
      }),
      { numRuns: 25 },
    );
    // Still alive and fully working.
    const conn = await accept();
    await handshake(conn, {}, [[podA]]);
    await conn.call("RunPodSandbox", podRequest(podB), 2000);
    assert.equal(calls.at(-1)?.hook, "run");
    assert.equal(calls.at(-1)?.pod?.name, "b");
  });
});

function rawRequestData(method: string): Uint8Array {
  return encodeRequest({
    service: "nri.pkg.api.v1alpha1.Plugin",
    method,
    payload: Uint8Array.of(0x0a, 0x02, 0x0a, 0x00),
    timeoutNano: 0n,
    metadata: [],
  });
}
