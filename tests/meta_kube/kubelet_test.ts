/**
 * The whole path, with a real kubelet and containerd: hydra is the CNI
 * conf containerd loads (Kubernetes mode, cluster network from a conf
 * file); a Pod object with the networks annotation becomes a running
 * sandbox whose namespace has the extra interfaces, and whose
 * network-status matches them. Once with the meta-CNI asking the API
 * server itself, once through `hydra daemon`. Deleting the Pod tears the
 * networks down and releases every address.
 *
 * Needs root and the built peers including kubelet and containerd.
 */

import assert from "node:assert/strict";
import { startControlPlane } from "../infra/cluster.ts";
import { startContainerd } from "../infra/containerd.ts";
import { startKubelet } from "../infra/kubelet.ts";
import { referencePluginDir } from "../infra/peers.ts";
import { createPausePod, deletePodAndWait } from "../infra/pods.ts";
import { poll, spawnDaemon, waitUntil } from "../infra/process.ts";
import { run, uniqueName } from "../helpers/netns.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { daemonIdentityKubeconfig, nodeIdentityKubeconfig } from "../kube/manifest_rbac.ts";
import { jsonKubeconfig } from "./api_access.ts";
import { HYDRA, networkStatus } from "./harness.ts";
import { connectNodeDaemon } from "../../daemonclient/client.ts";
import type { Pod } from "../../kube/objects.ts";

interface IpLink {
  ifname: string;
  address: string;
  addr_info: { family: string; local: string }[];
}

/** The sandbox's network namespace path, from containerd. */
async function sandboxNetns(crictl: (...a: string[]) => Promise<string>, ns: string, name: string) {
  const pods = JSON.parse(await crictl("pods", "--namespace", ns, "--name", name, "-o", "json"));
  const id = pods.items[0].id;
  const info = JSON.parse(await crictl("inspectp", id));
  const spec = info.info.runtimeSpec.linux.namespaces as { type: string; path?: string }[];
  return spec.find((n) => n.type === "network")!.path!;
}

async function reservations(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const net of Deno.readDir(dir)) {
      if (!net.isDirectory) continue;
      for await (const f of Deno.readDir(`${dir}/${net.name}`)) {
        if (f.name !== "lock" && !f.name.startsWith("last_reserved_ip")) out.push(f.name);
      }
    }
  } catch {
    // no store yet
  }
  return out;
}

