/**
 * The NRI setup: a real containerd whose default CNI makes eth0, `hydra nri
 * serve` attaching the pods' extra network (blue, hydra-bridge) from a
 * NetworkAttachmentDefinition, and `hydra policy sync` reading the NRI
 * plugin's records. A MultiNetworkPolicy then decides real traffic between
 * the sandboxes on net1 while eth0 stays open.
 *
 * Needs root, libnftables and the built peers (containerd, crictl, etcd,
 * kube-apiserver).
 */

import { join } from "node:path";
import { uniqueName } from "../helpers/netns.ts";
import { installCrd } from "../infra/cluster.ts";
import { apiIntoNetns, jsonKubeconfig } from "../meta_kube/api_access.ts";
import { eventually, type KubeEnv, networkStatus, startKubeEnv } from "../meta_kube/harness.ts";
import { extraLinks, type NriWorld, v4, withNriWorld } from "../nri/serve_world.ts";
import type { Pod } from "../../kube/objects.ts";
import { probe, type Servers, startServers } from "./probe.ts";
import { agentKubeconfig, MNP_CRD, spawnAgent } from "./world.ts";

const NETWORKS = "k8s.v1.cni.cncf.io/networks";

interface Sandbox {
  name: string;
  netns: string;
  eth0: string;
  net1: string;
}

async function runPodSandbox(w: NriWorld, env: KubeEnv, p: Pod): Promise<string> {
  const config = join(w.tmp, `${p.metadata.name}.json`);
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      metadata: { name: p.metadata.name, namespace: env.ns, uid: p.metadata.uid },
      annotations: { [NETWORKS]: "blue" },
      log_directory: join(w.tmp, "logs", p.metadata.name),
      linux: { cgroup_parent: w.ctd.cgroupParent },
    }),
  );
  return (await w.ctd.crictl("runp", config)).trim();
}

/** Probes every ordered pair on `dev`; "a>b" for each that got through. */
function reach(boxes: Sandbox[], dev: "eth0" | "net1"): string[] {
  const pairs = boxes.flatMap((f) => boxes.filter((t) => t !== f).map((t) => [f, t]));
  const got = probe(
    pairs.map(([f, t]) => ({ from: f.netns, to: t[dev], proto: "tcp", port: 80 })),
    400,
  );
  return pairs.filter((_, i) => got[i]).map(([f, t]) => `${f.name}>${t.name}`);
}

async function expectReach(boxes: Sandbox[], dev: "eth0" | "net1", want: string[]): Promise<void> {
  const end = Date.now() + 3_000;
  for (;;) {
    const got = reach(boxes, dev);
    if (JSON.stringify(got) === JSON.stringify(want)) return;
    if (Date.now() > end) throw new Error(`${dev}: got ${got.join(" ")}, want ${want.join(" ")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("NRI setup: hydra policy sync enforces on the NRI plugin's attachments", async () => {
  const env = await startKubeEnv();
  try {
    await withNriWorld(async (w) => {
      await installCrd(env.cp.api, MNP_CRD);
      const server = await apiIntoNetns(w.ctd.netnsName, env.cp.server);
      const nriConfig = await jsonKubeconfig(
        env.kubeconfigHost,
        join(w.tmp, "nri.kubeconfig"),
        server,
      );
      await env.nad(env.ns, "blue", await Deno.readTextFile(join(w.confDir, "blue.conflist")));
      // The NADs keep their IPAM state in the test's folder, outside the default NAD roots.
      const hydra = await w.startHydra([
        `--kubeconfig=${nriConfig}`,
        `--nad-path-roots=${JSON.stringify({ state: [w.tmp] })}`,
      ]);
      const servers: Servers[] = [];
      const ids: string[] = [];
      let agent: Awaited<ReturnType<typeof spawnAgent>> | undefined;
      try {
        const boxes: Sandbox[] = [];
        for (const label of ["a", "b", "c"]) {
          const name = uniqueName(`np${label}`);
          const pod = await env.cp.api.must("POST", `/api/v1/namespaces/${env.ns}/pods`, {
            apiVersion: "v1",
            kind: "Pod",
            metadata: {
              name,
              namespace: env.ns,
              labels: { pod: label },
              annotations: { [NETWORKS]: "blue" },
            },
            spec: {
              nodeName: env.nodeName,
              containers: [{ name: "main", image: "localhost/hydra/pause:1.0" }],
            },
          }) as Pod;
          const id = await runPodSandbox(w, env, pod);
          ids.push(id);
          const netns = await w.netnsOf(id);
          const links = await w.addrs(netns);
          const eth0 = v4(links.find((l) => l.ifname === "eth0"))[0].split("/")[0];
          const net1 = v4(extraLinks(links).get("net1"))[0].split("/")[0];
          servers.push(startServers(netns, [{ proto: "tcp", port: 80 }]));
          boxes.push({ name: label, netns, eth0, net1 });
          await eventually(
            `network-status of ${name}`,
            async () =>
              networkStatus(await env.getPod(env.ns, name)).some((e) =>
                e.name === `${env.ns}/blue`
              ),
          );
        }
        const everyone = ["a>b", "a>c", "b>a", "b>c", "c>a", "c>b"];
        await expectReach(boxes, "net1", everyone);
        agent = await spawnAgent(env, {
          kubeconfig: await agentKubeconfig(env, true),
          logPath: join(w.tmp, "policy.log"),
          n: 0,
          inNodeNetns: false,
          nriCacheDir: w.cacheDir,
        });
        const path = `/apis/k8s.cni.cncf.io/v1beta1/namespaces/${env.ns}/multi-networkpolicies`;
        await env.cp.api.must("POST", path, {
          apiVersion: "k8s.cni.cncf.io/v1beta1",
          kind: "MultiNetworkPolicy",
          metadata: { name: "a-from-b", annotations: { "k8s.v1.cni.cncf.io/policy-for": "blue" } },
          spec: {
            podSelector: { matchLabels: { pod: "a" } },
            ingress: [{ from: [{ podSelector: { matchLabels: { pod: "b" } } }] }],
          },
        });
        await expectReach(boxes, "net1", ["a>b", "a>c", "b>a", "b>c", "c>b"]);
        await expectReach(boxes, "eth0", everyone);
        await env.cp.api.must("DELETE", `${path}/a-from-b`);
        await expectReach(boxes, "net1", everyone);
      } finally {
        await agent?.stop();
        for (const s of servers) s.close();
        for (const id of ids) {
          await w.ctd.crictl("stopp", id).catch(() => {});
          await w.ctd.crictl("rmp", id).catch(() => {});
        }
        await hydra.terminate();
      }
    });
  } finally {
    await env.close();
  }
});
