/**
 * Hot plug with hydra as the meta-CNI and `hydra daemon --hotplug on`,
 * against a real kube-apiserver, kubelet and containerd (scenarios.ts).
 *
 * Needs root and the built peers (tests/infra/build-peers.sh).
 */

import { startHotplugWorld } from "./world.ts";
import {
  attachAndDetach,
  badInput,
  deleteReleases,
  optOutLeftAlone,
  restartMidChange,
} from "./scenarios.ts";

Deno.test("hot plug, meta-CNI with hydra daemon: networks follow a running pod's annotation", async (t) => {
  const w = await startHotplugWorld("meta");
  try {
    await t.step("net2 comes, reaches a peer, goes with its address", () => attachAndDetach(w));
    await t.step("a pod that does not accept hot plug is left alone", () => optOutLeftAlone(w));
    await t.step("bad input keeps the networks and says why", () => badInput(w));
    await t.step("the daemon killed mid-change converges on restart", () => restartMidChange(w));
    await t.step("deleting the pod releases hot-plugged networks", () => deleteReleases(w));
  } finally {
    await w.close();
  }
});
