/**
 * Switching a node from Multus thin to hydra with pods running, against a
 * real kube-apiserver and the built Multus thin plugin:
 *
 * 1. the node's conf folder holds the default network's conf and the
 *    `00-multus.conf[list]` Multus' own entrypoint writes for it (rendered
 *    from its template in the module cache), and its kubeconfig under
 *    `multus.d/`;
 * 2. Multus attaches a pod (default network and a NAD from the pod's
 *    annotation);
 * 3. `hydra install` takes the node over: it unwraps Multus' conf (never
 *    wraps it) and writes hydra's, which the runtime now uses;
 * 4. hydra DELs the pod Multus attached (with the pod still there, and with
 *    the pod already deleted from the API) from Multus' cache: every
 *    interface, address reservation, host veth and cache entry is gone;
 * 5. a new pod gets the same networks from hydra.
 *
 * Needs root and the built peers (etcd, kube-apiserver, reference plugins,
 * multus) and Multus' module in the Go module cache.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { peerBin } from "../infra/peers.ts";
import { thinConf } from "../infra/multus_module.ts";
import { runInstall } from "../install/helpers.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { type KubeEnv, startKubeEnv } from "./harness.ts";
import { nodeAgentKubeconfig } from "../kube/helpers.ts";
import { jsonKubeconfig, NODE_API_ADDRESS } from "./api_access.ts";

/** Multus' default cniDir: the thin conf names none, so Multus (and hydra after it) use this. */
const MULTUS_CNI_DIR = "/var/lib/cni/multus";

interface Switch {
  env: KubeEnv;
  /** The node's CNI conf folder. */
  confDir: string;
  binDir: string;
  /** Multus' conf as its entrypoint wrote it. */
  multusConf: Record<string, unknown>;
  /** The runtime's view of hydra's conf once installed (the conflist's plugin, list keys merged). */
  hydraConf?: Record<string, unknown>;
  /** Host-local reservations of the default network and of blue. */
  ipamDir: string;
}

/** The node's account as files the installer reads (token, CA) and its server. */
async function accountFiles(env: KubeEnv): Promise<string[]> {
  const kc = JSON.parse(await Deno.readTextFile(env.kubeconfigNode));
  const cluster = kc.clusters[0].cluster;
  const token = join(env.dir, "sa-token");
  const ca = join(env.dir, "sa-ca.crt");
  await Deno.writeTextFile(token, kc.users[0].user.token);
  const caPem = cluster["certificate-authority-data"]
    ? atob(cluster["certificate-authority-data"])
    : await Deno.readTextFile(cluster["certificate-authority"]);
  await Deno.writeTextFile(ca, caPem);
  return [`--token-file=${token}`, `--ca-file=${ca}`, `--server=${cluster.server}`];
}

async function setUp(env: KubeEnv): Promise<Switch> {
  const confDir = join(env.dir, "node-net.d");
  const binDir = join(env.dir, "node-bin");
  await Deno.mkdir(join(confDir, "multus.d"), { recursive: true });
  await Deno.mkdir(binDir);
  // The default network, as a cluster's CNI DaemonSet writes it.
  const cluster = env.bridgeNet("cluster", { isGateway: true });
  const master = {
    cniVersion: "1.0.0",
    name: "cluster",
    plugins: [cluster.conf, { type: "portmap", capabilities: { portMappings: true } }].map(
      ({ cniVersion: _v, name: _n, ...p }) => p,
    ),
  };
  await Deno.writeTextFile(join(confDir, "10-cluster.conflist"), JSON.stringify(master, null, 2));
  // Multus's kubeconfig, as its DaemonSet writes it, for an account with the rights Multus asks
  // for (it writes network-status with an update of pods/status); hydra's node identity has only
  // what hydra uses.
  const kubeconfigHost = await jsonKubeconfig(
    await nodeAgentKubeconfig(env.cp, env.ns),
    join(confDir, "multus.d", "multus.kubeconfig"),
    `https://${NODE_API_ADDRESS}:${new URL(env.cp.server).port}`,
  );
  const thin = await thinConf(master, { kubeconfigHost });
  await Deno.writeTextFile(join(confDir, thin.name), thin.text);
  // A typo Multus never mentions: hydra warns about it (and attaches as Multus does).
  const blue = env.bridgeNet("blue", { hairpinMod: true });
  await env.nad(env.ns, "blue", blue.conf);
  const list = JSON.parse(thin.text);
  const multusConf = Array.isArray(list.plugins)
    ? { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] }
    : list;
  return { env, confDir, binDir, multusConf, ipamDir: join(env.dir, "ipam") };
}

