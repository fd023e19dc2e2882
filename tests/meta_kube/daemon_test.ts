/**
 * `hydra daemon` against a real kube-apiserver: its command line, health
 * and metrics, a pod cache holding only this node's pods (other pods are
 * read from the API server on demand), many concurrent requests with a
 * small in-flight limit all answered, bad request lines answered without
 * dropping the connection, and a clean stop on SIGTERM that spools the
 * status reports it could not write yet — which the next start writes.
 *
 * Needs root and the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { connectNodeDaemon } from "../../daemonclient/client.ts";
import { getFromEndpoint } from "../../pkg/http.ts";
import { encodeLine } from "../../daemonclient/protocol.ts";
import { runCommand } from "../infra/process.ts";
import { eventually, HYDRA, networkStatus, startKubeEnv } from "./harness.ts";

function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

Deno.test("hydra daemon: command line", async () => {
  const help = await runCommand(HYDRA, ["daemon", "--help"], { allowFailure: true });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--node-name/);
  const bad = await runCommand(HYDRA, ["daemon", "--bogus"], { allowFailure: true });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /bogus/);
  const bad2 = await runCommand(HYDRA, ["daemon", "--socket", "relative.sock"], {
    allowFailure: true,
  });
  assert.equal(bad2.code, 2);
  const top = await runCommand(HYDRA, ["--help"], { allowFailure: true });
  assert.match(top.stdout, /daemon/);
});

Deno.test("hydra daemon: node-scoped cache, bounded concurrency, clean stop with spooled reports", async (t) => {
  const env = await startKubeEnv();
  try {
    const ours = await env.createPod("ours");
    const theirs = await env.createPod("theirs", {}, { nodeName: "some-other-node" });
    await env.nad(env.ns, "blue", { cniVersion: "1.0.0", type: "bridge" });
    const daemon = await env.startDaemon({ args: ["--max-in-flight", "2"] });

    await t.step("health and readiness", async () => {
      const sock = daemon.socket.replace(/\.sock$/, "-metrics.sock");
      const healthz = await getFromEndpoint({ transport: "unix", path: sock }, "/healthz");
      const readyz = await getFromEndpoint({ transport: "unix", path: sock }, "/readyz");
      assert.equal(healthz.status, 200);
      assert.equal(readyz.status, 200);
    });

    await t.step("only this node's pods are cached; others come from the API server", async () => {
      const m = await daemon.metrics();
      assert.equal(metric(m, 'hydra_daemon_cached_objects{kind="pods"}'), 1);
      assert.equal(
        metric(m, 'hydra_daemon_cached_objects{kind="network-attachment-definitions"}'),
        1,
      );
      const conn = (await connectNodeDaemon(daemon.socket))!;
      try {
        for (const pod of [ours, theirs]) {
          const res = await conn.call({
            op: "get",
            path: `/api/v1/namespaces/${env.ns}/pods/${pod.metadata.name}`,
            uid: pod.metadata.uid,
            timeoutMs: 3_000,
          }, 5_000);
          assert.ok(res.ok, JSON.stringify(res));
          assert.equal((res.body as { metadata: { uid: string } }).metadata.uid, pod.metadata.uid);
        }
        const missing = await conn.call({
          op: "get",
          path: `/api/v1/namespaces/${env.ns}/pods/nobody`,
          timeoutMs: 3_000,
        }, 5_000);
        assert.equal(missing.ok, false);
        assert.equal(!missing.ok && missing.status, 404);
        const strange = await conn.call(
          { op: "get", path: "/api/v1/secrets", timeoutMs: 1_000 },
          2_000,
        );
        assert.equal(!strange.ok && strange.status, 400);
      } finally {
        conn.close();
      }
      const after = await daemon.metrics();
      assert.equal(metric(after, 'hydra_daemon_reads_total{source="cache"}'), 1);
      assert.equal(metric(after, 'hydra_daemon_reads_total{source="api"}'), 1);
    });

    await t.step("200 concurrent connections with 2 requests in flight: all answered", async () => {
      const path =
        `/apis/k8s.cni.cncf.io/v1/namespaces/${env.ns}/network-attachment-definitions/blue`;
      const answers = await Promise.all(Array.from({ length: 200 }, async () => {
        const conn = (await connectNodeDaemon(daemon.socket))!;
        try {
          return await conn.call({ op: "get", path, timeoutMs: 5_000 }, 30_000);
        } finally {
          conn.close();
        }
      }));
      assert.ok(answers.every((a) => a.ok), JSON.stringify(answers.find((a) => !a.ok)));
    });

    await t.step("a bad line is answered and the connection stays usable", async () => {
      const conn = await Deno.connect({ transport: "unix", path: daemon.socket });
      try {
        await conn.write(new TextEncoder().encode("this is not json\n"));
        await conn.write(encodeLine({ op: "ping" }));
        const buf = new Uint8Array(4096);
        let text = "";
        while (text.split("\n").length < 3) {
          const n = await conn.read(buf);
          if (n === null) break;
          text += new TextDecoder().decode(buf.subarray(0, n));
        }
        const [first, second] = text.trim().split("\n").map((l) => JSON.parse(l));
        assert.equal(first.ok, false);
        assert.equal(second.ok, true);
      } finally {
        conn.close();
      }
    });

    await t.step(
      "SIGTERM: exits 0, removes its socket, spools what it could not write",
      async () => {
        const conn = (await connectNodeDaemon(daemon.socket))!;
        env.freezeApi(true);
        try {
          const res = await conn.call({
            op: "report",
            pod: {
              namespace: env.ns,
              name: "ours",
              uid: ours.metadata.uid!,
              infraContainerId: "x",
            },
            reports: [{
              name: "cluster",
              isDefault: true,
              result: {
                cniVersion: "1.0.0",
                interfaces: [{ name: "eth0", sandbox: "/var/run/netns/x" }],
                ips: [{ address: "10.9.9.9/24", interface: 0 }],
              },
            }],
          }, 2_000);
          assert.ok(res.ok);
          conn.close();
          assert.equal(await daemon.stop(), 0);
        } finally {
          env.freezeApi(false);
        }
        await assert.rejects(Deno.stat(daemon.socket), Deno.errors.NotFound);
        const spool = [...Deno.readDirSync(`${env.cacheDir}/reports`)].map((e) => e.name);
        assert.equal(spool.length, 1, `${spool}`);
        const log = await Deno.readTextFile(daemon.logPath);
        assert.match(log, /"msg":"stopped"/);

        const next = await env.startDaemon();
        await eventually("the spooled report written by the next daemon", async () => {
          const s = networkStatus(await env.getPod(env.ns, "ours"));
          return s.length === 1 && (s[0].ips as string[])[0] === "10.9.9.9";
        }, 30_000);
        assert.equal(await next.stop(), 0);
        assert.equal([...Deno.readDirSync(`${env.cacheDir}/reports`)].length, 0);
      },
    );
  } finally {
    await env.close();
  }
});
