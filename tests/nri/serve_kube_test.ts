/**
 * `hydra nri serve --kubeconfig` against a real API server and a real
 * containerd: a Pod object selects two NetworkAttachmentDefinitions; the
 * sandbox `crictl runp` makes for it (same namespace, name and UID) gets
 * net1 and net2 beside eth0 from the runtime's default CNI; the pod's
 * network-status holds hydra's entries beside the one the default CNI
 * wrote, and `hydra.clusternet.io.<network>` holds each CNI result, both
 * matching the kernel; `crictl stopp`/`rmp` release the networks and free
 * the addresses.
 *
 * Needs root, the built peers (tests/infra/build-peers.sh) and the control
 * plane binaries.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { uniqueName } from "../helpers/netns.ts";
import { apiIntoNetns, jsonKubeconfig } from "../meta_kube/api_access.ts";
import { nriIdentityKubeconfig } from "../kube/manifest_rbac.ts";
import { eventually, type KubeEnv, networkStatus, startKubeEnv } from "../meta_kube/harness.ts";
import { extraLinks, type NriWorld, v4, withNriWorld } from "./serve_world.ts";
import { resultAnnotationKey } from "../../kube/status.ts";
import type { Pod } from "../../kube/objects.ts";

const NETWORKS = "k8s.v1.cni.cncf.io/networks";
const NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";

interface StatusEntry {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  default?: boolean;
}

interface CniResult {
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string }[];
}

/** `crictl runp` of a sandbox standing for the Pod object `p` (same namespace, name, UID). */
async function runPodSandbox(
  w: NriWorld,
  env: KubeEnv,
  p: Pod,
  annotations: Record<string, string>,
): Promise<string> {
  const config = join(w.tmp, `${p.metadata.name}.json`);
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      metadata: { name: p.metadata.name, namespace: env.ns, uid: p.metadata.uid },
      annotations,
      log_directory: join(w.tmp, "logs", p.metadata.name),
      linux: { cgroup_parent: w.ctd.cgroupParent },
    }),
  );
  return (await w.ctd.crictl("runp", config)).trim();
}

/** A kubeconfig of the NRI plugin's account (deploy/'s hydra-nri) inside containerd's namespace. */
async function nriKubeconfig(w: NriWorld, env: KubeEnv): Promise<string> {
  const server = await apiIntoNetns(w.ctd.netnsName, env.cp.server);
  const account = await nriIdentityKubeconfig(env.cp, env.nodeName);
  return await jsonKubeconfig(account, join(w.tmp, "nri.kubeconfig"), server);
}

async function withKubeEnv(body: (env: KubeEnv) => Promise<void>): Promise<void> {
  const env = await startKubeEnv();
  try {
    await body(env);
  } finally {
    await env.close();
  }
}

