/**
 * `hydra nri serve` and the sandboxes that come and go while it is not
 * there: Synchronize attaches what is missing and releases what belongs to
 * sandboxes that are gone; kill -9 and restarts leak nothing and never
 * attach twice; an attach cut short (record without state) is redone; a
 * containerd restart is survived.
 *
 * Needs root and the built peers (tests/infra/build-peers.sh).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { uniqueName } from "../helpers/netns.ts";
import { extraLinks, type NriWorld, v4, withNriWorld } from "./serve_world.ts";

const NETWORKS = "k8s.v1.cni.cncf.io/networks";

/** The extra interfaces of a sandbox with their IPv4 addresses. */
async function extras(w: NriWorld, id: string): Promise<Record<string, string[]>> {
  const links = extraLinks(await w.addrs(await w.netnsOf(id)));
  return Object.fromEntries([...links].map(([name, link]) => [name, v4(link)]));
}

function sorted(values: string[]): string[] {
  return [...values].sort();
}

/** Addresses of `extras` results, without prefix length. */
function bare(addrs: Record<string, string[]>, ifName: string): string[] {
  return (addrs[ifName] ?? []).map((a) => a.split("/")[0]);
}

Deno.test({
  name: "nri serve: started after sandboxes exist, Synchronize attaches their missing networks",
  async fn() {
    await withNriWorld(async (w) => {
      const a = await w.runp(uniqueName("a"), { [NETWORKS]: "blue,red" });
      const b = await w.runp(uniqueName("b"), { [NETWORKS]: "red@data0" });
      const none = await w.runp(uniqueName("none"));
      assert.deepEqual(await extras(w, a), {}, "no plugin yet: nothing attached");

      const hydra = await w.startHydra();
      await hydra.passes(1);
      const ea = await extras(w, a);
      const eb = await extras(w, b);
      assert.deepEqual(Object.keys(ea).sort(), ["net1", "net2"]);
      assert.deepEqual(Object.keys(eb), ["data0"]);
      assert.ok(ea.net1[0].startsWith(w.blueNet));
      assert.ok(ea.net2[0].startsWith(w.redNet));
      assert.ok(eb.data0[0].startsWith(w.redNet));
      assert.deepEqual(await extras(w, none), {});
      assert.deepEqual(w.reserved("blue"), bare(ea, "net1"));
      assert.deepEqual(
        sorted(w.reserved("red")),
        sorted([...bare(ea, "net2"), ...bare(eb, "data0")]),
      );
      const metrics = (await hydra.get("/metrics")).body;
      assert.match(
        metrics,
        /hydra_nri_attach_duration_seconds_count\{trigger="sync",result="ok"\} 2/,
      );
      assert.match(metrics, /hydra_nri_attached_pods 2/);

      await w.ctd.crictl("stopp", a);
      await w.ctd.crictl("rmp", a);
      assert.deepEqual(w.reserved("blue"), []);
      assert.deepEqual(w.reserved("red"), bare(eb, "data0"));
    });
  },
});

Deno.test({
  name:
    "nri serve: kill -9 and restart while sandboxes come and go leaks nothing and never attaches twice",
  async fn() {
    await withNriWorld(async (w) => {
      let hydra = await w.startHydra();
      const gone = await w.runp(uniqueName("gone"), { [NETWORKS]: "blue,red" });
      const stays = await w.runp(uniqueName("stays"), { [NETWORKS]: "blue" });
      const staysBefore = await extras(w, stays);
      assert.equal(w.reserved("blue").length, 2);

      await hydra.kill();
      // While hydra is away: one sandbox goes, one comes (without hydra's networks).
      await w.ctd.crictl("stopp", gone);
      await w.ctd.crictl("rmp", gone);
      const late = await w.runp(uniqueName("late"), { [NETWORKS]: "red" });
      assert.deepEqual(await extras(w, late), {});
      assert.equal(w.reserved("blue").length, 2, "the gone sandbox's address is still held");

      hydra = await w.startHydra();
      await hydra.passes(1);
      assert.deepEqual(await extras(w, stays), staysBefore, "attached sandbox left as it was");
      const lateNow = await extras(w, late);
      assert.deepEqual(Object.keys(lateNow), ["net1"]);
      assert.deepEqual(w.reserved("blue"), bare(staysBefore, "net1"), "gone sandbox released");
      assert.deepEqual(w.reserved("red"), bare(lateNow, "net1"));
      assert.equal((await w.bridgePorts()).length, 1);
      const records = [...Deno.readDirSync(join(w.cacheDir, "attachments"))].map((e) => e.name);
      assert.deepEqual(sorted(records), sorted([`${stays}-net1`, `${late}-net1`]));

      // An attach cut short: the record is there, the state file is not. Undone and redone.
      await hydra.kill();
      await Deno.remove(join(w.cacheDir, "pods", `${late}.json`));
      hydra = await w.startHydra();
      await hydra.passes(1);
      const lateRedone = await extras(w, late);
      assert.deepEqual(Object.keys(lateRedone), ["net1"]);
      assert.equal(w.reserved("red").length, 1, "one red address, not two");
      assert.deepEqual(w.reserved("red"), bare(lateRedone, "net1"));
      assert.ok(hydra.logLines().some((l) => l.msg === "undoing an attach that did not finish"));

      // Restarted once more with everything attached: nothing changes.
      await hydra.kill();
      hydra = await w.startHydra();
      await hydra.passes(1);
      assert.deepEqual(await extras(w, stays), staysBefore);
      assert.deepEqual(await extras(w, late), lateRedone);
      assert.equal(w.reserved("blue").length, 1);
      assert.equal(w.reserved("red").length, 1);
      assert.ok(!hydra.logLines().some((l) => l.msg === "networks attached on synchronize"));

      for (const id of [stays, late]) {
        await w.ctd.crictl("stopp", id);
        await w.ctd.crictl("rmp", id);
      }
      assert.deepEqual(w.reserved("blue"), []);
      assert.deepEqual(w.reserved("red"), []);
      assert.deepEqual([...Deno.readDirSync(join(w.cacheDir, "attachments"))], []);
      assert.deepEqual([...Deno.readDirSync(join(w.cacheDir, "pods"))], []);
    });
  },
});

Deno.test({
  name: "nri serve: reconnects after containerd restarts and keeps attaching and releasing",
  async fn() {
    await withNriWorld(async (w) => {
      const hydra = await w.startHydra();
      const before = await w.runp(uniqueName("before"), { [NETWORKS]: "blue" });
      const beforeAddrs = await extras(w, before);
      await w.ctd.restart();
      await hydra.passes(2);
      await hydra.ready();
      assert.match((await hydra.get("/metrics")).body, /hydra_nri_disconnects_total [1-9]/);
      assert.deepEqual(await extras(w, before), beforeAddrs, "kept across the restart");

      const after = await w.runp(uniqueName("after"), { [NETWORKS]: "red,blue" });
      const afterAddrs = await extras(w, after);
      assert.deepEqual(Object.keys(afterAddrs).sort(), ["net1", "net2"]);
      assert.ok(afterAddrs.net1[0].startsWith(w.redNet));
      assert.ok(afterAddrs.net2[0].startsWith(w.blueNet));
      await w.ctd.crictl("stopp", after);
      await w.ctd.crictl("rmp", after);
      assert.deepEqual(w.reserved("blue"), bare(beforeAddrs, "net1"));
      assert.deepEqual(w.reserved("red"), []);
    });
  },
});
