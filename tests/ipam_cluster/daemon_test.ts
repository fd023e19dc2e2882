/**
 * hydra-pool with `hydra daemon` on each simulated node: the exec'd plugin
 * hands its invocation to the node's daemon, which writes concurrent ADDs
 * of the node together (one block write for many pods) and reports the
 * allocation metrics; a daemon killed mid-ADD leaves nothing a retry does
 * not find; a daemon restarted after a power cut answers from the API.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { connectNodeDaemon } from "../../daemonclient/client.ts";
import { cniRequest } from "../../daemonclient/forward.ts";
import { type DaemonRequest, POOL_PLUGIN } from "../../daemonclient/protocol.ts";
import { addr, metric, startPoolWorld } from "./harness.ts";

function ip(out: { result?: { ips?: { address: string }[] } }): string {
  return addr(out.result?.ips?.[0]?.address ?? "");
}

let netnsPath = "";

/** The request an exec'd hydra-pool sends its node's daemon for an ADD. */
function addRequest(
  stdin: string,
  containerId: string,
  pod: { namespace: string; name: string; uid?: string },
): Promise<DaemonRequest> {
  const env: Record<string, string> = {
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netnsPath,
    CNI_IFNAME: "net1",
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};` +
      `K8S_POD_UID=${pod.uid}`,
  };
  return cniRequest((n) => env[n], {
    command: "ADD",
    socket: "",
    timeoutMs: 60_000,
    config: JSON.parse(stdin),
  }, POOL_PLUGIN);
}

Deno.test("hydra-pool through hydra daemon: forwarding, batching, a power cut mid-ADD", async (t) => {
  const w = await startPoolWorld();
  netnsPath = w.netns;
  try {
    const d1 = await w.startDaemon("dnode-1");
    const d2 = await w.startDaemon("dnode-2");
    const net = w.network();
    // The daemon's node name wins over the conf's: allocations are the daemon's node's.
    const conf = (d: { socket: string }) =>
      w.conf({
        range: "10.40.0.0/22",
        network_name: net,
        daemonSocket: d.socket,
        nodeName: "ignored",
      });

    await t.step("exec'd ADDs are handed to the node's daemon", async () => {
      const outs = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          w.exec("ADD", conf(i % 2 ? d2 : d1), {
            containerId: `dc-${i}`,
            pod: { namespace: w.ns, name: `dp-${i}`, uid: `du-${i}` },
          })),
      );
      for (const o of outs) assert.equal(o.code, 0, o.stdout);
      assert.equal(new Set(outs.map(ip)).size, 12);
      const recorded = await w.allocations(net);
      assert.equal(recorded.length, 12);
      for (const r of recorded) {
        const i = Number(r.containerID!.slice(3));
        assert.equal(r.node, i % 2 ? "dnode-2" : "dnode-1", "allocated by the daemon's node");
      }
      const m = await d1.metrics();
      assert.equal(metric(m, "hydra_ipam_allocations_total"), 6);
      assert.ok(metric(m, "hydra_ipam_allocation_duration_seconds_count") >= 6);
      assert.ok(metric(m, `hydra_ipam_blocks_total{network="${net}",how="claimed"}`) >= 1);
    });

    await t.step(
      "ADDs arriving together are written together (fewer rounds than requests)",
      async () => {
        const pods = await Promise.all(
          Array.from({ length: 40 }, (_, i) => w.createPod(`burst-${i}`, { node: "dnode-1" })),
        );
        // What exec'd plugins send, sent at once: the daemon is busy writing while more arrive.
        const before = await d1.metrics();
        const stdin = JSON.stringify(conf(d1));
        const answers = await Promise.all(pods.map(async (p, i) => {
          const conn = (await connectNodeDaemon(d1.socket))!;
          try {
            const pod = { namespace: w.ns, name: `burst-${i}`, uid: p.metadata.uid };
            return await conn.call(await addRequest(stdin, `burst-${i}`, pod), 30_000);
          } finally {
            conn.close();
          }
        }));
        for (const a of answers) {
          assert.ok(a.ok);
          assert.equal((a.body as { code: number }).code, 0, (a.body as { stdout: string }).stdout);
        }
        const after = await d1.metrics();
        const count = (m: string, s: string) => metric(m, s);
        const rounds = count(after, "hydra_ipam_batch_size_count") -
          count(before, "hydra_ipam_batch_size_count");
        const requests = count(after, "hydra_ipam_batch_size_sum") -
          count(before, "hydra_ipam_batch_size_sum");
        assert.equal(requests, 40);
        // The daemon works on 8 invocations at once: each round writes what arrived meanwhile.
        assert.ok(rounds <= requests * 0.75, `40 requests in ${rounds} rounds`);
        const recorded = await w.allocations(net);
        assert.equal(new Set(recorded.map((r) => r.ip)).size, recorded.length);
        assert.equal(recorded.filter((r) => r.containerID?.startsWith("burst-")).length, 40);
      },
    );

    await t.step("DEL through the daemon frees; DEL again is fine", async () => {
      const del = await w.exec("DEL", conf(d1), { containerId: "dc-0" });
      assert.equal(del.code, 0, del.stdout);
      const again = await w.exec("DEL", conf(d1), { containerId: "dc-0" });
      assert.equal(again.code, 0, again.stdout);
      assert.equal((await w.allocations(net)).length, 51);
      assert.equal(metric(await d1.metrics(), "hydra_ipam_released_total"), 1);
    });

    await t.step(
      "a daemon killed mid-ADD: the retry finds the same address, no duplicate",
      async () => {
        const pods = await Promise.all(
          Array.from({ length: 40 }, (_, i) => w.createPod(`pc-${i}`, { node: "dnode-1" })),
        );
        const ref = (i: number) => ({
          namespace: w.ns,
          name: `pc-${i}`,
          uid: pods[i].metadata.uid,
        });
        const stdin = JSON.stringify(conf(d1));
        // What 40 exec'd plugins send at once; the power goes while the daemon writes them.
        const inflight = Promise.all(pods.map(async (_, i) => {
          const conn = (await connectNodeDaemon(d1.socket))!;
          try {
            const res = await conn.call(await addRequest(stdin, `pc-${i}`, ref(i)), 30_000);
            if (!res.ok) return undefined;
            const body = res.body as { code: number; stdout: string };
            return body.code === 0 ? ip({ result: JSON.parse(body.stdout) }) : undefined;
          } catch {
            return undefined;
          } finally {
            conn.close();
          }
        }));
        await new Promise((r) => setTimeout(r, 100));
        await d1.kill();
        const first = await inflight;
        assert.ok(
          first.some((x) => x === undefined),
          "the power cut came after every ADD had finished",
        );
        const d1b = await w.startDaemon("dnode-1");
        // The kubelet retries a failed sandbox with a new one: a new container ID, the same pod.
        const final = await Promise.all(first.map(async (got, i) => {
          if (got) return got;
          const out = await w.exec("ADD", conf(d1b), { containerId: `pc-${i}-retry`, pod: ref(i) });
          assert.equal(out.code, 0, out.stdout);
          return ip(out);
        }));
        const recorded = await w.allocations(net);
        const mine = recorded.filter((r) => r.pod?.startsWith(`${w.ns}/pc-`));
        assert.equal(
          mine.length,
          40,
          "one address per pod: what the killed daemon wrote was taken over",
        );
        assert.equal(new Set(recorded.map((r) => r.ip)).size, recorded.length, "no address twice");
        for (const [i, got] of final.entries()) {
          assert.equal(mine.find((r) => r.podUID === pods[i].metadata.uid)?.ip, got);
        }
      },
    );
  } finally {
    await w.close();
  }
});
