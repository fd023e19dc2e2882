/**
 * hydra-pool as the IPAM of real interface plugins, in real network
 * namespaces, against a real kube-apiserver: the reference `bridge` finds
 * `hydra-pool` in CNI_PATH and execs it, as it would whereabouts; hydra's
 * built-in bridge, exec'd as a runtime execs it, runs hydra-pool in its own
 * process (its CNI_PATH holds no hydra-pool, so it cannot have exec'd one).
 * Each pod's interface carries the address the pool recorded for it, and
 * DEL frees it.
 *
 * Needs the built peers (etcd, kube-apiserver, reference CNI plugins).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { referencePluginDir } from "../infra/peers.ts";
import { createNetns, deleteNetns, type TestNetns, tryRun, uniqueName } from "../helpers/netns.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { addr, startPoolWorld } from "./harness.ts";

interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

interface AddrInfo {
  addr_info: { local: string; prefixlen: number }[];
}

/** Execs `plugin` as a runtime would (in this namespace, where the API server's loopback is). */
async function execPlugin(
  plugin: string,
  env: Record<string, string>,
  conf: unknown,
): Promise<Exec> {
  const child = new Deno.Command(plugin, {
    env,
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(conf)));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The IPv4 addresses on `ifname` in `pod`, as `a.b.c.d/len`. */
async function addressesOf(pod: TestNetns, ifname: string): Promise<string[]> {
  const links = await pod.ipJson<AddrInfo[]>("-4", "addr", "show", "dev", ifname);
  return links.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

Deno.test("hydra-pool under real interface plugins: exec'd by the reference bridge, in-process in hydra's", async (t) => {
  const w = await startPoolWorld();
  const pods: TestNetns[] = [];
  const bridges: string[] = [];
  try {
    const net = w.network("plug");
    const reference = referencePluginDir();
    // hydra-pool reachable only through this folder: the reference bridge's CNI_PATH.
    const poolDir = join(w.dir, "cni-path");
    await Deno.mkdir(poolDir);
    await Deno.symlink(join(REPO_ROOT, "bin", "hydra"), join(poolDir, "hydra-pool"));

    const cases = [
      { name: "reference bridge execs it", plugin: join(reference, "bridge"), path: poolDir },
      {
        name: "hydra's bridge runs it in-process",
        plugin: join(REPO_ROOT, "bin", "hydra-bridge"),
        path: reference,
      },
    ];
    for (const [i, c] of cases.entries()) {
      await t.step(c.name, async () => {
        const pod = await createNetns("hypp");
        pods.push(pod);
        const podObj = await w.createPod(`plug-${i}`, { node: "node-a" });
        const conf = w.conf(
          { range: "10.60.0.0/24", network_name: net, gateway: "10.60.0.1" },
          { name: net, type: c.plugin.endsWith("hydra-bridge") ? "hydra-bridge" : "bridge" },
        );
        // A bridge of its own in this namespace, no gateway role: the host's settings stay as
        // they are (as tests/ipam/bridge_test.ts does).
        const bridge = uniqueName("hyb");
        bridges.push(bridge);
        Object.assign(conf, { bridge, isGateway: false });
        const env = (command: string) => ({
          CNI_COMMAND: command,
          CNI_CONTAINERID: `plug-${i}-sandbox`,
          CNI_NETNS: pod.path,
          CNI_IFNAME: "net1",
          CNI_ARGS:
            `IgnoreUnknown=1;K8S_POD_NAMESPACE=${w.ns};K8S_POD_NAME=plug-${i};K8S_POD_UID=${podObj.metadata.uid}`,
          CNI_PATH: c.path,
          PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
        });

        const add = await execPlugin(c.plugin, env("ADD"), conf);
        assert.equal(add.code, 0, `${add.stdout}\n${add.stderr}`);
        const result = JSON.parse(add.stdout) as { ips: { address: string }[] };
        assert.equal(result.ips.length, 1);
        const got = result.ips[0].address;
        assert.match(got, /^10\.60\.0\.\d+\/24$/);
        assert.notEqual(addr(got), "10.60.0.1", "the gateway is never handed out");

        assert.deepEqual(await addressesOf(pod, "net1"), [got], "on the pod's interface");
        const recorded = (await w.allocations(net)).filter((a) => a.pod === `${w.ns}/plug-${i}`);
        assert.deepEqual(recorded.map((a) => [a.ip, a.podUID]), [
          [addr(got), podObj.metadata.uid],
        ]);

        const del = await execPlugin(c.plugin, env("DEL"), conf);
        assert.equal(del.code, 0, `${del.stdout}\n${del.stderr}`);
        const left = (await w.allocations(net)).filter((a) => a.pod === `${w.ns}/plug-${i}`);
        assert.deepEqual(left, [], "DEL freed it");
      });
    }
  } finally {
    for (const p of pods) await deleteNetns(p);
    for (const b of bridges) await tryRun("ip", "link", "del", b);
    await w.close();
  }
});
