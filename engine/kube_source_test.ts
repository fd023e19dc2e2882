import assert from "node:assert/strict";
import type { KubeClient } from "../kube/client.ts";
import type { NodeCache } from "../kube/node_cache.ts";
import { nadPath, type Pod, podPath } from "../kube/objects.ts";
import type { ReportQueue } from "../kube/report_queue.ts";
import type { SpooledReport } from "../kube/report_spool.ts";
import { silentLogger } from "../pkg/log.ts";
import type { KubeMetaSettings } from "./kube_config.ts";
import { type NodeAgentKube, openKubeSource } from "./kube_source.ts";

const settings = { kube: { apiTimeoutMs: 1_000 } } as KubeMetaSettings;
const podArgs = { namespace: "ns", name: "p", uid: "u1", infraContainerId: "sb" };
const pod: Pod = { metadata: { namespace: "ns", name: "p", uid: "u1" } };

/** An agent whose cache holds `pod` and a NAD, whose client records its calls. */
function agent(enqueue: (r: SpooledReport) => Promise<void> = () => Promise.resolve()) {
  const cacheReads: { path: string; uid?: string }[] = [];
  const apiReads: string[] = [];
  const sources: string[] = [];
  const cache = {
    get(path: string, o: { uid?: string; timeoutMs: number }) {
      cacheReads.push({ path, ...(o.uid ? { uid: o.uid } : {}) });
      return Promise.resolve({ body: path.includes("/pods/") ? pod : { path }, source: "cache" });
    },
  } as unknown as NodeCache;
  const client = {
    server: "https://api",
    timeoutMs: 5_000,
    get(path: string) {
      apiReads.push(path);
      return Promise.resolve({ path });
    },
    close: () => assert.fail("the agent's client must outlive an invocation"),
  } as unknown as KubeClient;
  const kube: NodeAgentKube = {
    cache,
    client,
    reports: { enqueue } as unknown as ReportQueue,
    onRead: (s) => sources.push(s),
  };
  return { kube, cacheReads, apiReads, sources };
}

Deno.test("agent source: the pod and NADs come from the agent's caches, the rest from its client", async () => {
  const a = agent();
  const source = await openKubeSource(
    settings,
    podArgs,
    "/nonexistent",
    silentLogger,
    Date.now(),
    a.kube,
  );
  assert.equal(source.kind, "agent");
  assert.deepEqual(await source.fetchPod(podArgs), pod);
  await source.client.get(nadPath("ns", "blue"));
  await source.client.get("/apis/hydra.clusternet.io/v1/ippools/blue");
  assert.deepEqual(a.cacheReads, [
    { path: podPath("ns", "p"), uid: "u1" },
    { path: nadPath("ns", "blue") },
  ]);
  assert.deepEqual(a.apiReads, ["/apis/hydra.clusternet.io/v1/ippools/blue"]);
  assert.deepEqual(a.sources, ["cache", "cache"]);
  source.close();
});

Deno.test("agent source: the report goes to the agent's queue; a queue that cannot take it is logged, not thrown", async () => {
  const taken: SpooledReport[] = [];
  const report: SpooledReport = {
    pod: { namespace: "ns", name: "p", uid: "u1" },
    reports: [],
    events: [],
    at: 1,
  } as unknown as SpooledReport;
  const a = agent((r) => {
    taken.push(r);
    return Promise.resolve();
  });
  const source = await openKubeSource(
    settings,
    podArgs,
    "/nonexistent",
    silentLogger,
    Date.now(),
    a.kube,
  );
  await source.report(report);
  assert.deepEqual(taken, [report]);
  const full = agent(() => Promise.reject(new Error("spool full and memory full")));
  const lines: string[] = [];
  const log = { ...silentLogger, error: (msg: string) => lines.push(msg) } as typeof silentLogger;
  const refused = await openKubeSource(
    settings,
    podArgs,
    "/nonexistent",
    log,
    Date.now(),
    full.kube,
  );
  await refused.report(report);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /lost/);
});
