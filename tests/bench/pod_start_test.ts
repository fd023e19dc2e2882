/**
 * The pod start benchmark, short: one small wave per arm through the same
 * code `deno task bench` runs, so the benchmark cannot rot. Every arm's
 * pods must become Ready with the networks it attaches (the run checks
 * each pod's network-status and throws otherwise), and the document has
 * the documented shape. Figures are not judged here (bench/ does).
 */

import assert from "node:assert/strict";
import { startControlPlane } from "../infra/cluster.ts";
import { ARM_NAMES } from "../../bench/pod_start_arms.ts";
import { runPodStart } from "../../bench/pod_start_lib.ts";

Deno.test("pod start bench: a short run of every arm gives the documented JSON", async () => {
  const cp = await startControlPlane();
  try {
    const arms = await runPodStart(cp, {
      pods: 2,
      wave: 2,
      warmupWaves: 0,
      arms: [...ARM_NAMES],
    });
    assert.deepEqual(Object.keys(arms), [...ARM_NAMES]);
    for (const [name, r] of Object.entries(arms)) {
      for (const k of ["p50Ms", "p99Ms", "podsPerSecond", "cpuMsPerPod"] as const) {
        assert.ok(r[k] > 0, `${name}.${k} = ${r[k]}`);
      }
      assert.equal(r.addedP50Ms === null, name === "default", `${name}.addedP50Ms`);
      const daemons = name === "default" || name === "multus_thin" ? 0 : 1;
      assert.equal(Object.keys(r.rssByProcessMiB).length, daemons, name);
      if (daemons) assert.ok(r.rssMiB! > 5, `${name}.rssMiB = ${r.rssMiB}`);
    }
  } finally {
    await cp.stop();
  }
});
