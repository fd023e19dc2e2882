/**
 * Multus's SR-IOV path with a real kubelet: a device plugin (a test
 * fixture speaking the kubelet's device plugin API) registers
 * `example.com/vf`; a pod asks for one and selects a NAD annotated with
 * that `k8s.v1.cni.cncf.io/resourceName`; `hydra nri serve` (Kubernetes
 * mode) reads the kubelet's pod-resources API and hands the delegate the
 * device ID the kubelet allocated, as `deviceID`/`pciBusID` in its conf and
 * `deviceID` in its runtimeConfig. A recording wrapper around the reference
 * macvlan plugin shows what the delegate received. A step of
 * claims_test.ts.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { poll } from "../infra/process.ts";
import { referencePluginDir } from "../infra/peers.ts";
import { run, uniqueName } from "../helpers/netns.ts";
import { startDevicePlugin } from "./device_plugin.ts";
import type { DraWorld } from "./world.ts";

/** resourceName: the delegate gets the device ID the kubelet allocated to the pod. */
export async function resourceNameDeviceId(w: DraWorld): Promise<void> {
  const root = join(w.kubelet.dir, "root");
  const plugin = await startDevicePlugin("example.com/vf", [
    "0000:03:00.4",
    "0000:03:00.2",
    "0000:03:00.3",
  ]);
  try {
    assert.ok(
      await poll(
        async () => {
          const node = await w.cp.api.must("GET", `/api/v1/nodes/${w.nodeName}`) as {
            status: { allocatable?: Record<string, string> };
          };
          return node.status.allocatable?.["example.com/vf"] === "3";
        },
        60_000,
        200,
      ),
      "the kubelet offers the plugin's devices",
    );
    const bin = join(w.tmp, "recbin");
    const seen = join(w.tmp, "seen");
    await Deno.mkdir(bin);
    await Deno.mkdir(seen);
    await Deno.writeTextFile(
      join(bin, "record-macvlan"),
      `#!/bin/sh\nin=$(cat)\nprintf '%s' "$in" > ${seen}/$CNI_COMMAND.json\n` +
        `printf '%s' "$in" | exec ${join(referencePluginDir(), "macvlan")}\n`,
      { mode: 0o755 },
    );
    const parent = uniqueName("hvp");
    await run(
      "ip",
      "-n",
      w.ctd.netnsName,
      "link",
      "add",
      parent,
      "type",
      "veth",
      "peer",
      "name",
      `${parent}x`,
    );
    await run("ip", "-n", w.ctd.netnsName, "link", "set", parent, "up");
    await w.nad("vf-net", {
      cniVersion: "1.0.0",
      name: "vf-net",
      type: "record-macvlan",
      // runtimeConfig reaches only plugins declaring the capability, as libcni does it.
      capabilities: { deviceID: true },
      master: parent,
      mode: "bridge",
      ipam: { type: "host-local", subnet: "10.66.0.0/24", dataDir: join(w.tmp, "vf-ipam") },
    }, { "k8s.v1.cni.cncf.io/resourceName": "example.com/vf" });
    await w.startNri([
      `--cni-bin-dir=${bin}`,
      `--pod-resources-socket=${join(root, "pod-resources", "kubelet.sock")}`,
    ]);
    await w.createPod("vf", [], {
      annotations: { "k8s.v1.cni.cncf.io/networks": "vf-net" },
      limits: { "example.com/vf": "1" },
    });
    await w.waitRunning("vf");
    assert.equal(plugin.allocated.length, 1, "the kubelet allocated one device");
    const id = plugin.allocated[0];
    const stdin = JSON.parse(await Deno.readTextFile(join(seen, "ADD.json")));
    assert.equal(stdin.deviceID, id);
    assert.equal(stdin.pciBusID, id);
    assert.equal(stdin.runtimeConfig?.deviceID, id);
    const links = (await w.addrs(await w.podNetns("vf"))).map((l) => l.ifname);
    assert.ok(links.includes("net1"), "the network is attached");
  } finally {
    await plugin.stop();
  }
}
