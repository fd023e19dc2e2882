/**
 * The plugin stub over a real unix socket against a fake runtime: the
 * registration sequence, event dispatch, per-request budgets, reconnection
 * and survival of malformed input.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import fc from "fast-check";
import { StatusCode, TtrpcStatusError } from "../../nri/errors.ts";
import {
  encodePodSandboxRequest,
  encodeStateChangeEvent,
  netnsPathOf,
  NriEvent,
  type PodSandbox,
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

Deno.test("stub: registers, answers Configure with 0x7, joins split Synchronize, dispatches pod events", async () => {
  const { hooks, calls } = recordingHooks();
  await withPlugin(hooks, async (accept, statuses) => {
    const conn = await accept();
    const hs = await handshake(conn, {}, [[podA], [podB]]);
    assert.deepEqual(hs.registration, {
      pluginName: "hydra",
      pluginIdx: "10",
      nriVersion: "v0.12.0",
    });
    assert.equal(hs.events, 0x7);
    assert.deepEqual(hs.sync, [{ update: [], more: true }, { update: [], more: false }]);
    assert.deepEqual(calls.map((c) => c.hook), ["sync"]);
    assert.deepEqual(calls[0].pods!.map((p) => p.name), ["a", "b"]);
    assert.equal(calls[0].context!.runtime.name, "fake-runtime");
    assert.ok(statuses.some((s) => s.phase === "synchronized"));

    // NRI v0.12 dedicated RPCs.
    const req = encodePodSandboxRequest({ pod: podC });
    assert.equal((await conn.call("RunPodSandbox", req, 2000)).length, 0);
    assert.equal((await conn.call("StopPodSandbox", req, 2000)).length, 0);
    assert.equal((await conn.call("RemovePodSandbox", req, 2000)).length, 0);
    // Older runtimes: StateChange with the pod in field 2.
    for (
      const event of [
        NriEvent.RUN_POD_SANDBOX,
        NriEvent.STOP_POD_SANDBOX,
        NriEvent.REMOVE_POD_SANDBOX,
      ]
    ) {
      await conn.call("StateChange", encodeStateChangeEvent({ event, pod: podA }), 2000);
    }
    // An event hydra did not subscribe to is acknowledged without a hook.
    await conn.call(
      "StateChange",
      encodeStateChangeEvent({ event: NriEvent.CREATE_CONTAINER, pod: podA }),
    );
    assert.deepEqual(
      calls.slice(1).map((c) => `${c.hook}:${c.pod!.name}:${c.context!.rpc}`),
      [
        "run:c:RunPodSandbox",
        "stop:c:StopPodSandbox",
        "remove:c:RemovePodSandbox",
        "run:a:StateChange",
        "stop:a:StateChange",
        "remove:a:StateChange",
      ],
    );
    assert.equal(netnsPathOf(calls[1].pod!), netnsPathOf(podC));
    assert.deepEqual(calls[1].pod, podC);

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
        conn.call(method, req, 2000),
        (e) => e instanceof TtrpcStatusError && e.code === StatusCode.UNIMPLEMENTED,
      );
    }
    assert.equal((await conn.call("Shutdown", new Uint8Array(0), 2000)).length, 0);
  });
});

Deno.test("stub: a hook that overruns its budget is answered DEADLINE_EXCEEDED before the runtime's deadline", async () => {
  let runSignal: AbortSignal | undefined;
  const order: string[] = [];
  const { hooks } = recordingHooks({
    onRunPodSandbox: (_pod, ctx) => {
      runSignal = ctx.signal;
      order.push("run started");
      // Ends only when told the answer is no longer awaited.
      return new Promise((resolve) =>
        ctx.signal.addEventListener("abort", () => {
          order.push("run aborted");
          resolve();
        })
      );
    },
    onStopPodSandbox: () => {
      order.push("stop");
      return Promise.resolve();
    },
  });
  await withPlugin(hooks, async (accept) => {
    const conn = await accept();
    await handshake(conn, { requestTimeoutMs: 600 });
    // The runtime's own deadline is 600 ms: a late answer would surface as
    // the client's local timeout ("no answer within"), not as hydra's status.
    await assert.rejects(
      conn.call("RunPodSandbox", encodePodSandboxRequest({ pod: podA }), 600),
      (e) =>
        e instanceof TtrpcStatusError && e.code === StatusCode.DEADLINE_EXCEEDED &&
        /budget/.test(e.message),
    );
    assert.ok(runSignal?.aborted);
    // The rollback Stop for the same pod runs after the aborted run settled.
    await conn.call("StopPodSandbox", encodePodSandboxRequest({ pod: podA }), 600);
    assert.deepEqual(order, ["run started", "run aborted", "stop"]);
  }, { budgetMarginMs: 150 });
});

Deno.test("stub: the request's own timeout_nano caps the budget", async () => {
  const { hooks } = recordingHooks({
    onRunPodSandbox: (_pod, ctx) =>
      new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve())),
  });
  await withPlugin(hooks, async (accept) => {
    const conn = await accept();
    await handshake(conn, { requestTimeoutMs: 60_000 });
    await assert.rejects(
      conn.call("RunPodSandbox", encodePodSandboxRequest({ pod: podB }), 400),
      (e) => e instanceof TtrpcStatusError && /budget/.test(e.message),
    );
  }, { budgetMarginMs: 100 });
});

Deno.test("stub: hook errors become status errors; a chosen status code is kept", async () => {
  const { hooks } = recordingHooks({
    onRunPodSandbox: (pod) =>
      pod.name === "a" ? Promise.reject(new Error("no address left in pool blue")) : Promise.reject(
        new TtrpcStatusError(StatusCode.FAILED_PRECONDITION, "network red not found"),
      ),
  });
  await withPlugin(hooks, async (accept) => {
    const conn = await accept();
    await handshake(conn);
    await assert.rejects(
      conn.call("RunPodSandbox", encodePodSandboxRequest({ pod: podA }), 2000),
      (e) =>
        e instanceof TtrpcStatusError && e.code === StatusCode.UNKNOWN &&
        /no address left in pool blue/.test(e.message),
    );
    await assert.rejects(
      conn.call("StateChange", encodeStateChangeEvent({ event: 1, pod: podB }), 2000),
      (e) => e instanceof TtrpcStatusError && e.code === StatusCode.FAILED_PRECONDITION,
    );
    await assert.rejects(
      conn.call("RunPodSandbox", new Uint8Array(0), 2000), // no pod at all
      (e) => e instanceof TtrpcStatusError && e.code === StatusCode.INVALID_ARGUMENT,
    );
  });
});

Deno.test("stub: reconnects after the runtime goes away and registers, configures and syncs again", async () => {
  const { hooks, calls } = recordingHooks();
  await withPlugin(hooks, async (accept, statuses) => {
    const first = await accept();
    await handshake(first, {}, [[podA]]);
    first.close(); // containerd restarts
    await first.ended;
    const second = await accept();
    const hs = await handshake(second, {}, [[podA, podB]]);
    assert.equal(hs.registration.pluginName, "hydra");
    await second.call("RunPodSandbox", encodePodSandboxRequest({ pod: podC }), 2000);
    assert.deepEqual(calls.map((c) => c.hook), ["sync", "sync", "run"]);
    assert.deepEqual(calls[1].pods!.map((p) => p.name), ["a", "b"]);
    assert.ok(statuses.some((s) => s.phase === "disconnected" && s.disconnects === 1));
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
    await conn.raw(rawRequest(1011, "RunPodSandbox", encodePodSandboxRequest({ pod: podA })));
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
    await conn.call("RunPodSandbox", encodePodSandboxRequest({ pod: podB }), 2000);
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

Deno.test("stub: a pre-launched plugin serves the inherited socket (NRI_PLUGIN_SOCKET=3) and exits when it closes", async () => {
  await withTempDir(async (dir) => {
    const runtime = startFakeRuntime(dir);
    const pluginEnd = net.createConnection(runtime.socketPath);
    await new Promise((resolve, reject) =>
      pluginEnd.once("connect", resolve).once("error", reject)
    );
    const conn = await runtime.accept();
    const child = spawn(Deno.execPath(), [
      "run",
      "-A",
      new URL("./prelaunched_plugin.ts", import.meta.url).pathname,
    ], {
      stdio: ["ignore", "pipe", "inherit", pluginEnd],
      env: {
        ...Deno.env.toObject(),
        NRI_PLUGIN_SOCKET: "3",
        NRI_PLUGIN_NAME: "prelaunched",
        NRI_PLUGIN_IDX: "42",
      },
    });
    pluginEnd.destroy(); // the child holds its own copy
    let out = "";
    child.stdout!.on("data", (d: Uint8Array) => out += new TextDecoder().decode(d));
    const exited = new Promise<number | null>((resolve) =>
      child.on("close", (code) => resolve(code))
    );
    try {
      const hs = await handshake(conn, {}, [[podA]]);
      assert.deepEqual(hs.registration, {
        pluginName: "prelaunched",
        pluginIdx: "42",
        nriVersion: "v0.12.0",
      });
      await conn.call("RunPodSandbox", encodePodSandboxRequest({ pod: podC }), 2000);
    } finally {
      conn.close();
      await conn.ended;
      runtime.close();
    }
    assert.equal(await exited, 0);
    assert.deepEqual(out.trim().split("\n").map((l) => JSON.parse(l)), [
      { hook: "sync", pods: ["a"] },
      { hook: "run", pod: "c", netns: netnsPathOf(podC) },
      { hook: "exit" },
    ]);
  });
});

Deno.test("stub: Synchronize is answered OK when its hook overruns or fails, and events keep flowing", async () => {
  let release!: () => void;
  const released = new Promise<void>((r) => release = r);
  let syncSignal: AbortSignal | undefined;
  const { hooks, calls } = recordingHooks({
    onSynchronize: (pods, ctx) => {
      syncSignal = ctx.signal;
      return pods.length ? released : Promise.reject(new Error("cannot list attachments"));
    },
  });
  await withPlugin(hooks, async (accept, statuses) => {
    const first = await accept();
    const hs = await handshake(first, { requestTimeoutMs: 400 }, [[podA]]);
    assert.deepEqual(hs.sync, [{ update: [], more: false }]);
    assert.ok(statuses.some((s) => s.phase === "synchronized"));
    assert.equal(syncSignal?.aborted, false, "the sync work is not cut short by its budget");
    await first.call("RunPodSandbox", encodePodSandboxRequest({ pod: podB }), 400);
    assert.equal(calls.at(-1)?.pod?.name, "b");
    release();
    first.close();
    const second = await accept();
    const again = await handshake(second, {}, [[]]); // the hook rejects this time
    assert.deepEqual(again.sync, [{ update: [], more: false }]);
  }, { budgetMarginMs: 100 });
});
