/**
 * Multus thick through the real node path: the daemon writes 00-multus.conf for containerd, the
 * kubelet's Pod asks for a NetworkAttachmentDefinition, containerd execs the shim, the daemon runs
 * the cluster network and the NAD's delegate (reference bridge + host-local) in the Pod's network
 * namespace and writes the network-status annotation; deleting the Pod releases both addresses.
 *
 * Needs root and the built peers including kubelet and multus-thick (`deno task peers`).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startControlPlane } from "./cluster.ts";
import { startContainerd } from "./containerd.ts";
import { startKubelet } from "./kubelet.ts";
import { startMultusThick } from "./multus_thick.ts";
import { referencePluginDir, versions } from "./peers.ts";
import { logTail, poll, runCommand } from "./process.ts";
import { uniqueName, withTempDir } from "../helpers/netns.ts";

const NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status";

interface NetworkStatus {
  name: string;
  interface?: string;
  ips?: string[];
  default?: boolean;
}

interface Pod {
  metadata: { annotations?: Record<string, string> };
  status?: { phase?: string; podIP?: string };
}

/** A bridge + host-local network conf (single plugin) on a fresh bridge, in a /24 of `prefix`. */
function bridgeNetwork(name: string, prefix: string, dataDir: string) {
  const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
  const subnet = `${prefix}.${octet}.0/24`;
  return {
    subnet: `${prefix}.${octet}.`,
    conf: {
      cniVersion: "1.0.0",
      name,
      type: "bridge",
      bridge: uniqueName("hybr"),
      isGateway: true,
      ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir },
    },
  };
}

/** Addresses host-local holds in `dataDir/<network>` (one file per address). */
async function reserved(dataDir: string, network: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(join(dataDir, network))) names.push(entry.name);
  } catch {
    return []; // nothing allocated yet
  }
  return names.filter((n) => /^[0-9.]+$/.test(n));
}

Deno.test("Multus thick attaches a NAD's network to a Pod run by the kubelet", async () => {
  await withTempDir(async (tmp) => {
    const confDir = join(tmp, "net.d");
    const shimDir = join(tmp, "bin");
    const ipam = join(tmp, "ipam");
    await Deno.mkdir(confDir);
    await Deno.mkdir(shimDir);
    const defaultNet = bridgeNetwork(uniqueName("dflt"), "10.246", ipam);
    const extraNet = bridgeNetwork(uniqueName("xtra"), "10.245", ipam);
    // A .conf, not a .conflist: Multus v4.3.0 caches a .conflist cluster network without its
    // plugins' settings and then fails its DEL (the same holds for the thin plugin).
    const defaultConf = join(confDir, "10-default.conf");
    await Deno.writeTextFile(defaultConf, JSON.stringify(defaultNet.conf));
    const cp = await startControlPlane();
    try {
      const ctd = await startContainerd({
        cniConfDir: confDir,
        cniBinDirs: [shimDir, referencePluginDir()],
      });
      try {
        const kubelet = await startKubelet(cp, ctd);
        try {
          const multus = await startMultusThick(cp, {
            cniConfDir: confDir,
            shimBinDir: shimDir,
            netns: ctd.netnsName,
            nodeName: kubelet.nodeName,
          });
          try {
            const conf = JSON.parse(await Deno.readTextFile(multus.confPath));
            assert.equal(conf.type, "multus-shim");
            assert.equal(conf.clusterNetwork, defaultConf);
            assert.equal(conf.daemonSocketDir, multus.socketDir);

            const ns = uniqueName("ns");
            await cp.createNamespace(ns);
            const nad = "extra";
            await cp.api.must(
              "POST",
              `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
              {
                apiVersion: "k8s.cni.cncf.io/v1",
                kind: "NetworkAttachmentDefinition",
                metadata: { name: nad },
                spec: { config: JSON.stringify(extraNet.conf) },
              },
            );
            const podPath = `/api/v1/namespaces/${ns}/pods/multi`;
            await cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, {
              metadata: { name: "multi", annotations: { "k8s.v1.cni.cncf.io/networks": nad } },
              spec: {
                nodeName: kubelet.nodeName,
                terminationGracePeriodSeconds: 0,
                containers: [{
                  name: "main",
                  image: versions().PAUSE_IMAGE,
                  imagePullPolicy: "Never",
                }],
              },
            });
            let pod: Pod = { metadata: {} };
            const ran = await poll(
              async () => {
                pod = (await cp.api.must("GET", podPath)) as Pod;
                return pod.status?.phase === "Running" &&
                  pod.metadata.annotations?.[NETWORK_STATUS] !== undefined;
              },
              90_000,
              250,
            );
            assert.ok(ran, `pod not running with network-status: ${JSON.stringify(pod)}`);
            assert.ok(
              pod.status?.podIP?.startsWith(defaultNet.subnet),
              `podIP ${pod.status?.podIP}`,
            );

            const status = JSON.parse(pod.metadata.annotations![NETWORK_STATUS]) as NetworkStatus[];
            const extra = status.find((s) => s.name === `${ns}/${nad}`);
            assert.ok(extra, `no ${ns}/${nad} in network-status: ${JSON.stringify(status)}`);
            assert.equal(extra.interface, "net1");
            assert.ok(extra.ips?.[0]?.startsWith(extraNet.subnet), `net1 ips ${extra.ips}`);
            assert.ok(status.some((s) => s.default && s.ips?.[0] === pod.status?.podIP));

            // The interface is really there, in the sandbox's network namespace.
            const sandboxes = JSON.parse(await ctd.crictl("pods", "--namespace", ns, "-o", "json"));
            const inspect = JSON.parse(await ctd.crictl("inspectp", sandboxes.items[0].id));
            const netns =
              (inspect.info.runtimeSpec.linux.namespaces as { type: string; path?: string }[])
                .find((n) => n.type === "network")?.path;
            assert.ok(netns, "sandbox has no network namespace path");
            const links = JSON.parse(
              (await runCommand("nsenter", [`--net=${netns}`, "ip", "-j", "addr", "show", "net1"]))
                .stdout,
            ) as { addr_info: { local: string }[] }[];
            assert.ok(links[0].addr_info.some((a) => a.local === extra.ips![0].split("/")[0]));
            assert.equal((await reserved(ipam, extraNet.conf.name)).length, 1);

            await cp.api.must("DELETE", podPath);
            const released = await poll(
              async () =>
                (await cp.api.request("GET", podPath)).status === 404 &&
                (await reserved(ipam, extraNet.conf.name)).length === 0 &&
                (await reserved(ipam, defaultNet.conf.name)).length === 0,
              90_000,
              250,
            );
            assert.ok(
              released,
              `addresses not released after the pod was deleted; multus-daemon log:\n${
                logTail(multus, 40)
              }\ncontainerd log:\n${logTail(ctd, 40)}`,
            );
          } finally {
            await multus.stop();
          }
        } finally {
          await kubelet.stop();
        }
      } finally {
        await ctd.stop();
      }
    } finally {
      await cp.stop();
    }
  });
});
