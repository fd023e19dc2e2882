/**
 * Taking a range over from whereabouts: the real whereabouts (built by
 * tests/infra, its CRDs read from its module at the pinned version)
 * allocates addresses; the NAD's IPAM type is then changed to hydra-pool
 * and nothing else; hydra-pool hands out every other address of the range
 * and none whereabouts holds; the controller drops a hold once its pod is
 * gone.
 *
 * Needs the built peers (etcd, kube-apiserver, whereabouts) and the
 * whereabouts module in the Go module cache (build-peers.sh puts it there).
 */

import assert from "node:assert/strict";
import { whereaboutsBin, whereaboutsCrds } from "../infra/whereabouts.ts";
import { addr, eventually, metric, startPoolWorld } from "./harness.ts";

Deno.test("hydra-pool takes a range over from whereabouts without handing out what it holds", async () => {
  const w = await startPoolWorld();
  try {
    for (const f of await whereaboutsCrds()) await w.cp.kubectl("apply", "-f", f);
    const flat = `${w.dir}/whereabouts.conf`;
    await Deno.writeTextFile(
      flat,
      JSON.stringify({ datastore: "kubernetes", kubernetes: { kubeconfig: w.kubeconfig } }),
    );
    const ipam = { range: "10.70.0.0/27", exclude: ["10.70.0.16/30"], configuration_path: flat };
    const wbConf = {
      cniVersion: "0.3.1",
      name: "wb",
      type: "macvlan",
      ipam: { type: "whereabouts", ...ipam },
    };
    const held: string[] = [];
    for (let i = 0; i < 5; i++) {
      if (i < 4) await w.createPod(`wb-${i}`);
      const child = new Deno.Command(whereaboutsBin(), {
        env: {
          CNI_COMMAND: "ADD",
          CNI_CONTAINERID: `wb-c${i}`,
          CNI_NETNS: w.netns,
          CNI_IFNAME: "net1",
          CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${w.ns};K8S_POD_NAME=wb-${i}`,
          CNI_PATH: "/opt/cni/bin",
        },
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(JSON.stringify(wbConf)));
      await writer.close();
      const out = await child.output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
      held.push(addr(JSON.parse(text).ips[0].address));
    }
    assert.equal(new Set(held).size, 5);

    // The NAD switches over: only the type changes (whereabouts' flat-file key is ignored).
    const conf = w.conf({ ...ipam, type: "hydra-pool" }, { cniVersion: "0.3.1", name: "wb" });
    const got: string[] = [];
    for (let i = 0;; i++) {
      const out = await w.invoke("ADD", conf, { containerId: `hy-${i}` });
      if (out.code !== 0) {
        assert.match(out.error!.msg, /is exhausted/);
        break;
      }
      got.push(addr(out.result!.ips![0].address));
    }
    // 10.70.0.1-30 less the excluded .16-.19 is 26 addresses; whereabouts holds 5.
    assert.equal(got.length, 21);
    assert.deepEqual(
      got.filter((g) => held.includes(g)),
      [],
      "nothing whereabouts holds was handed out",
    );
    const holds = (await w.allocations("")).filter((a) => a.source === "whereabouts");
    assert.deepEqual(holds.map((h) => h.ip).sort(), [...held].sort());
    assert.deepEqual(holds.map((h) => h.pod).sort(), held.map((_, i) => `${w.ns}/wb-${i}`).sort());

    // wb-4's pod never existed: the controller drops its hold; the others' pods exist.
    const c = await w.startController(["--grace", "0", "--interval", "3"]);
    await eventually(
      "the hold of a pod that is gone is dropped",
      async () => (await w.allocations("")).filter((a) => a.source === "whereabouts").length === 4,
      30_000,
    );
    assert.ok(!(await w.allocations("")).some((a) => a.ip === held[4]));
    const poolName = (await w.blocks()).length > 0 ? "whereabouts" : "";
    assert.equal(
      metric(
        await c.metrics(),
        `hydra_ipam_reclaimed_total{pool="${poolName}",reason="whereabouts-pod-gone"}`,
      ),
      1,
    );
    const last = await w.invoke("ADD", conf, { containerId: "hy-last" });
    assert.equal(
      addr(last.result!.ips![0].address),
      held[4],
      "the dropped hold's address is free again",
    );
  } finally {
    await w.close();
  }
});
