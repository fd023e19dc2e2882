/**
 * hydra-pool against a real kube-apiserver: what ADD returns is recorded
 * in the API before it returns; retries return the same address; DEL gives
 * it back; two nodes racing for the last free address; 1,000 concurrent
 * allocations over 10 nodes without a duplicate; static addresses;
 * exclusions; IPv6 and dual stack; whereabouts' keys and results.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { parseIpAddr } from "../../ipaddr/ip.ts";
import { addr, type PoolWorld, startPoolWorld, uniq } from "./harness.ts";

function ips(out: { result?: { ips?: { address: string }[] } }): string[] {
  return (out.result?.ips ?? []).map((i) => i.address);
}

Deno.test("hydra-pool: allocation against the API server", async (t) => {
  const w: PoolWorld = await startPoolWorld();
  try {
    await t.step(
      "ADD records the address before it returns; a retry gets the same; DEL frees it",
      async () => {
        const net = w.network();
        const conf = w.conf({
          range: "10.20.0.0/28",
          network_name: net,
          gateway: "10.20.0.1",
          routes: [{ dst: "0.0.0.0/0" }],
        });
        const pod = { namespace: w.ns, name: "p1", uid: crypto.randomUUID() };
        const add = await w.invoke("ADD", conf, { containerId: "c1", pod });
        assert.equal(add.code, 0, add.stdout);
        // One block holds the whole /28: the lowest address that is neither network nor gateway.
        assert.deepEqual(add.result!.ips, [{ address: "10.20.0.2/28", gateway: "10.20.0.1" }]);
        assert.deepEqual(add.result!.routes, [{ dst: "0.0.0.0/0" }]);
        const recorded = await w.allocations(net);
        assert.equal(recorded.length, 1);
        assert.equal(recorded[0].ip, "10.20.0.2");
        assert.equal(recorded[0].pod, `${w.ns}/p1`);
        assert.equal(recorded[0].podUID, pod.uid);
        assert.equal(recorded[0].containerID, "c1");
        assert.equal(recorded[0].interface, "net1");
        assert.equal(recorded[0].node, "node-a");
        assert.equal(recorded[0].blockNode, "node-a");
        assert.ok(recorded[0].time && Date.parse(recorded[0].time) > Date.now() - 60_000);

        const again = await w.invoke("ADD", conf, { containerId: "c1", pod });
        assert.deepEqual(ips(again), ["10.20.0.2/28"], "a retried ADD gets the same address");
        assert.equal((await w.allocations(net)).length, 1);

        const check = await w.invoke("CHECK", { ...conf, prevResult: add.result }, {
          containerId: "c1",
          pod,
        });
        assert.equal(check.code, 0, check.stdout);

        const other = await w.invoke("ADD", conf, {
          containerId: "c2",
          pod: { ...pod, name: "p2", uid: "u2" },
        });
        assert.deepEqual(ips(other), ["10.20.0.3/28"]);

        const del = await w.invoke("DEL", { ...conf, prevResult: add.result }, {
          containerId: "c1",
          pod,
        });
        assert.equal(del.code, 0, del.stdout);
        assert.deepEqual((await w.allocations(net)).map((a) => a.ip), ["10.20.0.3"]);
        const delAgain = await w.invoke("DEL", conf, { containerId: "c1", pod });
        assert.equal(delAgain.code, 0, "DEL of what is gone succeeds");
        const checkGone = await w.invoke("CHECK", { ...conf, prevResult: add.result }, {
          containerId: "c1",
          pod,
        });
        assert.notEqual(checkGone.code, 0);
        assert.match(checkGone.error!.msg, /no address of pool .* is recorded for container c1/);

        const pool = await w.pool(`${net}.10.20.0.0-28`);
        assert.equal(pool?.spec.cidr, "10.20.0.0/28");
        assert.equal(pool?.spec.networkName, net);
      },
    );

    await t.step("a new sandbox of the same pod (same UID) takes its address over", async () => {
      const net = w.network();
      const conf = w.conf({ range: "10.21.0.0/24", network_name: net });
      const pod = { namespace: w.ns, name: "p", uid: crypto.randomUUID() };
      const first = await w.invoke("ADD", conf, { containerId: "sandbox-1", pod });
      const second = await w.invoke("ADD", conf, { containerId: "sandbox-2", pod });
      assert.deepEqual(ips(second), ips(first));
      const recorded = await w.allocations(net);
      assert.equal(recorded.length, 1);
      assert.equal(recorded[0].containerID, "sandbox-2");
    });

    await t.step("two nodes racing for the last free address: exactly one wins", async () => {
      for (let round = 0; round < 4; round++) {
        const net = w.network();
        // 10.22.x.0/29 has 6 allocatable addresses; 5 are taken first.
        const range = `10.22.${round}.0/29`;
        const fill = w.conf({ range, network_name: net, nodeName: "node-a" });
        for (let i = 0; i < 5; i++) {
          const out = await w.invoke("ADD", fill, { containerId: `fill-${i}` });
          assert.equal(out.code, 0, out.stdout);
        }
        const [a, b] = await Promise.all(
          ["node-b", "node-c"].map((node) =>
            w.invoke("ADD", w.conf({ range, network_name: net, nodeName: node }), {
              containerId: `race-${node}`,
              pod: { namespace: w.ns, name: `race-${node}`, uid: crypto.randomUUID() },
            })
          ),
        );
        const winners = [a, b].filter((o) => o.code === 0);
        const losers = [a, b].filter((o) => o.code !== 0);
        assert.equal(winners.length, 1, `round ${round}: ${a.stdout} / ${b.stdout}`);
        assert.equal(losers[0].error!.code, 11);
        assert.match(
          losers[0].error!.msg,
          new RegExp(`address pool ${net}\\.10\\.22\\.${round}\\.0-29 .* is exhausted`),
        );
        const recorded = await w.allocations(net);
        assert.equal(recorded.length, 6);
        assert.equal(new Set(recorded.map((r) => r.ip)).size, 6);
      }
    });

    await t.step(
      "1,000 concurrent allocations over 10 nodes: no duplicate, all recorded",
      async () => {
        const net = w.network();
        const nodes = Array.from({ length: 10 }, (_, i) => `bulk-${i}`);
        const outs = await Promise.all(Array.from({ length: 1000 }, (_, i) => {
          const node = nodes[i % nodes.length];
          return w.invoke(
            "ADD",
            w.conf({ range: "10.30.0.0/22", network_name: net, nodeName: node, apiTimeout: 120 }),
            {
              containerId: `bulk-${i}`,
              pod: { namespace: w.ns, name: `bulk-${i}`, uid: crypto.randomUUID() },
            },
          );
        }));
        const failed = outs.filter((o) => o.code !== 0);
        assert.equal(failed.length, 0, failed.slice(0, 3).map((o) => o.stdout).join("\n"));
        const got = outs.map((o) => addr(ips(o)[0]));
        assert.equal(new Set(got).size, 1000, "every ADD got its own address");
        const recorded = await w.allocations(net);
        assert.equal(recorded.length, 1000);
        assert.equal(new Set(recorded.map((r) => r.ip)).size, 1000, "no address recorded twice");
        const byContainer = new Map(recorded.map((r) => [r.containerID, r.ip]));
        outs.forEach((_, i) => assert.equal(byContainer.get(`bulk-${i}`), got[i]));
        // Contention stayed local: most addresses sit in a block of the node that allocated them.
        const local = recorded.filter((r) => r.node === r.blockNode).length;
        assert.ok(local > 900, `only ${local} of 1000 in their own node's block`);
      },
    );

    await t.step("static addresses: honoured, and refused when taken", async () => {
      const net = w.network();
      const base = { range: "10.23.0.0/24", network_name: net };
      const pod = { namespace: w.ns, name: "s1", uid: crypto.randomUUID() };
      const stat = await w.invoke(
        "ADD",
        w.conf(base, { runtimeConfig: { ips: ["10.23.0.77/24"] } }),
        {
          containerId: "s1",
          pod,
        },
      );
      assert.deepEqual(ips(stat), ["10.23.0.77/24"]);
      const viaArgs = await w.exec("ADD", w.conf(base), {
        containerId: "s2",
        pod: { namespace: w.ns, name: "s2", uid: "u-s2" },
      }, { CNI_ARGS: "IgnoreUnknown=1;IP=10.23.0.78" });
      assert.deepEqual(ips(viaArgs), ["10.23.0.78/24"], viaArgs.stdout);
      const taken = await w.invoke(
        "ADD",
        w.conf(base, { runtimeConfig: { ips: ["10.23.0.77"] } }),
        {
          containerId: "s3",
          pod: { namespace: w.ns, name: "s3", uid: "u-s3" },
        },
      );
      assert.equal(taken.error?.code, 11);
      assert.match(
        taken.error!.msg,
        new RegExp(`static address 10\\.23\\.0\\.77 of pool .* is in use by pod ${w.ns}/s1`),
      );
      const dynamic = await w.invoke("ADD", w.conf(base), { containerId: "s4" });
      assert.equal(dynamic.code, 0, dynamic.stdout);
      assert.ok(!["10.23.0.77/24", "10.23.0.78/24"].includes(ips(dynamic)[0]));
      assert.equal((await w.allocations(net)).length, 3, "the refused ADD recorded nothing");
    });

    await t.step("exclusions and range windows are never handed out", async () => {
      const net = w.network();
      const conf = w.conf({
        range: "10.24.0.0/27",
        range_start: "10.24.0.4",
        range_end: "10.24.0.20",
        exclude: ["10.24.0.8/30", "10.24.0.13"],
        network_name: net,
      });
      const got: string[] = [];
      for (let i = 0;; i++) {
        const out = await w.invoke("ADD", conf, { containerId: `x-${i}` });
        if (out.code !== 0) {
          assert.match(out.error!.msg, /is exhausted/);
          break;
        }
        got.push(addr(ips(out)[0]));
      }
      const expected = [4, 5, 6, 7, 12, 14, 15, 16, 17, 18, 19, 20].map((n) => `10.24.0.${n}`);
      assert.deepEqual(got.sort(), expected.sort());
    });

    await t.step("IPv6 and dual stack", async () => {
      const net = w.network();
      const conf = w.conf({
        range: "10.25.0.0/28",
        ipRanges: [{ range: "fd00:25::/64", exclude: ["fd00:25::/120"] }],
        network_name: net,
        gateway: "10.25.0.1",
      });
      const pod = { namespace: w.ns, name: "ds", uid: crypto.randomUUID() };
      const out = await w.invoke("ADD", conf, { containerId: "ds-1", pod });
      assert.equal(out.code, 0, out.stdout);
      const [v4, v6] = out.result!.ips!;
      assert.deepEqual(v4, { address: "10.25.0.2/28", gateway: "10.25.0.1" });
      assert.match(v6.address, /^fd00:25::[0-9a-f:]+\/64$/);
      assert.equal(v6.gateway, undefined, "the IPv4 gateway is not an IPv6 address's");
      const v6addr = parseIpAddr(addr(v6.address))!;
      assert.ok(v6addr.value > parseIpAddr("fd00:25::ff")!.value, "the excluded /120 is skipped");
      const v6only = await w.invoke("ADD", w.conf({ range: "fd00:26::/120", network_name: net }), {
        containerId: "v6-1",
      });
      assert.match(ips(v6only)[0], /^fd00:26::[0-9a-f]{1,2}\/120$/);
      const recorded = await w.allocations(net);
      assert.deepEqual(
        recorded.map((r) => r.ip).sort(),
        ["10.25.0.2", addr(v6.address), addr(ips(v6only)[0])].sort(),
      );
      const del = await w.invoke("DEL", { ...conf, prevResult: out.result }, {
        containerId: "ds-1",
        pod,
      });
      assert.equal(del.code, 0);
      assert.deepEqual((await w.allocations(net)).map((r) => r.ip), [addr(ips(v6only)[0])]);
      // CNI 0.3.1 result shape, as whereabouts prints it for that version.
      const old = await w.invoke(
        "ADD",
        w.conf({ range: "10.27.0.0/28", network_name: net }, { cniVersion: "0.3.1" }),
        {
          containerId: "old-1",
        },
      );
      assert.deepEqual(old.result!.ips, [{ version: "4", address: "10.27.0.1/28" }]);
    });

    await t.step("the exec'd plugin, without a daemon, works the same", async () => {
      const net = uniq("ex");
      const conf = w.conf({ range: "10.28.0.0/24", network_name: net });
      const outs = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          w.exec("ADD", conf, {
            containerId: `e-${i}`,
            pod: { namespace: w.ns, name: `e-${i}`, uid: `ue-${i}` },
          })),
      );
      for (const o of outs) assert.equal(o.code, 0, o.stdout);
      assert.equal(new Set(outs.map((o) => ips(o)[0])).size, 6);
      const del = await w.exec("DEL", conf, { containerId: "e-0" });
      assert.equal(del.code, 0, del.stdout);
      assert.equal((await w.allocations(net)).length, 5);
    });
  } finally {
    await w.close();
  }
});
