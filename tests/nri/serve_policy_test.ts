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
import { poll } from "../infra/process.ts";
import { extraLinks, withNriWorld } from "./serve_world.ts";

const NETWORKS = "k8s.v1.cni.cncf.io/networks";

Deno.test({
  name: "nri serve: a broken network fails runp (fail) or the pod starts without it (log)",
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

Deno.test({
  name:
    "nri serve: an attach that outlives the runtime's budget fails the pod and is undone (fail) or completes late (log)",
  async fn() {
    await withNriWorld(async (w) => {
      const strict = await w.startHydra([`--cni-bin-dir=${w.slowBinDir}`]);
      await assert.rejects(
        w.runp(uniqueName("late"), { [NETWORKS]: "slow" }),
        /NRI RunPodSandbox failed: .*did not finish within its \d+ ms budget/s,
      );
      // Had the answer come late, containerd would have dropped hydra and started the pod.
      await strict.passes(1);
      const settled = await poll(() =>
        w.reserved("slow").length === 0 &&
        strict.logLines().some((l) => l.msg === "networks released"), 15_000);
      assert.ok(settled, "the late attach was undone");
      assert.deepEqual([...Deno.readDirSync(join(w.cacheDir, "attachments"))], []);
      assert.equal(
        strict.logLines().filter((l) => l.msg === "synchronize pass done").length,
        1,
        "never disconnected",
      );
      assert.equal(await strict.terminate(), 0);

      const lenient = await w.startHydra([`--cni-bin-dir=${w.slowBinDir}`, "--on-failure=log"]);
      const id = await w.runp(uniqueName("slowok"), { [NETWORKS]: "slow" });
      const netns = await w.netnsOf(id);
      // The link appears before the delegate's IPAM has run; the attach is done when hydra says so.
      const appeared = await poll(
        async () =>
          extraLinks(await w.addrs(netns)).has("net1") &&
          lenient.logLines().some((l) => l.msg === "networks attached" && l.sandbox === id),
        15_000,
        100,
      );
      assert.ok(appeared, "the network arrives after the pod started");
      assert.equal(w.reserved("slow").length, 1);
      assert.ok(lenient.logLines().some((l) => l.msg === "attach goes on after the answer"));
      await w.ctd.crictl("stopp", id);
      assert.deepEqual(w.reserved("slow"), []);
    });
  },
});
