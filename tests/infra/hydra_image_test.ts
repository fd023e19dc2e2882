/**
 * hydra's offline image (tools/image.ts) runs on the test node: the archive built from HEAD is
 * imported into the test containerd, a Pod using it is scheduled onto the kubelet's node, and its
 * container runs `hydra version` through the image's launcher and Deno, without a network.
 *
 * Needs root and the built peers including kubelet and kube-control (`deno task peers`).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startControlPlane } from "./cluster.ts";
import { startContainerd } from "./containerd.ts";
import { startKubelet } from "./kubelet.ts";
import { referencePluginDir, repoRoot } from "./peers.ts";
import { poll } from "./process.ts";
import { buildHydraImage } from "../../tools/image.ts";
import { uniqueName, withTempDir } from "../helpers/netns.ts";

interface Pod {
  spec: { nodeName?: string };
  status?: { phase?: string; containerStatuses?: unknown[] };
}

Deno.test("a Pod of the offline hydra image runs `hydra version` on the test kubelet", async () => {
  const image = await buildHydraImage();
  const denoJson = JSON.parse(await Deno.readTextFile(join(repoRoot, "deno.json")));
  await withTempDir(async (tmp) => {
    const confDir = join(tmp, "net.d");
    await Deno.mkdir(confDir);
    const cp = await startControlPlane({ scheduler: true });
    try {
      const ctd = await startContainerd({
        cniConfDir: confDir,
        cniBinDirs: [referencePluginDir()],
      });
      try {
        await ctd.ctr("images", "import", "--local", image.path);
        const names = (await ctd.ctr("images", "ls", "-q")).split("\n");
        assert.ok(names.includes(image.tag), `${image.tag} not among ${names}`);
        const kubelet = await startKubelet(cp, ctd);
        try {
          const ns = uniqueName("ns");
          await cp.createNamespace(ns);
          const podPath = `/api/v1/namespaces/${ns}/pods/hydra`;
          await cp.api.must("POST", `/api/v1/namespaces/${ns}/pods`, {
            metadata: { name: "hydra" },
            spec: {
              // As the DaemonSets in deploy/ run it: on the node's network (no CNI conf needed),
              // the launcher as command.
              hostNetwork: true,
              // Every node, whatever its taints (a new Node is not-ready until its network is).
              tolerations: [{ operator: "Exists" }],
              restartPolicy: "Never",
              containers: [{
                name: "main",
                image: image.tag,
                imagePullPolicy: "Never",
                command: ["/usr/local/bin/hydra"],
                args: ["version"],
                // The installer container's: Deno's cache in the image must be complete.
                securityContext: {
                  runAsUser: 0,
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ["ALL"] },
                },
              }],
            },
          });
          let pod: Pod = { spec: {} };
          const done = await poll(
            async () => {
              pod = (await cp.api.must("GET", podPath)) as Pod;
              return pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed";
            },
            120_000,
            250,
          );
          assert.ok(done, `pod did not finish: ${JSON.stringify(pod.status)}`);
          assert.equal(pod.spec.nodeName, kubelet.nodeName);
          const containers = JSON.parse(
            await ctd.crictl("ps", "--all", "--name", "main", "--namespace", ns, "-o", "json"),
          ) as { containers: { id: string }[] };
          assert.equal(containers.containers.length, 1);
          const logs = await ctd.crictl("logs", containers.containers[0].id);
          assert.equal(pod.status?.phase, "Succeeded", `container output: ${logs}`);
          assert.match(logs, new RegExp(`^hydra ${denoJson.version.replaceAll(".", "\\.")}$`, "m"));
          await cp.api.must("DELETE", podPath);
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
