/**
 * End-to-end check of the full node stack used by the Kubernetes-mode tests: a Pod object bound to
 * a real kubelet becomes a containerd sandbox whose network comes from the CNI configuration, and
 * deleting the Pod tears it down again.
 *
 * Needs root and the built peers including kubelet (`deno task peers`).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startControlPlane } from "./cluster.ts";
import { startContainerd } from "./containerd.ts";
import { startKubelet } from "./kubelet.ts";
import { createPausePod, deletePodAndWait } from "./pods.ts";
import { referencePluginDir } from "./peers.ts";
import { poll } from "./process.ts";
import { uniqueName, withTempDir } from "../helpers/netns.ts";

interface PodStatus {
  status?: { phase?: string; podIP?: string };
}

Deno.test("a kubelet turns a Pod into a sandbox networked through containerd's CNI", async () => {
  await withTempDir(async (tmp) => {
    const confDir = join(tmp, "net.d");
    await Deno.mkdir(confDir);
    const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 250);
    await Deno.writeTextFile(
      join(confDir, "10-node.conflist"),
      JSON.stringify({
        cniVersion: "1.1.0",
        name: uniqueName("net"),
        plugins: [{
          type: "bridge",
          bridge: uniqueName("hybr"),
          isGateway: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: `10.249.${octet}.0/24` }]],
            dataDir: join(tmp, "ipam"),
          },
        }],
      }),
    );
    const cp = await startControlPlane();
    try {
      const ctd = await startContainerd({
        cniConfDir: confDir,
        cniBinDirs: [referencePluginDir()],
      });
      try {
        const kubelet = await startKubelet(cp, ctd);
        try {
          const ns = uniqueName("ns");
          await cp.createNamespace(ns);
          const podPath = await createPausePod(cp, kubelet, ns, "web");
          let pod: PodStatus = {};
          const running = await poll(
            async () => {
              pod = (await cp.api.must("GET", podPath)) as PodStatus;
              return pod.status?.phase === "Running";
            },
            60_000,
            250,
          );
          assert.ok(running, `pod not running: ${JSON.stringify(pod.status)}`);
          assert.ok(
            pod.status?.podIP?.startsWith(`10.249.${octet}.`),
            `podIP ${pod.status?.podIP}`,
          );
          const sandboxes = JSON.parse(await ctd.crictl("pods", "--namespace", ns, "-o", "json"));
          assert.equal(sandboxes.items.length, 1);
          assert.equal(sandboxes.items[0].metadata.name, "web");

          const gone = await deletePodAndWait(cp, podPath);
          assert.ok(gone, "pod object not removed after the kubelet stopped it");
          // The sandbox is stopped (network torn down) shortly after the object is gone.
          let states: string[] = [];
          const stopped = await poll(
            async () => {
              const list = JSON.parse(await ctd.crictl("pods", "--namespace", ns, "-o", "json"));
              states = list.items.map((s: { state: string }) => s.state);
              return states.every((state) => state === "SANDBOX_NOTREADY");
            },
            60_000,
            250,
          );
          assert.ok(stopped, `sandbox states: ${JSON.stringify(states)}`);
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
