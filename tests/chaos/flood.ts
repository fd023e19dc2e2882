/**
 * Floods of connections and malformed requests at the two sockets hydra
 * serves requests on: the node daemon's (many connections at once, each
 * sending garbage, an endless line, half a request, requests of the wrong
 * shape, or nothing at all) and the NRI plugin's connection to the runtime
 * (a stand-in runtime that, after the handshake, sends broken frames,
 * frames with huge lengths or for unknown connections, requests for
 * unknown services and methods, RunPodSandbox with a garbage payload, and
 * hundreds of requests at once). Either may drop a connection; neither may
 * die of it, and the NRI plugin must connect again.
 *
 * @module
 */

import { join } from "node:path";
import { encodeFrame } from "../../nri/mux.ts";
import { encodeMessage, encodeRequest, MessageType } from "../../nri/ttrpc.ts";
import { encodeNri, RunPodSandboxRequestSchema } from "../../nri/messages.ts";
import { samplePod } from "../../nri/testdata.ts";
import { spawnDaemon, stopProcessGroup } from "../infra/process.ts";
import { handshake, startFakeRuntime } from "../nri/fake_runtime.ts";
import { BIN } from "./node_world.ts";
import type { ChaosReport } from "./report.ts";
import type { Rng } from "./rng.ts";

const enc = new TextEncoder();

/** Requests of the wrong shape, one JSON line each. */
const WRONG_SHAPES = [
  '{"op":"report"}',
  '{"op":"report","pod":{}}',
  '{"op":"report","pod":{"namespace":"a","name":"b","uid":"c"},"reports":"x"}',
  '{"op":"report","pod":{"namespace":"a","name":"b","uid":"c"},"reports":[{"name":7}]}',
  '{"op":"get"}',
  '{"op":"get","path":7}',
  '{"op":"get","path":"/api/v1/secrets","timeoutMs":-5}',
  '{"op":"get","path":"/api/v1/namespaces/a/pods/b","timeoutMs":1e308}',
  '{"op":"create","path":"/api/v1/namespaces/x/events","body":"x"}',
  '{"op":"cni","env":"x","stdin":7}',
  '{"op":"cni","env":{"CNI_COMMAND":"VERSION"},"stdin":"{"}',
  '{"op":"nonsense"}',
  "[]",
  "null",
  "42",
  '"op"',
  "{",
];

/** One abusive connection. */
async function abuse(socket: string, rng: Rng): Promise<void> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socket });
  } catch {
    return; // refused: the daemon bounds its connections
  }
  const write = async (b: Uint8Array) => {
    try {
      await conn.write(b);
    } catch {
      // closed by the daemon
    }
  };
  try {
    switch (rng.int(6)) {
      case 0: { // garbage
        const b = new Uint8Array(1 + rng.int(4096));
        crypto.getRandomValues(b);
        await write(b);
        break;
      }
      case 1: { // an endless line
        const chunk = enc.encode("x".repeat(64 * 1024));
        for (let i = 0; i < 16 + rng.int(64); i++) await write(chunk);
        break;
      }
      case 2: // half a request, then silence
        await write(enc.encode('{"op":"get","path":"/api/v1/namespaces/'));
        await new Promise((r) => setTimeout(r, 500 + rng.int(1500)));
        break;
      case 3: // requests of the wrong shape
        for (let i = 0; i < 1 + rng.int(8); i++) {
          await write(enc.encode(rng.pick(WRONG_SHAPES) + "\n"));
        }
        break;
      case 4: // many requests pipelined
        await write(enc.encode('{"op":"ping"}\n'.repeat(200 + rng.int(800))));
        break;
      default: // nothing at all, for a while
        await new Promise((r) => setTimeout(r, 1000 + rng.int(2000)));
    }
    // Read a little of what comes back, then leave.
    const buf = new Uint8Array(4096);
    await Promise.race([conn.read(buf).catch(() => null), new Promise((r) => setTimeout(r, 200))]);
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

/** `n` abusive connections at once at the daemon's socket. */
export async function floodDaemon(socket: string, rng: Rng, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, () => abuse(socket, rng)));
}

/** The broken things a runtime connection can carry. */
function brokenFrames(rng: Rng): Uint8Array[] {
  const garbage = new Uint8Array(1 + rng.int(2048));
  crypto.getRandomValues(garbage);
  const request = (service: string, method: string, payload: Uint8Array) =>
    encodeFrame(
      1,
      encodeMessage(
        1 + 2 * rng.int(1 << 20),
        MessageType.REQUEST,
        0,
        encodeRequest({ service, method, payload, timeoutNano: 0n, metadata: [] }),
      ),
    );
  const huge = new Uint8Array(8);
  new DataView(huge.buffer).setUint32(0, 1, false);
  new DataView(huge.buffer).setUint32(4, 0xfffffff0, false);
  return [
    garbage,
    huge,
    encodeFrame(7 + rng.int(100), garbage),
    request("nri.pkg.api.v1alpha1.Nope", "Nothing", garbage),
    request("nri.pkg.api.v1alpha1.Plugin", "Explode", garbage),
    request("nri.pkg.api.v1alpha1.Plugin", "RunPodSandbox", garbage),
    ...Array.from({ length: 50 + rng.int(300) }, () =>
      request(
        "nri.pkg.api.v1alpha1.Plugin",
        "RunPodSandbox",
        encodeNri(RunPodSandboxRequestSchema, {
          pod: samplePod({ id: `flood-${rng.hex(8)}`, annotations: {} }),
        }),
      )),
  ];
}

/**
 * `hydra nri serve` against a stand-in runtime: each cycle connects (or
 * takes its reconnection), completes the handshake, then floods the
 * connection with broken and excessive requests. The plugin must still run
 * and connect again.
 */
export async function runNriFlood(report: ChaosReport, rng: Rng, cycles: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-chaos-nri-" });
  const runtime = startFakeRuntime(dir);
  await Deno.mkdir(join(dir, "confs"));
  const logPath = join(dir, "nri.log");
  const plugin = spawnDaemon("hydra nri serve", `${BIN}/hydra`, {
    args: [
      "nri",
      "serve",
      "--socket",
      runtime.socketPath,
      "--conf-dir",
      join(dir, "confs"),
      "--cache-dir",
      join(dir, "cache"),
      "--health-addr",
      "off",
    ],
    logPath,
  });
  let exited = false;
  plugin.status?.then(() => exited = true);
  try {
    for (let cycle = 0; cycle < cycles; cycle++) {
      report.counts.cycles++;
      const conn = await Promise.race([
        runtime.accept(),
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000)),
      ]);
      if (!conn) {
        report.find(
          "stuck",
          "flood-nri",
          "hydra nri serve did not connect again within 20 s",
          cycle,
        );
        break;
      }
      try {
        await handshake(conn);
      } catch (err) {
        report.find("stuck", "flood-nri", `the handshake failed: ${err}`, cycle);
        conn.close();
        continue;
      }
      for (const frame of brokenFrames(rng)) {
        await conn.raw(frame).catch(() => {});
      }
      // The runtime goes away, as it does when containerd restarts.
      await Promise.race([conn.ended, new Promise((r) => setTimeout(r, 1000))]);
      conn.close();
      await new Promise((r) => setTimeout(r, 100));
      if (exited) {
        let log = "";
        try {
          log = Deno.readTextFileSync(logPath).slice(-600);
        } catch {
          // none
        }
        report.find("crashes", "flood-nri", `hydra nri serve died: ${log}`, cycle);
        break;
      }
    }
  } finally {
    runtime.close();
    await stopProcessGroup(plugin.pid).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
