import assert from "node:assert/strict";
import { silentLogger } from "../pkg/log.ts";
import type { KubeClient } from "../kube/client.ts";
import { KubeApiError } from "../kube/errors.ts";
import { createRegistry } from "../pkg/metrics.ts";
import type { NodeCache } from "../kube/node_cache.ts";
import {
  connectNodeDaemon,
  type DaemonConnection,
  useInProcessDaemon,
} from "../daemonclient/client.ts";
import type { DaemonRequest } from "../daemonclient/protocol.ts";
import type { ReportQueue } from "../kube/report_queue.ts";
import type { SpooledReport } from "../kube/report_spool.ts";
import { serveNodeSocket } from "./node_server.ts";
import { delay } from "../pkg/async.ts";

const POD_PATH = "/api/v1/namespaces/ns/pods/web-0";

Deno.test("the daemon's in-process connection answers as its socket does, with copies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hydra-node-server-" });
  const pod = { metadata: { name: "web-0", namespace: "ns", uid: "u1" } };
  const queued: SpooledReport[] = [];
  const cache: NodeCache = {
    synced: Promise.resolve(),
    hasSynced: () => true,
    sizes: () => ({ pods: 1, nads: 0 }),
    nodeExists: () => true,
    get: (path) =>
      path === POD_PATH ? Promise.resolve({ body: pod, source: "cache" }) : Promise.reject(
        new KubeApiError({ status: 404, reason: "NotFound", message: "gone", method: "GET", path }),
      ),
    watchPods: () => {},
    stop: () => Promise.resolve(),
  };
  const reports: ReportQueue = {
    enqueue: (r) => {
      queued.push(r);
      return Promise.resolve();
    },
    pending: () => queued.length,
    loadSpool: () => Promise.resolve(0),
    stop: () => Promise.resolve(),
  };
  const registry = createRegistry();
  const socketPath = `${dir}/daemon.sock`;
  const server = await serveNodeSocket({
    socketPath,
    cache,
    reports,
    client: {} as KubeClient,
    log: silentLogger,
    registry,
    nodeName: "node-1",
  });
  let viaSocket: DaemonConnection | undefined;
  try {
    viaSocket = await connectNodeDaemon(socketPath);
    assert.ok(viaSocket);
    const local = server.inProcessConnection();
    useInProcessDaemon(local);
    assert.equal(await connectNodeDaemon(socketPath), local);
    assert.notEqual(await connectNodeDaemon(`${dir}/other.sock`), local);

    const requests: DaemonRequest[] = [
      { op: "get", path: POD_PATH },
      { op: "get", path: "/api/v1/namespaces/ns/pods/nobody" },
      { op: "ping" },
    ];
    for (const req of requests) {
      assert.deepEqual(await local.call(req, 1_000), await viaSocket.call(req, 1_000));
    }
    // The cache's object is not the caller's to change.
    const got = await local.call({ op: "get", path: POD_PATH }, 1_000);
    assert.ok(got.ok);
    (got.body as typeof pod).metadata.name = "changed";
    assert.equal(pod.metadata.name, "web-0");

    const pod0 = { namespace: "ns", name: "web-0", uid: "u1", infraContainerId: "c1" };
    const report = { pod: pod0, reports: [], at: 1 };
    assert.deepEqual(await local.call({ op: "report", ...report }, 1_000), { ok: true });
    assert.equal(queued.length, 1);
    assert.deepEqual(queued[0].pod, report.pod);
    // Counted like socket requests: the pod read once each way, once more for the copy.
    assert.match(registry.render(), /hydra_daemon_requests_total\{op="get",result="ok"\} 3\n/);
    local.close();
    assert.deepEqual((await local.call({ op: "ping" }, 1_000)).ok, true);
  } finally {
    useInProcessDaemon(undefined);
    viaSocket?.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A server over stand-ins, for tests of the socket itself. */
async function withServer(
  opts: Partial<Parameters<typeof serveNodeSocket>[0]>,
  fn: (socket: string, registry: ReturnType<typeof createRegistry>, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-node-server-" });
  const registry = createRegistry();
  const cache: NodeCache = {
    synced: Promise.resolve(),
    hasSynced: () => true,
    sizes: () => ({ pods: 0, nads: 0 }),
    nodeExists: () => true,
    watchPods: () => {},
    get: (path) =>
      Promise.reject(
        new KubeApiError({ status: 404, reason: "NotFound", message: "gone", method: "GET", path }),
      ),
    stop: () => Promise.resolve(),
  };
  const reports: ReportQueue = {
    enqueue: () => Promise.resolve(),
    pending: () => 0,
    loadSpool: () => Promise.resolve(0),
    stop: () => Promise.resolve(),
  };
  const socket = `${dir}/run/daemon.sock`;
  const server = await serveNodeSocket({
    socketPath: socket,
    cache,
    reports,
    client: {} as KubeClient,
    log: silentLogger,
    registry,
    nodeName: "node-1",
    ...opts,
  });
  try {
    await fn(socket, registry, dir);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Sends raw bytes on a fresh connection and reads answers until it closes or `lines` came. */
async function exchange(socket: string, bytes: Uint8Array, lines = 1): Promise<string[]> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(bytes).catch(() => {});
    let text = "";
    const buf = new Uint8Array(4096);
    while (text.split("\n").length <= lines) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text.split("\n").filter((l) => l !== "");
  } finally {
    conn.close();
  }
}

const enc = (s: string) => new TextEncoder().encode(s);

function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

Deno.test("the socket is root's alone: 0600 in a 0700 folder; a folder others may write to is refused", async () => {
  await withServer({}, (socket) => {
    assert.equal(Deno.statSync(socket).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(socket.slice(0, socket.lastIndexOf("/"))).mode! & 0o777, 0o700);
    return Promise.resolve();
  });
  const dir = await Deno.makeTempDir({ prefix: "hydra-node-server-" });
  try {
    Deno.chmodSync(dir, 0o777);
    await assert.rejects(
      serveNodeSocket({
        socketPath: `${dir}/daemon.sock`,
        cache: {} as NodeCache,
        reports: {} as ReportQueue,
        client: {} as KubeClient,
        log: silentLogger,
        registry: createRegistry(),
        nodeName: "n",
      }),
      /is writable by group or others/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a peer that is not an allowed user is answered Forbidden, closed and counted", async () => {
  const peers = { identifyAccepted: () => ({ pid: 4242, uid: 65534, gid: 0 }) };
  await withServer({ peers }, async (socket, registry) => {
    const answers = await exchange(socket, enc(JSON.stringify({ op: "ping" }) + "\n"), 2);
    assert.deepEqual(answers.map((a) => JSON.parse(a).reason), ["Forbidden"]);
    assert.equal(
      metric(registry.render(), 'hydra_daemon_connections_dropped_total{reason="peer"}'),
      1,
    );
    assert.equal(
      metric(registry.render(), 'hydra_daemon_requests_total{op="ping",result="ok"}'),
      0,
    );
  });
  // Allowed by --allow-uid.
  await withServer({ peers, allowedUids: [0, 65534] }, async (socket) => {
    const [answer] = await exchange(socket, enc(JSON.stringify({ op: "ping" }) + "\n"));
    assert.equal(JSON.parse(answer).ok, true);
  });
});

Deno.test("no request can take the daemon down: each bad one is answered 400 and the next served", async () => {
  await withServer({}, async (socket) => {
    const bad = [
      { op: "report" },
      { op: "report", pod: { namespace: "ns" }, reports: [] },
      { op: "report", pod: { namespace: "ns", name: "p" }, reports: "x" },
      { op: "get" },
      { op: "create", path: "/api/v1/namespaces/ns/events" },
      { op: "cni", env: { CNI_COMMAND: "ADD" }, stdin: "{}" },
      { op: "cni", command: "GC", containerId: "c", netns: "/x", ifName: "eth0" },
      { op: "nothing" },
      [1, 2],
      null,
    ];
    const lines = bad.map((b) => JSON.stringify(b)).join("\n") + "\nnot json\n";
    // Four lines may wait at once: send them in groups, each on its connection.
    for (let i = 0; i < bad.length + 1; i += 4) {
      const group = lines.split("\n").slice(i, i + 4).join("\n") + "\n";
      const answers = (await exchange(socket, enc(group), 4)).map((a) => JSON.parse(a));
      for (const a of answers) {
        assert.equal(a.ok, false);
        assert.equal(a.status, 400, JSON.stringify(a));
        assert.equal(a.reason, "BadRequest");
      }
    }
    const [ping] = await exchange(socket, enc('{"op":"ping"}\n'));
    assert.equal(JSON.parse(ping).ok, true);
  });
});

Deno.test("input is bounded: a line too long, too many lines ahead, too much held altogether", async () => {
  await withServer({ maxLineBytes: 1024, maxBufferedBytes: 4096 }, async (socket, registry) => {
    assert.deepEqual(await exchange(socket, new Uint8Array(2048).fill(65)), []);
    const many = enc(Array.from({ length: 20 }, () => '{"op":"ping"}').join("\n") + "\n");
    await exchange(socket, many, 20);
    const conns = await Promise.all(
      Array.from({ length: 8 }, () => Deno.connect({ transport: "unix", path: socket })),
    );
    try {
      await Promise.all(conns.map((c) => c.write(new Uint8Array(900).fill(66))));
      await delay(100);
    } finally {
      for (const c of conns) c.close();
    }
    const m = registry.render();
    assert.equal(metric(m, 'hydra_daemon_connections_dropped_total{reason="line"}'), 1);
    assert.equal(metric(m, 'hydra_daemon_connections_dropped_total{reason="queue"}'), 1);
    assert.ok(metric(m, 'hydra_daemon_connections_dropped_total{reason="memory"}') >= 1, m);
    const [ping] = await exchange(socket, enc('{"op":"ping"}\n'));
    assert.equal(JSON.parse(ping).ok, true, "and it still serves");
  });
});

Deno.test("a cni request is cancelled when its caller closes the connection", async () => {
  let seen: AbortSignal | undefined;
  const stopped = Promise.withResolvers<string>();
  const executeCni = (_req: unknown, signal: AbortSignal) => {
    seen = signal;
    return new Promise<never>((_, reject) =>
      signal.addEventListener("abort", () => {
        stopped.resolve((signal.reason as Error).message);
        reject(signal.reason);
      })
    );
  };
  await withServer({ executeCni }, async (socket) => {
    const conn = await Deno.connect({ transport: "unix", path: socket });
    await conn.write(enc(
      JSON.stringify({
        op: "cni",
        command: "ADD",
        containerId: "c1",
        netns: "/run/netns/p",
        ifName: "eth0",
        cniArgs: "",
        network: "pods",
        plugin: "hydra",
        confDigest: `sha256:${"0".repeat(64)}`,
      }) + "\n",
    ));
    await delay(50);
    assert.equal(seen?.aborted, false);
    conn.close();
    assert.equal(await stopped.promise, "the caller closed its connection");
  });
});