Deno.test("a Pod with the networks annotation becomes a sandbox with its extra interfaces", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "hydra-mk-kubelet-" });
  const cp = await startControlPlane();
  try {
    const confDir = `${dir}/net.d`;
    await Deno.mkdir(confDir);
    const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 200);
    const ipamDir = `${dir}/ipam`;
    const bridgeConf = (name: string, third: number, extra = {}) => ({
      cniVersion: "1.0.0",
      name,
      type: "bridge",
      bridge: uniqueName("hkk"),
      ipam: {
        type: "host-local",
        ranges: [[{ subnet: `10.${third}.${octet}.0/24` }]],
        dataDir: ipamDir,
      },
      ...extra,
    });
    // The cluster network lives outside containerd's conf dir; hydra names it by path.
    const clusterPath = `${dir}/cluster.conflist`;
    await Deno.writeTextFile(
      clusterPath,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "cluster",
        plugins: [bridgeConf("cluster", 248, { isGateway: true, isDefaultGateway: true })],
      }),
    );
    const ns = uniqueName("mk");
    await cp.createNamespace(ns);
    for (const [name, third] of [["blue", 247], ["green", 246]] as const) {
      await cp.api.must(
        "POST",
        `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
        {
          apiVersion: "k8s.cni.cncf.io/v1",
          kind: "NetworkAttachmentDefinition",
          metadata: { name, namespace: ns },
          spec: { config: JSON.stringify(bridgeConf(`${name}-net`, third)) },
        },
      );
    }
    // The node kubeconfig (hydra-node, bound to the kubelet's Node as the installer mints it);
    // written once the kubelet has registered its Node, before any pod runs.
    const kubeconfig = `${dir}/node.kubeconfig`;
    const writeConf = async (extra: Record<string, unknown>) => {
      await Deno.writeTextFile(
        `${confDir}/.00-hydra.tmp`,
        JSON.stringify({
          cniVersion: "1.0.0",
          name: "hydra",
          plugins: [{
            type: "hydra",
            kubeconfig,
            clusterNetwork: clusterPath,
            cacheDir: `${dir}/cache`,
            daemonSocket: "",
            logFile: `${dir}/hydra.log`,
            logLevel: "debug",
            // The NADs keep their address allocations in this test's folder.
            nadPathRoots: { state: [dir] },
            ...extra,
          }],
        }),
      );
      await Deno.rename(`${confDir}/.00-hydra.tmp`, `${confDir}/00-hydra.conflist`);
    };
    await writeConf({});

    const ctd = await startContainerd({
      cniConfDir: confDir,
      cniBinDirs: [`${REPO_ROOT}/bin`, referencePluginDir()],
    });
    try {
      const kubelet = await startKubelet(cp, ctd);
      try {
        await jsonKubeconfig(await nodeIdentityKubeconfig(cp, kubelet.nodeName), kubeconfig);
        // The daemon's own identity, bound to a pod on the node as the kubelet binds it.
        const daemonKubeconfig = await jsonKubeconfig(
          await daemonIdentityKubeconfig(cp, kubelet.nodeName),
          `${dir}/daemon.kubeconfig`,
        );
        const daemonSocket = `${dir}/daemon.sock`;
        const runPod = async (name: string) => {
          const podPath = await createPausePod(cp, kubelet, ns, name, {
            "k8s.v1.cni.cncf.io/networks": "blue,green@data0",
          });
          let pod: Pod | undefined;
          const ready = await poll(
            async () => {
              pod = await cp.api.must("GET", podPath) as Pod;
              return pod.status?.phase === "Running" && networkStatus(pod).length === 3;
            },
            90_000,
            250,
          );
          assert.ok(
            ready,
            `pod ${name}: ${JSON.stringify(pod?.status)} ${
              pod?.metadata.annotations?.["k8s.v1.cni.cncf.io/network-status"]
            }`,
          );
          const status = networkStatus(pod) as {
            name: string;
            interface: string;
            ips: string[];
            mac: string;
          }[];
          assert.deepEqual(status.map((s) => [s.name, s.interface]), [
            ["cluster", "eth0"],
            [`${ns}/blue`, "net1"],
            [`${ns}/green`, "data0"],
          ]);
          assert.equal(pod!.status?.podIP, status[0].ips[0]);
          const netns = await sandboxNetns(ctd.crictl, ns, name);
          const kernel = JSON.parse(
            await run("nsenter", `--net=${netns}`, "ip", "-j", "addr", "show"),
          ) as IpLink[];
          for (const s of status) {
            const link = kernel.find((l) => l.ifname === s.interface);
            assert.ok(link, `no ${s.interface} in the sandbox`);
            assert.equal(link.address, s.mac);
            assert.deepEqual(
              link.addr_info.filter((a) => a.family === "inet").map((a) => a.local),
              s.ips,
            );
          }
          const gone = await deletePodAndWait(cp, podPath, 90_000);
          assert.ok(gone, `pod ${name} not removed`);
          const released = await poll(
            async () => (await reservations(ipamDir)).length === 0,
            60_000,
            250,
          );
          assert.ok(released, `addresses still reserved: ${await reservations(ipamDir)}`);
        };

        await t.step("the meta-CNI asking the API server itself", async () => {
          await runPod("direct");
        });

        await t.step("through hydra daemon", async () => {
          const daemon = spawnDaemon("hydra daemon", HYDRA, {
            args: [
              "daemon",
              "--kubeconfig",
              daemonKubeconfig,
              "--node-name",
              kubelet.nodeName,
              "--socket",
              daemonSocket,
              "--health-addr",
              "",
              "--spool-dir",
              `${dir}/cache/reports`,
            ],
            logPath: `${dir}/daemon.log`,
          });
          try {
            await waitUntil(
              "the daemon's socket",
              async () => {
                const conn = await connectNodeDaemon(daemonSocket).catch(() => undefined);
                conn?.close();
                return conn !== undefined;
              },
              30_000,
              daemon,
            );
            await writeConf({ daemonSocket });
            await runPod("viadaemon");
            assert.match(await Deno.readTextFile(`${dir}/daemon.log`), /watch caches synced/);
            const hydraLog = await Deno.readTextFile(`${dir}/hydra.log`);
            assert.match(hydraLog, /"msg":"attachments resolved".*"via":"daemon"/);
          } finally {
            Deno.kill(daemon.pid, "SIGTERM");
            assert.equal((await daemon.status!).code, 0);
          }
        });
      } finally {
        await kubelet.stop();
      }
    } finally {
      await ctd.stop();
    }
  } finally {
    await cp.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
