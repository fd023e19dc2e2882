/**
 * Pods with ResourceClaims, end to end through the real control loops:
 * kube-controller-manager makes claims from templates, kube-scheduler
 * allocates them from the ResourceSlices `hydra dra serve` publishes and
 * hydra's DeviceClasses and binds the pod, the real kubelet prepares them
 * through the driver and containerd runs the sandbox, which `hydra nri
 * serve` gives its devices. One world for the steps, as starting one costs
 * more than most steps:
 *
 * - Multus's resourceName: the device ID the kubelet allocated reaches the
 *   delegate (resource_name.ts; no claim, but the same world serves it);
 * - a host NIC by claim (nic.ts);
 * - a hydra network by claim, beside the same network by annotation (network.ts);
 * - more claims than NICs: the extra pod stays Pending, then gets the freed NIC (pool.ts);
 * - the DRA benchmark, short, through the code `deno task bench` runs, so it
 *   cannot rot: its document has the documented shape and every claimed pod
 *   held its NIC (the run checks that and throws otherwise). Figures are not
 *   judged here (bench/ does).
 *
 * Needs root and the built peers.
 */

import assert from "node:assert/strict";
import { measureDraBench } from "../../bench/dra_lib.ts";
import { hostNic } from "./nic.ts";
import { networkByClaim } from "./network.ts";
import { moreClaimsThanNics } from "./pool.ts";
import { resourceNameDeviceId } from "./resource_name.ts";
import { type DraWorld, runSteps, withDraWorld } from "./world.ts";

async function shortBench(w: DraWorld): Promise<void> {
  const dra = await w.startDra();
  const nri = await w.startNri(["--log-level=info"]);
  const doc = await measureDraBench(w, { dra, nri }, { pods: 2, warmup: 0, nics: 1 });
  assert.deepEqual(Object.keys(doc).sort(), ["claimedMs", "plainMs", "pods", "rssMiB"]);
  assert.equal(doc.pods, 2);
  for (const k of ["claimedMs", "plainMs"] as const) {
    assert.deepEqual(Object.keys(doc[k]).sort(), ["p50", "p99"]);
    assert.ok(doc[k].p50 > 0 && doc[k].p99 >= doc[k].p50, `${k}: ${JSON.stringify(doc[k])}`);
  }
  assert.ok(doc.rssMiB > 10, `rssMiB ${doc.rssMiB}`);
}

Deno.test("dra: claims allocated by kube-scheduler, prepared and set up by hydra", (t) =>
  withDraWorld((w) =>
    runSteps(t, w, [
      // First: the kubelet's device-plugin folder is the machine's, and a kubelet started after
      // this world's (another test run's) takes it over; right after the start it is this one's.
      ["resourceName: the delegate gets the device ID the kubelet allocated", resourceNameDeviceId],
      ["a host NIC by claim: inside the pod as asked, back on the host after", hostNic],
      ["a network by claim gets what the annotation gives", networkByClaim],
      ["more claims than NICs: the extra pod waits for a freed NIC", moreClaimsThanNics],
      ["the benchmark, short, gives the documented JSON", shortBench],
    ])
  ));
