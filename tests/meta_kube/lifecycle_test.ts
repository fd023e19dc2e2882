/**
 * DEL, CHECK and GC in Kubernetes mode against a real kube-apiserver,
 * without the node daemon, through it, inside it (`daemonExec`), and with
 * `daemonExec` asked for but no daemon there: DEL after the Pod object is deleted, after
 * the pod was replaced under its name (both work from the record, the pod
 * left alone), without a record (the pod's networks resolved again), with a
 * damaged record (moved aside, DEL still succeeds), CHECK of what ADD made,
 * and GC removing attachments of containers the runtime no longer lists.
 * Every case ends with the pod namespace empty and every address released.
 *
 * Needs root and the built peers (etcd, kube-apiserver, reference plugins).
 */

import assert from "node:assert/strict";
import { links, listFiles } from "../meta/harness.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { eventually, type KubeEnv, networkStatus, startKubeEnv } from "./harness.ts";
import type { Pod } from "../../kube/objects.ts";

async function names(netns: TestNetns): Promise<string[]> {
  return [...(await links(netns)).keys()].filter((n) => n !== "lo").sort();
}

/** host-local's reservation files (addresses still held). */
async function reservations(env: KubeEnv): Promise<string[]> {
  return (await listFiles(`${env.dir}/ipam`)).filter((f) =>
    !f.includes("last_reserved_ip") && !f.endsWith("/lock")
  );
}

