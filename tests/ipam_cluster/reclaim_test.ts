/**
 * `hydra ipam controller` against a real kube-apiserver: the address of a
 * pod deleted while its node was down is freed (matched by UID: a new pod
 * of the same name keeps nothing of the old one's), never a live pod's;
 * StatefulSet pods keep their address across delete and re-create and give
 * it up after the hold once the StatefulSet no longer wants the ordinal;
 * blocks of deleted nodes are released; pool status and metrics count;
 * one of two replicas leads, the other takes over when it stops.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { runCommand } from "../infra/process.ts";
import { addr, eventually, HYDRA, metric, startPoolWorld } from "./harness.ts";

function ip(out: { result?: { ips?: { address: string }[] } }): string {
  return addr(out.result?.ips?.[0]?.address ?? "");
}

Deno.test("hydra ipam controller: reclaim, StatefulSet holds, deleted nodes, pool counts", async (t) => {
  const w = await startPoolWorld();
  try {
    const net = w.network();
    const conf = (node: string) =>
      w.conf({ range: "10.50.0.0/24", network_name: net, nodeName: node });
    const poolName = `${net}.10.50.0.0-24`;

    await t.step(
      "a pod deleted while its node was down loses its address; live pods keep theirs",
      async () => {
        const live = await w.createPod("live", { node: "rnode-1" });
        const doomed = await w.createPod("doomed", { node: "rnode-1" });
        const a = await w.invoke("ADD", conf("rnode-1"), {
          containerId: "live-c",
          pod: { namespace: w.ns, name: "live", uid: live.metadata.uid },
        });
        const b = await w.invoke("ADD", conf("rnode-1"), {
          containerId: "doomed-c",
          pod: { namespace: w.ns, name: "doomed", uid: doomed.metadata.uid },
        });
        assert.equal(a.code + b.code, 0);
        // The node is down: no DEL ever comes. The pod is deleted, and one of the same name made.
        await w.deletePod("doomed");
        await w.createPod("doomed", { node: "rnode-2" });
        const controller = await w.startController(["--grace", "0", "--interval", "5"]);
        await eventually(
          "the deleted pod's address is freed",
          async () => !(await w.allocations(net)).some((r) => r.ip === ip(b)),
          60_000,
        );
        const left = await w.allocations(net);
        assert.deepEqual(
          left.map((r) => r.ip),
          [ip(a)],
          "the live pod's address stays",
        );
        const m = await controller.metrics();
        assert.equal(
          metric(m, `hydra_ipam_reclaimed_total{pool="${poolName}",reason="pod-gone"}`),
          1,
        );
        assert.equal(metric(m, "hydra_ipam_controller_leader"), 1);
        await eventually("the pool's status counts", async () => {
          const p = await w.pool(poolName);
          return p?.status?.allocated === 1 && p.status.size === 254 && p.status.free === 253;
        });
        assert.equal(
          metric(await controller.metrics(), `hydra_ipam_pool_free{pool="${poolName}"}`),
          253,
        );
        const table = await w.cp.kubectl("get", "addresspools", poolName);
        assert.match(table, /SIZE\s+ALLOCATED\s+FREE/);
        assert.match(table, /254\s+1\s+253/);
      },
    );

    await t.step("a StatefulSet pod keeps its address across delete and re-create", async () => {
      const sts = await w.client.create<{ metadata: { uid: string } }>(
        `/apis/apps/v1/namespaces/${w.ns}/statefulsets`,
        {
          apiVersion: "apps/v1",
          kind: "StatefulSet",
          metadata: { name: "web" },
          spec: {
            replicas: 2,
            serviceName: "web",
            selector: { matchLabels: { app: "web" } },
            template: {
              metadata: { labels: { app: "web" } },
              spec: { containers: [{ name: "c", image: "localhost/hydra/pause:1.0" }] },
            },
          },
        },
      );
      const owner = { name: "web", uid: sts.metadata.uid };
      const first = await w.createPod("web-1", { node: "rnode-1", statefulSet: owner });
      const add1 = await w.invoke("ADD", conf("rnode-1"), {
        containerId: "web-1-a",
        pod: { namespace: w.ns, name: "web-1", uid: first.metadata.uid },
      });
      assert.equal(add1.code, 0, add1.stdout);
      const held = (await w.allocations(net)).find((r) => r.ip === ip(add1))!;
      assert.equal(held.statefulSet, "web");

      // Deleted as the StatefulSet controller rolls it: DEL runs, the address is held, not freed.
      const del = await w.invoke("DEL", conf("rnode-1"), { containerId: "web-1-a" });
      assert.equal(del.code, 0);
      const released = (await w.allocations(net)).find((r) => r.ip === ip(add1))!;
      assert.ok(released.releasedAt, "held for the next pod of that name");
      await w.deletePod("web-1");
      // Meanwhile other pods allocate: none gets the held address.
      for (let i = 0; i < 5; i++) {
        const o = await w.invoke("ADD", conf("rnode-1"), { containerId: `filler-${i}` });
        assert.notEqual(ip(o), ip(add1));
      }
      // Re-created on another node, with a new UID: same address.
      const second = await w.createPod("web-1", { node: "rnode-2", statefulSet: owner });
      const add2 = await w.invoke("ADD", conf("rnode-2"), {
        containerId: "web-1-b",
        pod: { namespace: w.ns, name: "web-1", uid: second.metadata.uid },
      });
      assert.equal(ip(add2), ip(add1));
      const now = (await w.allocations(net)).find((r) => r.ip === ip(add1))!;
      assert.equal(now.podUID, second.metadata.uid);
      assert.equal(now.releasedAt, undefined);

      // Its node dies with it (no DEL); the controller keeps the address for the StatefulSet.
      await w.deletePod("web-1");
      const third = await w.createPod("web-1", { node: "rnode-1", statefulSet: owner });
      await new Promise((r) => setTimeout(r, 7_000));
      const add3 = await w.invoke("ADD", conf("rnode-1"), {
        containerId: "web-1-c",
        pod: { namespace: w.ns, name: "web-1", uid: third.metadata.uid },
      });
      assert.equal(ip(add3), ip(add1), "the controller kept it for the re-created pod");
    });

    await t.step("scaled down: the address is freed after the hold", async () => {
      const holder = (await w.allocations(net)).find((r) => r.pod === `${w.ns}/web-1`)!;
      await w.invoke("DEL", conf("rnode-1"), { containerId: "web-1-c" });
      await w.deletePod("web-1");
      await w.client.patch(`/apis/apps/v1/namespaces/${w.ns}/statefulsets/web`, {
        spec: { replicas: 1 },
      });
      // The controller of the first step runs with the default hold (300 s); a second one
      // with a short hold shows the whole cycle (both may lead in turn: either is right).
      const short = await w.startController([
        "--grace",
        "0",
        "--interval",
        "2",
        "--sts-hold",
        "3",
        "--lease",
        "short",
      ]);
      await eventually(
        "the hold starts",
        async () =>
          (await w.allocations(net)).find((r) => r.ip === holder.ip)?.unwantedSince !== undefined,
        30_000,
      );
      await eventually(
        "the hold runs out",
        async () => !(await w.allocations(net)).some((r) => r.ip === holder.ip),
        30_000,
      );
      assert.equal(
        metric(
          await short.metrics(),
          `hydra_ipam_reclaimed_total{pool="${poolName}",reason="sts-hold-expired"}`,
        ),
        1,
      );
      await short.stop();
    });

    await t.step("the block of a deleted node is released, and removed once empty", async () => {
      const node = await w.client.create<{ metadata: { name: string } }>("/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: "gone-node" },
      });
      const net2 = w.network();
      const pod = await w.createPod("orphan", { node: "gone-node" });
      const out = await w.invoke(
        "ADD",
        w.conf({ range: "10.51.0.0/28", network_name: net2, nodeName: "gone-node" }),
        { containerId: "orph", pod: { namespace: w.ns, name: "orphan", uid: pod.metadata.uid } },
      );
      assert.equal(out.code, 0, out.stdout);
      await w.client.delete(`/api/v1/nodes/${node.metadata.name}`);
      await eventually(
        "the block has no node",
        async () => (await w.blocks()).find((b) => b.network === net2)?.node === "",
        60_000,
      );
      assert.deepEqual(
        (await w.allocations(net2)).map((r) => r.ip),
        [ip(out)],
        "its live pod keeps it",
      );
      await w.deletePod("orphan");
      await eventually(
        "the empty block is deleted",
        async () => !(await w.blocks()).some((b) => b.network === net2),
        60_000,
      );
    });

    await t.step("two replicas: one leads; when it stops the other takes over", async () => {
      const a = await w.startController(["--lease", "pair", "--interval", "60"]);
      const b = await w.startController(["--lease", "pair", "--interval", "60"]);
      await eventually(
        "one of them leads",
        async () =>
          metric(await a.metrics(), "hydra_ipam_controller_leader") +
              metric(await b.metrics(), "hydra_ipam_controller_leader") === 1,
      );
      const leading = metric(await a.metrics(), "hydra_ipam_controller_leader") === 1 ? a : b;
      const other = leading === a ? b : a;
      await leading.stop();
      await eventually(
        "the other leads",
        async () => metric(await other.metrics(), "hydra_ipam_controller_leader") === 1,
        30_000,
      );
      const lease = await w.client.get<{ spec: { leaseTransitions?: number } }>(
        `/apis/coordination.k8s.io/v1/namespaces/${w.ns}/leases/pair`,
      );
      assert.ok((lease.spec.leaseTransitions ?? 0) >= 1);
    });

    await t.step("hydra ipam pools and hydra doctor show pool usage", async () => {
      const table = await runCommand(HYDRA, ["ipam", "pools", "--kubeconfig", w.kubeconfig]);
      assert.match(table.stdout, /POOL\s+NETWORK\s+CIDR\s+SIZE\s+ALLOCATED\s+FREE\s+BLOCKS/);
      const json = JSON.parse(
        (await runCommand(HYDRA, ["ipam", "pools", "--json", "--kubeconfig", w.kubeconfig])).stdout,
      ) as { pools: { pool: string; size: number; allocated: number; free: number }[] };
      const mine = json.pools.find((p) => p.pool === poolName)!;
      const allocated = (await w.allocations(net)).length;
      assert.deepEqual([mine.size, mine.allocated, mine.free], [254, allocated, 254 - allocated]);
      assert.match(
        table.stdout,
        new RegExp(
          `${
            poolName.replaceAll(".", "\\.")
          }\\s+${net}\\s+10\\.50\\.0\\.0/24\\s+254\\s+${allocated}`,
        ),
      );
      const doctor = await runCommand(HYDRA, [
        "doctor",
        "--json",
        "--bin-dir",
        "/nonexistent",
        "--kubeconfig",
        w.kubeconfig,
      ], {
        allowFailure: true,
      });
      const checks = JSON.parse(doctor.stdout) as {
        name: string;
        status: string;
        detail: string;
      }[];
      const line = checks.find((c) => c.name === `pool ${poolName}`);
      assert.ok(line, doctor.stdout);
      assert.match(
        line.detail,
        new RegExp(`${allocated} of 254 allocated, ${254 - allocated} free`),
      );
      const bad = await runCommand(HYDRA, ["ipam", "bogus"], { allowFailure: true });
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /unknown command "bogus"/);
      const help = await runCommand(HYDRA, ["ipam", "controller", "--help"], {
        allowFailure: true,
      });
      assert.match(help.stdout, /--sts-hold/);
      const badFlag = await runCommand(HYDRA, ["ipam", "controller", "--interval", "x"], {
        allowFailure: true,
      });
      assert.equal(badFlag.code, 2);
      assert.match(badFlag.stderr, /--interval must be a number of seconds/);
    });
  } finally {
    await w.close();
  }
});
