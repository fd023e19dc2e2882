/**
 * `hydra nri serve --on-failure`: a network that cannot be attached fails
 * the sandbox (fail, the default) or lets it start without the network
 * (log); either way nothing of the failed attach is left behind.
 *
 * Needs root and the built peers (tests/infra/build-peers.sh).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { uniqueName } from "../helpers/netns.ts";
import { extraLinks, withNriWorld, worldIgnored } from "./serve_world.ts";

const ignore = worldIgnored();
const NETWORKS = "k8s.v1.cni.cncf.io/networks";

Deno.test({
  name: "nri serve: a broken network fails runp (fail) or the pod starts without it (log)",
  ignore,
  async fn() {
    await withNriWorld(async (w) => {
      const strict = await w.startHydra();
      await assert.rejects(
        w.runp(uniqueName("strict"), { [NETWORKS]: "red,broken" }),
        /NRI RunPodSandbox failed: .*hydra: attaching the networks of pod nri-test\/strict.*network \\?"broken\\?" \(interface net2\)/s,
      );
      await assert.rejects(
        w.runp(uniqueName("unknown"), { [NETWORKS]: "no-such-net" }),
        /no net configuration with name \\?"no-such-net\\?"/,
      );
      await assert.rejects(
        w.runp(uniqueName("badsel"), { [NETWORKS]: "red@eth0" }),
        /interface \\?"eth0\\?" belongs to the pod's default network/,
      );
      assert.equal((await w.ctd.crictl("pods", "--state", "ready", "-q")).trim(), "");
      // red was added before broken failed, and was rolled back.
      assert.deepEqual(w.reserved("red"), []);
      assert.deepEqual([...Deno.readDirSync(join(w.cacheDir, "attachments"))], []);
      const strictMetrics = (await strict.get("/metrics")).body;
      assert.match(strictMetrics, /hydra_nri_events_total\{event="run",result="error"\} 3/);
      assert.match(strictMetrics, /hydra_nri_failures_total\{op="attach",trigger="run"\} 3/);
      assert.equal(await strict.terminate(), 0);

      const lenient = await w.startHydra(["--on-failure=log"]);
      const id = await w.runp(uniqueName("lenient"), { [NETWORKS]: "red,broken" });
      const links = await w.addrs(await w.netnsOf(id));
      assert.ok(links.some((l) => l.ifname === "eth0"), "the pod has its default network");
      assert.deepEqual([...extraLinks(links).keys()], [], "and nothing of the failed attach");
      assert.deepEqual(w.reserved("red"), []);
      const metrics = (await lenient.get("/metrics")).body;
      assert.match(metrics, /hydra_nri_events_total\{event="run",result="ok"\} 1/);
      assert.match(metrics, /hydra_nri_failures_total\{op="attach",trigger="run"\} 1/);
      assert.ok(
        lenient.logLines().some((l) =>
          l.msg === "cannot attach networks" && l.policy === "log" &&
          /network "broken"/.test(String(l.error))
        ),
      );
    });
  },
});