Deno.test({
  name: "nri serve --kubeconfig: NAD networks as net1/net2, network-status merged, freed on rmp",
  async fn() {
    await withKubeEnv((env) =>
      withNriWorld(async (w) => {
        const kubeconfig = await nriKubeconfig(w, env);
        // The world's blue and red networks, as NADs of the pod's namespace.
        await env.nad(env.ns, "blue", await Deno.readTextFile(join(w.confDir, "blue.conflist")));
        await env.nad(env.ns, "red", await Deno.readTextFile(join(w.confDir, "red.conf")));
        const defaultEntry: StatusEntry = {
          name: "default-cni",
          interface: "eth0",
          ips: ["10.9.9.9"],
          default: true,
        };
        const name = uniqueName("kpod");
        const pod = await env.createPod(name, {
          [NETWORKS]: "blue,red",
          [NETWORK_STATUS]: JSON.stringify([defaultEntry]),
        });
        const plainName = uniqueName("kplain");
        const plainPod = await env.createPod(plainName);

        const hydra = await w.startHydra([
          `--kubeconfig=${kubeconfig}`,
          // The node the pods are bound to: its pods are watched.
          `--node-name=${env.nodeName}`,
          // The world's NADs keep their address allocations in its folder.
          `--nad-path-roots=${JSON.stringify({ state: [w.tmp] })}`,
        ]);
        const metrics = async () => (await hydra.get("/metrics")).body;
        await eventually("the watch caches to list", async () =>
          /hydra_nri_watch_synced 1/.test(await metrics()));
        const runp = (p: Pod, annotations: Record<string, string>) =>
          runPodSandbox(w, env, p, annotations);
        const plain = await runp(plainPod, {});
        const id = await runp(pod, { [NETWORKS]: "blue,red" });
        const netns = await w.netnsOf(id);

        const links = await w.addrs(netns);
        assert.ok(
          v4(links.find((l) =>
            l.ifname === "eth0"
          ))[0]?.startsWith(w.defaultNet),
          "eth0 comes from the default CNI",
        );
        const extra = extraLinks(links);
        assert.deepEqual([...extra.keys()].sort(), ["net1", "net2"]);
        const [blueAddr] = v4(extra.get("net1"));
        const [redAddr] = v4(extra.get("net2"));
        assert.ok(blueAddr?.startsWith(w.blueNet), `net1 ${blueAddr} is on blue`);
        assert.ok(redAddr?.startsWith(w.redNet), `net2 ${redAddr} is on red`);
        assert.deepEqual(
          extraLinks(await w.addrs(await w.netnsOf(plain))).size,
          0,
          "a pod that selects nothing gets nothing",
        );

        // The pod object: network-status merged, results annotated, all as in the kernel.
        let stored: Pod | undefined;
        await eventually("the pod's network-status to name net1 and net2", async () => {
          stored = await env.getPod(env.ns, name);
          return networkStatus(stored).length === 3;
        });
        const status = networkStatus(stored) as unknown as StatusEntry[];
        assert.deepEqual(status.find((e) => e.name === "default-cni"), defaultEntry);
        for (const [net, ifName] of [["blue", "net1"], ["red", "net2"]]) {
          const link = extra.get(ifName)!;
          const entry = status.find((e) => e.name === `${env.ns}/${net}`);
          assert.equal(entry?.interface, ifName, `${net}: interface`);
          assert.equal(entry?.mac, link.address, `${net}: MAC`);
          assert.ok(!entry?.default, `${net} is not the default network`);
          assert.deepEqual(entry?.ips, v4(link).map((a) => a.split("/")[0]), `${net}: ips`);
          const text = stored!.metadata.annotations?.[resultAnnotationKey(`${env.ns}/${net}`)];
          assert.ok(text, `${net}: result annotation`);
          const result: CniResult = JSON.parse(text);
          const podIf = result.interfaces?.find((i) => i.name === ifName && i.sandbox);
          assert.equal(podIf?.mac, link.address, `${net}: result MAC`);
          assert.deepEqual(result.ips?.map((ip) => ip.address), v4(link), `${net}: result ips`);
        }
        assert.deepEqual(w.reserved("blue"), [blueAddr.split("/")[0]]);
        assert.deepEqual(w.reserved("red"), [redAddr.split("/")[0]]);
        // The attach asked the API server nothing: the pod and both NADs came from the watch
        // caches, and the status was written from the queue.
        const scraped = await metrics();
        assert.match(scraped, /hydra_nri_api_reads_total\{source="cache"\} 3\b/);
        assert.doesNotMatch(scraped, /hydra_nri_api_reads_total\{source="api"\}/);
        await eventually("the status write to be counted", async () =>
          /hydra_nri_reports_total\{outcome="written"\} 1\b/.test(await metrics()));

        await w.ctd.crictl("stopp", id);
        await w.ctd.crictl("rmp", id);
        await w.ctd.crictl("stopp", plain);
        await w.ctd.crictl("rmp", plain);
        assert.deepEqual(w.reserved("blue"), [], "blue's address is free");
        assert.deepEqual(w.reserved("red"), [], "red's address is free");
        assert.equal(await hydra.terminate(), 0);
      })
    );
  },
});

Deno.test({
  name:
    "nri serve --kubeconfig --on-failure log: a missing NAD gives a Warning Event, the pod runs",
  async fn() {
    await withKubeEnv((env) =>
      withNriWorld(async (w) => {
        const kubeconfig = await nriKubeconfig(w, env);
        const name = uniqueName("kmiss");
        const pod = await env.createPod(name, { [NETWORKS]: "absent" });
        // No --node-name: the host's name, which names no Node of this cluster.
        const hydra = await w.startHydra([`--kubeconfig=${kubeconfig}`, "--on-failure=log"]);
        await eventually("a warning that the node name names no Node", () =>
          Promise.resolve(
            hydra.logLines().some((l) =>
              l.level === "warn" && /no Node of this name/.test(String(l.msg))
            ),
          ));
        const id = await runPodSandbox(w, env, pod, { [NETWORKS]: "absent" });
        assert.equal(extraLinks(await w.addrs(await w.netnsOf(id))).size, 0);
        await eventually("a NetworkAttachFailed Event on the pod", async () => {
          const list = await env.cp.api.must(
            "GET",
            `/api/v1/namespaces/${env.ns}/events`,
          ) as {
            items: {
              reason: string;
              type: string;
              message: string;
              involvedObject: { name: string };
            }[];
          };
          return list.items.some((e) =>
            e.involvedObject.name === name && e.reason === "NetworkAttachFailed" &&
            e.type === "Warning" && e.message.includes("absent")
          );
        });
        // Its pod was read from the API server, at once rather than after waiting for a watch
        // that can never deliver it.
        assert.match(
          (await hydra.get("/metrics")).body,
          /hydra_nri_api_reads_total\{source="api"\} 1\b/,
        );
        await w.ctd.crictl("stopp", id);
        await w.ctd.crictl("rmp", id);
        assert.equal(await hydra.terminate(), 0);
      })
    );
  },
});
