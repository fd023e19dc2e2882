/**
 * The cluster-IPAM benchmark's phases, small (4 nodes, 40 pods), as a test
 * of what its figures rest on: every phase ends with each live pod holding
 * its own address, the power cycle (daemons and in-flight execs SIGKILLed
 * mid-phase) leaves no leak the controller does not reclaim within two
 * minutes, and after the last phase nothing is left recorded. Speed is the
 * full benchmark's business (bench/cluster_ipam.ts), not this test's.
 *
 * Needs the built peers (etcd, kube-apiserver).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { nodeName, runPeer } from "../../bench/cluster_ipam_lib.ts";
import { hydraPeer, podApi } from "../../bench/cluster_ipam_peers_lib.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { startPoolWorld } from "./harness.ts";

Deno.test("cluster-IPAM benchmark phases, short: no duplicate, every power-cycle leak reclaimed", async () => {
  const w = await startPoolWorld();
  try {
    const nodes = 4;
    for (let i = 0; i < nodes; i++) {
      await w.client.create("/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: nodeName(i) },
      });
    }
    const network = w.network("bench");
    const peer = hydraPeer(
      { client: w.client, kubeconfig: w.kubeconfig, dir: w.dir, netns: w.netns },
      // The full benchmark runs the controller as deployed; here it looks sooner.
      {
        bin: join(REPO_ROOT, "bin"),
        range: "10.81.0.0/24",
        network,
        controllerArgs: ["--grace", "5"],
      },
    );
    const result = await runPeer(peer, podApi(w.client), {
      nodes,
      pods: 40,
      groupSize: 10,
      perNode: 5,
      phaseTimeoutMs: 300_000,
      reclaimWaitMs: 120_000,
      rssSamples: 1,
      log: () => {},
    }, w.ns);
    assert.equal(result.error, undefined, result.error);
    for (const phase of ["create", "recreate", "powercycle", "delete"] as const) {
      const p = result[phase]!;
      assert.ok(p, `${phase} ran`);
      assert.equal(p.failed, undefined, `${phase} finished`);
      assert.equal(p.pods, 40, `${phase}: every pod`);
      assert.equal(p.duplicates, 0, `${phase}: no address held by two live pods`);
    }
    const cycle = result.powercycle!;
    assert.ok(cycle.retries > 0, "the power cut failed some ADDs, which were retried");
    assert.notEqual(cycle.leakedAfterReclaimSeconds, null, `${cycle.leakedRemaining} leaks left`);
    assert.ok(cycle.leakedAfterReclaimSeconds! <= 120);
    assert.ok(result.rss.daemonMiB > 0);
    // Every pod is gone: nothing stays recorded.
    const left = (await w.allocations(network)).filter((a) => a.source !== "whereabouts");
    assert.deepEqual(left.map((a) => `${a.ip} ${a.pod}`), []);
  } finally {
    await w.close();
  }
});
