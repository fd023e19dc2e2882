import assert from "node:assert/strict";
import { silentLogger } from "../pkg/log.ts";
import type { KubeClient } from "../kube/client.ts";
import { KubeApiError } from "../kube/errors.ts";
import { createRegistry } from "../pkg/metrics.ts";
import type { NodeCache } from "./node_cache.ts";
import {
  connectNodeDaemon,
  type DaemonConnection,
  useInProcessDaemon,
} from "../daemonclient/client.ts";
import type { DaemonRequest } from "../daemonclient/protocol.ts";
import type { ReportQueue } from "./node_reports.ts";
import type { SpooledReport } from "../kube/report_spool.ts";
import { serveNodeSocket } from "./node_server.ts";

const POD_PATH = "/api/v1/namespaces/ns/pods/web-0";

Deno.test("the daemon's in-process connection answers as its socket does, with copies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "hydra-node-server-" });
  const pod = { metadata: { name: "web-0", namespace: "ns", uid: "u1" } };
  const queued: SpooledReport[] = [];
  const cache: NodeCache = {
    synced: Promise.resolve(),
    hasSynced: () => true,
    sizes: () => ({ pods: 1, nads: 0 }),
    get: (path) =>
      path === POD_PATH ? Promise.resolve({ body: pod, source: "cache" }) : Promise.reject(
        new KubeApiError({ status: 404, reason: "NotFound", message: "gone", method: "GET", path }),
      ),
    watchPods: () => {},
    stop: () => Promise.resolve(),
  };
  const reports: ReportQueue = {
    enqueue: (r) => queued.push(r),
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