/** Every host-local reservation file naming `containerId`. */
async function reservationsOf(ipamDir: string, containerId: string): Promise<string[]> {
  const found: string[] = [];
  let nets: Deno.DirEntry[] = [];
  try {
    nets = await Array.fromAsync(Deno.readDir(ipamDir));
  } catch {
    return found;
  }
  for (const net of nets) {
    if (!net.isDirectory) continue;
    for await (const f of Deno.readDir(join(ipamDir, net.name))) {
      const text = await Deno.readTextFile(join(ipamDir, net.name, f.name)).catch(() => "");
      if (text.includes(containerId)) found.push(`${net.name}/${f.name}`);
    }
  }
  return found;
}

/** Multus' cache entries (delegates and results) of `containerId`. */
async function multusCacheOf(containerId: string): Promise<string[]> {
  const found: string[] = [];
  for (const dir of [MULTUS_CNI_DIR, join(MULTUS_CNI_DIR, "results")]) {
    try {
      for await (const e of Deno.readDir(dir)) if (e.name.includes(containerId)) found.push(e.name);
    } catch {
      // not there
    }
  }
  return found;
}

async function links(netns: TestNetns): Promise<string[]> {
  const list = await netns.ipJson<{ ifname: string }[]>("link", "show");
  return list.map((l) => l.ifname).filter((n) => n !== "lo").sort();
}

async function nodeVeths(env: KubeEnv): Promise<string[]> {
  const list = await env.node.ipJson<{ ifname: string }[]>("link", "show", "type", "veth");
  return list.map((l) => l.ifname).sort();
}

/** A pod attached by Multus thin, as the runtime would have made it before the switch. */
async function multusPod(s: Switch, name: string) {
  const pod = await s.env.createPod(name, { "k8s.v1.cni.cncf.io/networks": "blue" });
  const netns = await s.env.podNetns();
  const containerId = `mig-${netns.name}`;
  const meta = pod.metadata;
  const add = await s.env.cni("ADD", s.multusConf, {
    netns,
    containerId,
    pod: { namespace: meta.namespace!, name: meta.name!, uid: meta.uid },
    program: peerBin("multus"),
  });
  assert.equal(add.code, 0, add.stdout + add.stderr);
  assert.deepEqual(await links(netns), ["eth0", "net1"], "Multus attached both networks");
  assert.ok((await multusCacheOf(containerId)).length > 0, "Multus cached its delegates");
  return { pod, netns, containerId };
}

