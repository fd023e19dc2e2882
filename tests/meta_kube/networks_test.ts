/**
 * Kubernetes mode's choice of networks against a real kube-apiserver: NADs
 * of another namespace allowed or refused by `namespaceIsolation` and
 * `globalNamespaces`, the cluster network as a NAD in `multusNamespace`,
 * the pod's `v1.multus-cni.io/default-network` override, `defaultNetworks`
 * (not for system namespaces), the `delegates` conf `hydra install` writes
 * (its first delegate is the default network), and the readiness indicator
 * file.
 *
 * Needs root and the built peers (etcd, kube-apiserver, reference plugins).
 */

import assert from "node:assert/strict";
import { addresses, links } from "../meta/harness.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { eventually, type KubeEnv, networkStatus, startKubeEnv } from "./harness.ts";
import type { KubeEvent, Pod } from "../../kube/objects.ts";

async function ifaces(netns: TestNetns): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, link] of await links(netns)) {
    if (name !== "lo") out[name] = addresses(link)[0]?.split(".").slice(0, 3).join(".") ?? "";
  }
  return out;
}

async function attach(
  env: KubeEnv,
  conf: Record<string, unknown>,
  pod: Pod,
): Promise<{ netns: TestNetns; code: number; msg?: string; ifaces: Record<string, string> }> {
  const netns = await env.podNetns();
  const out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
  return {
    netns,
    code: out.code,
    msg: out.json?.msg as string | undefined,
    ifaces: await ifaces(netns),
  };
}

async function detach(env: KubeEnv, conf: Record<string, unknown>, pod: Pod, netns: TestNetns) {
  const out = await env.cni("DEL", conf, { netns, pod: pod.metadata });
  assert.equal(out.code, 0, out.stdout);
  assert.deepEqual(await ifaces(netns), {});
}

