/**
 * hydra-pool's bad inputs against a real kube-apiserver, each a clear CNI
 * error with nothing recorded or lost: overlapping pools without
 * `enable_overlapping_ranges`, static addresses outside the pool or
 * excluded, an exhausted pool (with an Event on the pod), malformed
 * ranges, the API server away (code 11 within `apiTimeout`, nothing left
 * recorded), objects edited by hand into nonsense, the CRDs missing.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import type { AddressBlock } from "../../ipam/pool/objects.ts";
import { blockPath, poolPath } from "../../ipam/pool/objects.ts";
import { addr, eventually, metric, POOL_CRDS, startPoolWorld } from "./harness.ts";

function ip(out: { result?: { ips?: { address: string }[] } }): string {
  return addr(out.result?.ips?.[0]?.address ?? "");
}

Deno.test("hydra-pool: bad input is a clear error and records nothing", async (t) => {
  const w = await startPoolWorld();
  try {
    await t.step(
      "overlapping pools need enable_overlapping_ranges; with it they never share an address",
      async () => {
        const net = w.network();
        const wide = w.conf({ range: "10.60.0.0/27", network_name: net });
        assert.equal((await w.invoke("ADD", wide, { containerId: "w0" })).code, 0);
        const narrow = { range: "10.60.0.0/28", network_name: net };
        const refused = await w.invoke(
          "ADD",
          w.conf({ ...narrow, enable_overlapping_ranges: false }),
          {
            containerId: "n0",
          },
        );
        assert.equal(refused.error?.code, 7);
        assert.match(
          refused.error!.msg,
          new RegExp(`overlaps address pool ${net}\\.10\\.60\\.0\\.0-27`),
        );
        assert.match(refused.error!.msg, /enable_overlapping_ranges/);
        assert.equal((await w.allocations(net)).length, 1, "nothing recorded");

        // A pool created with sharing forbidden refuses later overlapping ones too.
        const net2 = w.network();
        const strict = await w.invoke(
          "ADD",
          w.conf({ range: "10.61.0.0/28", network_name: net2, enable_overlapping_ranges: false }),
          { containerId: "s0" },
        );
        assert.equal(strict.code, 0, strict.stdout);
        const late = await w.invoke(
          "ADD",
          w.conf({ range: "10.61.0.8-10.61.0.20/27", network_name: net2 }),
          {
            containerId: "s1",
          },
        );
        assert.equal(late.error?.code, 7);
        assert.match(late.error!.msg, /overlaps address pool/);

        // Allowed (whereabouts' default): both ranges allocate until the shared addresses run out.
        const got = new Set<string>([ip(await w.invoke("ADD", wide, { containerId: "w1" }))]);
        for (let i = 0; i < 80; i++) {
          const out = await w.invoke("ADD", i % 2 ? w.conf(narrow) : wide, {
            containerId: `o-${i}`,
          });
          if (out.code === 0) got.add(ip(out));
          else {
            assert.match(out.error!.msg, /is exhausted/);
            if (i % 2 === 0) break;
          }
        }
        const recorded = await w.allocations(net);
        assert.equal(recorded.length, 30, "the /27's 30 addresses, none twice");
        assert.equal(new Set(recorded.map((r) => r.ip)).size, 30);
        assert.equal(got.size, 29, "every ADD got an address of its own");
      },
    );

    await t.step("static addresses outside the pool or excluded; malformed ranges", async () => {
      const net = w.network();
      const base = { range: "10.62.0.0/24", exclude: ["10.62.0.0/28"], network_name: net };
      const cases: [Record<string, unknown>, Record<string, unknown>, RegExp][] = [
        [
          base,
          { runtimeConfig: { ips: ["10.99.0.5"] } },
          /static address 10\.99\.0\.5 is outside every range/,
        ],
        [
          base,
          { runtimeConfig: { ips: ["10.62.0.5"] } },
          /static address 10\.62\.0\.5 is excluded in pool/,
        ],
        [{ ...base, range: "10.62.0.0/33" }, {}, /invalid CIDR/],
        [{ ...base, range: "10.62.0.200-10.62.0.100/24" }, {}, /is after range end/],
        [
          { ...base, range_start: "10.63.0.1" },
          {},
          /range start 10\.63\.0\.1 is not inside 10\.62\.0\.0\/24/,
        ],
        [{ network_name: net }, {}, /no range/],
      ];
      for (const [ipam, extra, pattern] of cases) {
        const out = await w.invoke("ADD", w.conf(ipam, extra), { containerId: "bad" });
        assert.equal(out.error?.code, 7, out.stdout);
        assert.match(out.error!.msg, pattern);
      }
      assert.equal((await w.allocations(net)).length, 0);
      assert.equal((await w.blocks()).filter((b) => b.network === net).length, 0);
    });

    await t.step(
      "an exhausted pool: code 11 naming the pool, and an Event on the pod",
      async () => {
        const net = w.network();
        const conf = w.conf({ range: "10.64.0.0/30", network_name: net });
        for (const c of ["e1", "e2"]) {
          assert.equal((await w.invoke("ADD", conf, { containerId: c })).code, 0);
        }
        const pod = await w.createPod("starved", { node: "node-a" });
        const out = await w.invoke("ADD", conf, {
          containerId: "e3",
          pod: { namespace: w.ns, name: "starved", uid: pod.metadata.uid },
        });
        assert.equal(out.error?.code, 11);
        assert.match(
          out.error!.msg,
          new RegExp(`address pool ${net}\\.10\\.64\\.0\\.0-30 \\(10\\.64\\.0\\.0/30`),
        );
        assert.match(out.error!.msg, /is exhausted/);
        await eventually("the pod has an AddressPoolExhausted Event", async () => {
          const events = await w.client.list<
            { reason: string; message: string; involvedObject: { name: string } }
          >(
            `/api/v1/namespaces/${w.ns}/events`,
          );
          return events.items.some((e) =>
            e.reason === "AddressPoolExhausted" && e.involvedObject.name === "starved" &&
            e.message.includes(`${net}.10.64.0.0-30`)
          );
        });
        assert.equal((await w.allocations(net)).length, 2);
      },
    );

    await t.step("the API server away: code 11 within apiTimeout, nothing recorded", async () => {
      const net = w.network();
      const conf = w.conf({ range: "10.65.0.0/24", network_name: net, apiTimeout: 2 });
      assert.equal((await w.exec("ADD", conf, { containerId: "before" })).code, 0);
      await w.stopApi();
      try {
        const out = await w.exec("ADD", conf, { containerId: "during" });
        assert.equal(out.error?.code, 11, out.stdout);
        assert.match(out.error!.msg, /did not answer in time|no answer within/);
        assert.ok(out.ms < 6_000, `answered after ${Math.round(out.ms)} ms`);
        const del = await w.exec("DEL", conf, { containerId: "before" });
        assert.equal(
          del.error?.code,
          11,
          "a DEL that could not reach the API is retried by the runtime",
        );
      } finally {
        await w.startApi();
      }
      const recorded = await w.allocations(net);
      assert.deepEqual(
        recorded.map((r) => r.containerID),
        ["before"],
      );
    });

    await t.step(
      "the API server frozen mid-write: the daemon takes back what the failed ADD may have written",
      async () => {
        const d = await w.startDaemon("fnode");
        const net = w.network();
        const conf = w.conf({
          range: "10.66.0.0/24",
          network_name: net,
          daemonSocket: d.socket,
          apiTimeout: 2,
        });
        assert.equal((await w.exec("ADD", conf, { containerId: "warm" })).code, 0);
        const api = await apiPid(w);
        Deno.kill(api, "SIGSTOP");
        let out;
        try {
          out = await w.exec("ADD", conf, { containerId: "frozen" });
        } finally {
          Deno.kill(api, "SIGCONT");
        }
        assert.equal(out.error?.code, 11, out.stdout);
        await eventually(
          "nothing is recorded for the failed ADD",
          async () => !(await w.allocations(net)).some((r) => r.containerID === "frozen"),
          30_000,
        );
        assert.deepEqual((await w.allocations(net)).map((r) => r.containerID), ["warm"]);
        assert.ok(metric(await d.metrics(), "hydra_ipam_allocations_total") >= 1);
      },
    );

    await t.step("objects edited by hand into nonsense: refused, nothing lost", async () => {
      const net = w.network();
      const conf = w.conf({ range: "10.67.0.0/28", network_name: net });
      const good = await w.invoke("ADD", conf, { containerId: "g1" });
      assert.equal(good.code, 0);
      const [block] = (await w.blocks()).filter((b) => b.network === net);
      // The schema refuses what is not even the right shape.
      const wrongShape = await w.cp.kubectl(
        "patch",
        "addressblock",
        block.name,
        "--type=merge",
        "-p",
        '{"spec":{"allocations":"none"}}',
      ).catch((err) => String(err));
      assert.match(wrongShape, /allocations|Invalid value/);
      // An address outside the block passes the schema; hydra then refuses the block.
      const obj = await w.client.get<AddressBlock>(blockPath(block.name));
      obj.spec.allocations = [...obj.spec.allocations!, { ip: "10.99.9.9", pod: "x/y" }];
      await w.client.update(blockPath(block.name), obj);
      const refused = await w.invoke("ADD", conf, { containerId: "g2" });
      assert.notEqual(refused.code, 0);
      assert.match(
        refused.error!.msg,
        new RegExp(`address block ${block.name.replaceAll(".", "\\.")} is malformed`),
      );
      const del = await w.invoke("DEL", { ...conf, prevResult: good.result }, {
        containerId: "g1",
      });
      assert.equal(del.code, 0, "DEL never blocks a pod's deletion on a bad block");
      const after = await w.client.get<AddressBlock>(blockPath(block.name));
      assert.equal(after.spec.allocations!.length, 2, "nothing in it was changed or lost");
      // A pool's spec cannot be changed.
      const poolName = `${net}.10.67.0.0-28`;
      const patched = await w.cp.kubectl(
        "patch",
        "addresspool",
        poolName,
        "--type=merge",
        "-p",
        '{"spec":{"rangeEnd":"10.67.0.3"}}',
      )
        .catch((err) => String(err));
      assert.match(patched, /a pool's spec cannot change/);
      // Replaced by hand with another window: hydra refuses to allocate by it.
      await w.client.delete(poolPath(poolName));
      await w.client.create(poolPath(), {
        apiVersion: "hydra.clusternet.io/v1alpha1",
        kind: "AddressPool",
        metadata: { name: poolName },
        spec: {
          network: net,
          cidr: "10.67.0.0/28",
          rangeStart: "10.67.0.1",
          rangeEnd: "10.67.0.3",
          overlapping: true,
        },
      });
      const mismatch = await w.exec("ADD", conf, { containerId: "g3" });
      assert.equal(mismatch.error?.code, 7, mismatch.stdout);
      assert.match(mismatch.error!.msg, /was edited by hand/);
    });

    await t.step("the CRDs missing: a clear error", async () => {
      await w.cp.kubectl("delete", "-f", POOL_CRDS, "--wait=true");
      const out = await w.exec(
        "ADD",
        w.conf({ range: "10.68.0.0/24", network_name: w.network() }),
        {
          containerId: "nocrd",
        },
      );
      assert.equal(out.error?.code, 50, out.stdout);
      assert.match(out.error!.msg, /install hydra's CRDs/);
    });
  } finally {
    await w.close();
  }
});

/** The running kube-apiserver's pid (found by its etcd flag, unique to this world). */
async function apiPid(w: { cp: { etcdEndpoint: string } }): Promise<number> {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      if (cmd.includes("kube-apiserver") && cmd.includes(`--etcd-servers=${w.cp.etcdEndpoint}`)) {
        return Number(e.name);
      }
    } catch {
      // gone
    }
  }
  throw new Error("kube-apiserver not found");
}