async function installHydra(s: Switch): Promise<Record<string, unknown>> {
  const out = await runInstall([
    "--once",
    `--bin-dir=${s.binDir}`,
    `--conf-dir=${s.confDir}`,
    // The NADs keep their IPAM state in the test's folder, outside the default roots a NAD's
    // paths are confined to (docs/migrating-from-multus.md says when a cluster needs this).
    `--meta-json=${
      JSON.stringify({
        cacheDir: s.env.cacheDir,
        daemonSocket: "",
        nadPathRoots: { state: [s.env.dir] },
      })
    }`,
    ...await accountFiles(s.env),
  ]);
  assert.equal(out.code, 0, out.stderr);
  const list = JSON.parse(await Deno.readTextFile(join(s.confDir, "00-hydra.conflist")));
  assert.ok(
    out.logs.some((l) => String(l.msg).startsWith("unwrapped ")),
    "the installer says it unwrapped Multus",
  );
  return { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
}

Deno.test("from Multus thin to hydra: installed hydra unwraps Multus, DELs its pods from its cache, attaches new ones", async (t) => {
  const multus = peerBin("multus"); // throws (fails the test) when it was not built
  assert.ok(multus);
  const env = await startKubeEnv();
  const made: string[] = [];
  try {
    const s = await setUp(env);
    const vethsBefore = await nodeVeths(env);
    const first = await multusPod(s, "before-a");
    const second = await multusPod(s, "before-b");
    made.push(first.containerId, second.containerId);

    await t.step(
      "the installer unwraps Multus' conf: its default network, never Multus itself",
      async () => {
        s.hydraConf = await installHydra(s);
        const delegates = s.hydraConf.delegates as Record<string, unknown>[];
        assert.equal(delegates.length, 1);
        assert.equal(delegates[0].name, "cluster");
        assert.ok(!JSON.stringify(s.hydraConf).includes("multus-cni-network"), "Multus wrapped");
        assert.equal(s.hydraConf.cniDir, MULTUS_CNI_DIR, "Multus' cache is named for DEL");
        assert.deepEqual(s.hydraConf.capabilities, { portMappings: true });
      },
    );

    await t.step("hydra DELs a pod Multus attached: nothing left", async () => {
      const del = await env.cni("DEL", s.hydraConf!, {
        netns: first.netns,
        containerId: first.containerId,
        pod: { namespace: env.ns, name: "before-a", uid: first.pod.metadata.uid },
      });
      assert.equal(del.code, 0, del.stdout + del.stderr);
      assert.deepEqual(await links(first.netns), []);
      assert.deepEqual(await reservationsOf(s.ipamDir, first.containerId), []);
      assert.deepEqual(await multusCacheOf(first.containerId), []);
    });

    await t.step("…also when the pod is already gone from the API", async () => {
      await env.deletePod(env.ns, "before-b");
      const del = await env.cni("DEL", s.hydraConf!, {
        netns: second.netns,
        containerId: second.containerId,
        pod: { namespace: env.ns, name: "before-b", uid: second.pod.metadata.uid },
      });
      assert.equal(del.code, 0, del.stdout + del.stderr);
      assert.deepEqual(await links(second.netns), []);
      assert.deepEqual(await reservationsOf(s.ipamDir, second.containerId), []);
      assert.deepEqual(await multusCacheOf(second.containerId), []);
      assert.deepEqual(await nodeVeths(env), vethsBefore, "host-side veths left");
    });

    await t.step("a new pod gets the same networks from hydra", async () => {
      const pod = await env.createPod("after", { "k8s.v1.cni.cncf.io/networks": "blue" });
      const netns = await env.podNetns();
      const call = {
        netns,
        containerId: `mig-${netns.name}`,
        pod: { namespace: env.ns, name: "after", uid: pod.metadata.uid },
      };
      made.push(call.containerId);
      const add = await env.cni("ADD", s.hydraConf!, call);
      assert.equal(add.code, 0, add.stdout + add.stderr);
      assert.deepEqual(await links(netns), ["eth0", "net1"]);
      assert.match(add.stderr, /"level":"warn".*blue\.plugins\[0\]\.hairpinMod.*"hairpinMode/);
      const del = await env.cni("DEL", s.hydraConf!, call);
      assert.equal(del.code, 0, del.stdout + del.stderr);
      assert.deepEqual(await links(netns), []);
      assert.deepEqual(await nodeVeths(env), vethsBefore);
    });
  } finally {
    for (const id of made) {
      for (const f of await multusCacheOf(id)) {
        await Deno.remove(join(MULTUS_CNI_DIR, f)).catch(() =>
          Deno.remove(join(MULTUS_CNI_DIR, "results", f)).catch(() => {})
        );
      }
    }
    await env.close();
  }
});