Deno.test("Kubernetes mode: namespaces, default network, override, defaultNetworks, delegates", async (t) => {
  const env = await startKubeEnv();
  try {
    const cluster = env.bridgeNet("cluster", { isGateway: true });
    await env.nad("kube-system", "cluster", cluster.conf);
    const alt = env.bridgeNet("alt");
    await env.nad("kube-system", "alt", alt.conf);
    const extra = env.bridgeNet("extra");
    await Deno.writeTextFile(
      `${env.confDir}/20-extra.conflist`,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "extra",
        plugins: [extra.conf],
      }),
    );
    const own = env.bridgeNet("own");
    await env.nad(env.ns, "own", own.conf);
    const foreign = env.bridgeNet("foreign");
    await env.nad(env.other, "foreign", foreign.conf);
    const shared = env.bridgeNet("shared");
    await env.nad("default", "shared", shared.conf);
    const base = env.metaConf({ clusterNetwork: "cluster" });

    await t.step("the cluster network is a NAD in multusNamespace", async () => {
      const pod = await env.createPod("plain");
      const r = await attach(env, base, pod);
      assert.equal(r.code, 0, r.msg);
      assert.deepEqual(r.ifaces, { eth0: cluster.subnet });
      await eventually("network-status", async () => {
        const s = networkStatus(await env.getPod(env.ns, "plain"));
        return s.length === 1 && s[0].name === "kube-system/cluster";
      });
      await detach(env, base, pod, r.netns);
    });

    await t.step("without isolation a pod may use another namespace's NAD", async () => {
      const pod = await env.createPod("open", {
        "k8s.v1.cni.cncf.io/networks": `own,${env.other}/foreign`,
      });
      const r = await attach(env, base, pod);
      assert.equal(r.code, 0, r.msg);
      assert.deepEqual(r.ifaces, { eth0: cluster.subnet, net1: own.subnet, net2: foreign.subnet });
      await detach(env, base, pod, r.netns);
    });

    await t.step("with isolation another namespace's NAD is refused, with an Event", async () => {
      const conf = { ...base, namespaceIsolation: true };
      const pod = await env.createPod("isolated", {
        "k8s.v1.cni.cncf.io/networks": `own,${env.other}/foreign`,
      });
      const r = await attach(env, conf, pod);
      assert.equal(r.code, 1);
      assert.match(r.msg!, /namespace isolation/);
      assert.match(r.msg!, new RegExp(`${env.other}/foreign`));
      assert.deepEqual(r.ifaces, {}, "nothing may be attached");
      await eventually("a NetworkNotAllowed Event", async () => {
        const list = await env.cp.api.must("GET", `/api/v1/namespaces/${env.ns}/events`) as {
          items: KubeEvent[];
        };
        return list.items.some((e) =>
          e.involvedObject.name === "isolated" && e.type === "Warning" &&
          e.message.includes("foreign")
        );
      });
      // Its own namespace and the global ones ("default" unless set) stay allowed.
      const ok = await env.createPod("isolated-ok", {
        "k8s.v1.cni.cncf.io/networks": "own,default/shared",
      });
      const r2 = await attach(env, conf, ok);
      assert.equal(r2.code, 0, r2.msg);
      assert.deepEqual(r2.ifaces, { eth0: cluster.subnet, net1: own.subnet, net2: shared.subnet });
      await detach(env, conf, ok, r2.netns);
      // globalNamespaces opens other namespaces.
      const global = { ...conf, globalNamespaces: `default,${env.other}` };
      const r3 = await attach(env, global, pod);
      assert.equal(r3.code, 0, r3.msg);
      assert.deepEqual(r3.ifaces, { eth0: cluster.subnet, net1: own.subnet, net2: foreign.subnet });
      await detach(env, global, pod, r3.netns);
    });

    await t.step("the pod's default-network annotation replaces the cluster network", async () => {
      const pod = await env.createPod("override", {
        "v1.multus-cni.io/default-network": "alt",
        "k8s.v1.cni.cncf.io/networks": "own",
      });
      const r = await attach(env, base, pod);
      assert.equal(r.code, 0, r.msg);
      assert.deepEqual(r.ifaces, { eth0: alt.subnet, net1: own.subnet });
      await eventually("network-status naming the override as default", async () => {
        const s = networkStatus(await env.getPod(env.ns, "override"));
        return s.length === 2 && s[0].name === "kube-system/alt" && s[0].default === true;
      });
      await detach(env, base, pod, r.netns);
    });

    await t.step("defaultNetworks go to every pod but those of system namespaces", async () => {
      const conf = { ...base, defaultNetworks: ["extra"] };
      const pod = await env.createPod("withextra", { "k8s.v1.cni.cncf.io/networks": "own" });
      const r = await attach(env, conf, pod);
      assert.equal(r.code, 0, r.msg);
      assert.deepEqual(r.ifaces, { eth0: cluster.subnet, net1: extra.subnet, net2: own.subnet });
      await detach(env, conf, pod, r.netns);
      const sys = await env.createPod("sys", {}, { namespace: "kube-system" });
      const r2 = await attach(env, conf, sys);
      assert.equal(r2.code, 0, r2.msg);
      assert.deepEqual(r2.ifaces, { eth0: cluster.subnet });
      await detach(env, conf, sys, r2.netns);
    });

    await t.step(
      "the conf hydra install writes: the first delegate is the default network",
      async () => {
        const { clusterNetwork: _c, ...rest } = base;
        const conf = { ...rest, delegates: [alt.conf] };
        const pod = await env.createPod("installed", { "k8s.v1.cni.cncf.io/networks": "own" });
        const r = await attach(env, conf, pod);
        assert.equal(r.code, 0, r.msg);
        assert.deepEqual(r.ifaces, { eth0: alt.subnet, net1: own.subnet });
        await eventually("network-status", async () => {
          const s = networkStatus(await env.getPod(env.ns, "installed"));
          return s.length === 2 && s[0].name === "alt" && s[1].name === `${env.ns}/own`;
        });
        await detach(env, conf, pod, r.netns);
        // Without the pod named in CNI_ARGS it is conf-file mode: the delegates only.
        const netns = await env.podNetns();
        const out = await env.cni("ADD", conf, { netns });
        assert.equal(out.code, 0, out.stdout);
        assert.deepEqual(await ifaces(netns), { eth0: alt.subnet });
        assert.equal((await env.cni("DEL", conf, { netns })).code, 0);
      },
    );

    await t.step("ADD waits for the readiness indicator file", async () => {
      const indicator = `${env.dir}/ready`;
      const conf = { ...base, readinessindicatorfile: indicator };
      const pod = await env.createPod("waits");
      const netns = await env.podNetns();
      let created = false;
      const later = (async () => {
        await new Promise((r) => setTimeout(r, 1_500));
        created = true;
        await Deno.writeTextFile(indicator, "");
      })();
      const out = await env.cni("ADD", conf, { netns, pod: pod.metadata });
      const finishedAfterIndicator = created;
      await later;
      assert.equal(out.code, 0, out.stdout);
      assert.ok(finishedAfterIndicator, "ADD finished before the indicator existed");
      assert.deepEqual(await ifaces(netns), { eth0: cluster.subnet });
      await detach(env, conf, pod, netns);
    });
  } finally {
    await env.close();
  }
});