Deno.test("Kubernetes mode: DEL, CHECK and GC work from the record, whatever became of the pod", async (t) => {
  const env = await startKubeEnv();
  try {
    const cluster = env.bridgeNet("cluster", { isGateway: true });
    await Deno.writeTextFile(`${env.confDir}/10-cluster.conf`, JSON.stringify(cluster.conf));
    const blue = env.bridgeNet("blue-net");
    const green = env.bridgeNet("green-net");
    await env.nad(env.ns, "blue", blue.conf);
    await env.nad(env.ns, "green", green.conf);
    const sel = { "k8s.v1.cni.cncf.io/networks": "blue,green" };

    // "daemonExec, no daemon": the conf asks for the daemon, none listens: runs here.
    const modes = ["direct", "daemon", "daemonExec", "daemonExec, no daemon"] as const;
    for (const [m, mode] of modes.entries()) {
      const daemon = mode === "daemon" || mode === "daemonExec"
        ? await env.startDaemon()
        : undefined;
      const conf = env.metaConf({
        clusterNetwork: "cluster",
        ...(daemon ? { daemonSocket: daemon.socket } : {}),
        ...(mode.startsWith("daemonExec")
          ? { daemonExec: true, daemonSocket: daemon?.socket ?? `${env.dir}/nobody.sock` }
          : {}),
      });
      const id = "adxn"[m];

      const added = async (name: string) => {
        const pod = await env.createPod(name, sel);
        const netns = await env.podNetns();
        const call = { netns, pod: pod.metadata, containerId: `${name}-${netns.name}` };
        const out = await env.cni("ADD", conf, call);
        assert.equal(out.code, 0, out.stdout);
        assert.deepEqual(await names(netns), ["eth0", "net1", "net2"]);
        return { pod, netns, call };
      };

      await t.step(`${mode}: DEL after the Pod object is deleted`, async () => {
        const { pod, netns, call } = await added(`gone-${id}`);
        await eventually(
          "status written",
          async () => networkStatus(await env.getPod(env.ns, pod.metadata.name)).length === 3,
        );
        await env.deletePod(env.ns, pod.metadata.name);
        const del = await env.cni("DEL", conf, call);
        assert.equal(del.code, 0, del.stdout);
        assert.deepEqual(await names(netns), []);
        assert.deepEqual(await reservations(env), []);
        // A second DEL (runtimes repeat them) succeeds too.
        assert.equal((await env.cni("DEL", conf, call)).code, 0);
      });

      await t.step(
        `${mode}: DEL of a replaced pod follows the record and leaves the new pod alone`,
        async () => {
          const { pod, netns, call } = await added(`swap-${id}`);
          await env.deletePod(env.ns, pod.metadata.name);
          const successor = await env.createPod(pod.metadata.name, {
            "k8s.v1.cni.cncf.io/networks": "blue",
          });
          const del = await env.cni("DEL", conf, call);
          assert.equal(del.code, 0, del.stdout);
          assert.deepEqual(await names(netns), []);
          assert.deepEqual(await reservations(env), []);
          const now = await env.getPod(env.ns, pod.metadata.name);
          assert.equal(now!.metadata.uid, successor.metadata.uid);
          assert.deepEqual(networkStatus(now), [], "the successor's status was touched");
          await env.deletePod(env.ns, pod.metadata.name);
        },
      );

      await t.step(
        `${mode}: CHECK confirms what ADD made and notices what is missing`,
        async () => {
          const { pod, netns, call } = await added(`check-${id}`);
          const ok = await env.cni("CHECK", conf, call);
          assert.equal(ok.code, 0, ok.stdout);
          await netns.exec("ip", "link", "del", "net2");
          const bad = await env.cni("CHECK", conf, call);
          assert.equal(bad.code, 1);
          assert.match(bad.json!.msg as string, /green/);
          assert.equal((await env.cni("DEL", conf, call)).code, 0);
          assert.deepEqual(await names(netns), []);
          assert.deepEqual(await reservations(env), []);
          await env.deletePod(env.ns, pod.metadata.name);
        },
      );

      await t.step(
        `${mode}: DEL without a record resolves the existing pod's networks again`,
        async () => {
          const { pod, netns, call } = await added(`norecord-${id}`);
          await Deno.remove(`${env.cacheDir}/attachments/${call.containerId}-eth0`);
          const del = await env.cni("DEL", conf, call);
          assert.equal(del.code, 0, del.stdout);
          assert.deepEqual(await names(netns), []);
          assert.deepEqual(await reservations(env), []);
          await env.deletePod(env.ns, pod.metadata.name);
        },
      );

      await t.step(`${mode}: a damaged record is moved aside and DEL still succeeds`, async () => {
        const { pod, netns, call } = await added(`damaged-${id}`);
        const record = `${env.cacheDir}/attachments/${call.containerId}-eth0`;
        const text = await Deno.readTextFile(record);
        await Deno.writeTextFile(record, text.slice(0, text.length / 2));
        const del = await env.cni("DEL", conf, call);
        assert.equal(del.code, 0, del.stdout);
        // The pod still exists, so its networks were resolved again and removed.
        assert.deepEqual(await names(netns), []);
        assert.deepEqual(await reservations(env), []);
        const kept = await listFiles(`${env.cacheDir}/attachments`);
        assert.ok(kept.includes(`.damaged-${call.containerId}-eth0`), `${kept}`);
        await env.deletePod(env.ns, pod.metadata.name);
      });

      if (daemon) assert.equal(await daemon.stop(), 0);
    }

    await t.step("GC removes attachments of containers no longer listed", async () => {
      const conf = env.metaConf({ clusterNetwork: "cluster", cniVersion: "1.1.0" });
      const keep = await env.createPod("gc-keep", sel);
      const drop = await env.createPod("gc-drop", sel);
      const ns1 = await env.podNetns();
      const ns2 = await env.podNetns();
      const c1 = { netns: ns1, pod: keep.metadata, containerId: "gc-keep" };
      const c2 = { netns: ns2, pod: drop.metadata, containerId: "gc-drop" };
      assert.equal((await env.cni("ADD", conf, c1)).code, 0);
      assert.equal((await env.cni("ADD", conf, c2)).code, 0);
      const gcConf = {
        ...conf,
        "cni.dev/valid-attachments": [{ containerID: "gc-keep", ifname: "eth0" }],
      };
      const gc = await env.cni("GC", gcConf, { netns: ns1 });
      assert.equal(gc.code, 0, gc.stdout);
      assert.deepEqual(await names(ns2), []);
      assert.deepEqual(await names(ns1), ["eth0", "net1", "net2"]);
      const status = await env.cni("STATUS", conf, { netns: ns1 });
      assert.equal(status.code, 0, status.stdout);
      assert.equal((await env.cni("DEL", conf, c1)).code, 0);
      assert.deepEqual(await reservations(env), []);
      for (const p of [keep, drop] as Pod[]) await env.deletePod(env.ns, p.metadata.name);
    });
  } finally {
    await env.close();
  }
});
