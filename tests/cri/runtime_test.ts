/**
 * hydra's CRI client against a real containerd: the READY sandbox of a pod
 * and its network namespace, as `crictl inspectp` shows them; nothing for a
 * stopped sandbox, an unknown pod or a host-network one.
 *
 * Needs root and the built peers (containerd, crictl).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { startContainerd } from "../infra/containerd.ts";
import { referencePluginDir, requirePeers } from "../infra/peers.ts";
import { uniqueName, withTempDir } from "../helpers/netns.ts";
import { createRuntimeClient, readySandboxOf } from "../../cri/runtime.ts";

Deno.test("cri: the ready sandbox of a pod and its netns, as containerd knows them", async () => {
  requirePeers("containerd", "containerd-shim-runc-v2", "crictl");
  await withTempDir(async (tmp) => {
    const confDir = join(tmp, "net.d");
    await Deno.mkdir(confDir);
    await Deno.writeTextFile(
      join(confDir, "10-default.conflist"),
      JSON.stringify({
        cniVersion: "1.1.0",
        name: uniqueName("def"),
        plugins: [{
          type: "bridge",
          bridge: uniqueName("hcb"),
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: "10.250.77.0/24" }]],
            dataDir: join(tmp, "ipam"),
          },
        }],
      }),
    );
    const ctd = await startContainerd({ cniConfDir: confDir, cniBinDirs: [referencePluginDir()] });
    const client = createRuntimeClient(ctd.address);
    try {
      const runp = async (name: string, uid: string, hostNetwork = false) => {
        const config = join(tmp, `${name}.json`);
        const linux: Record<string, unknown> = { cgroup_parent: ctd.cgroupParent };
        if (hostNetwork) linux.security_context = { namespace_options: { network: 2 } };
        await Deno.writeTextFile(
          config,
          JSON.stringify({
            metadata: { name, namespace: "cri-test", uid },
            labels: { "io.kubernetes.pod.uid": uid },
            log_directory: join(tmp, "logs", name),
            linux,
          }),
        );
        return (await ctd.crictl("runp", config)).trim();
      };
      const uid = crypto.randomUUID();
      const id = await runp(uniqueName("cri"), uid);
      const inspect = JSON.parse(await ctd.crictl("inspectp", "-o", "json", id));
      const want = (inspect.info.runtimeSpec.linux.namespaces as { type: string; path: string }[])
        .find((n) => n.type === "network")!.path;
      const found = await readySandboxOf(client, uid, 5_000);
      assert.deepEqual(found, { id, netns: want });
      const stale = { id: "0000", netns: "/nowhere" };
      assert.equal(
        await readySandboxOf(client, uid, 5_000, found),
        found,
        "known: not asked again",
      );
      assert.deepEqual(await readySandboxOf(client, uid, 5_000, stale), found, "another: asked");
      assert.equal(await readySandboxOf(client, crypto.randomUUID(), 5_000), undefined);

      const hostUid = crypto.randomUUID();
      const hostId = await runp(uniqueName("crih"), hostUid, true);
      assert.equal(await readySandboxOf(client, hostUid, 5_000), undefined, "host network");
      assert.equal((await client.podSandboxStatus(hostId, 5_000))?.ready, true);

      await ctd.crictl("stopp", id);
      assert.equal(await readySandboxOf(client, uid, 5_000), undefined, "stopped");
      assert.equal((await client.podSandboxStatus(id, 5_000))?.ready, false);
      await ctd.crictl("rmp", id);
      assert.equal(await client.podSandboxStatus(id, 5_000), undefined, "removed");
    } finally {
      client.close();
      await ctd.stop();
    }
  });
});
