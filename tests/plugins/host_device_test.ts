/**
 * hydra-host-device against the reference host-device plugin. The "host
 * NIC" is one end of a veth pair in the test host namespace.
 */

import assert from "node:assert/strict";
import { observeBoth, type Side } from "./differential.ts";
import {
  containerId,
  hydraBin,
  inNs,
  invoke,
  mustInvoke,
  randomSubnet24,
  reference,
  withWorld,
  type World,
} from "./helpers.ts";

const ref = reference();
const NIC_MAC = "0a:58:00:00:00:42";

/** A "NIC" nic0 (peer nic0p) in the host namespace, up, with a known MAC. */
async function nic(w: World): Promise<void> {
  await inNs(
    w.host,
    "ip",
    "link",
    "add",
    "nic0",
    "address",
    NIC_MAC,
    "type",
    "veth",
    "peer",
    "name",
    "nic0p",
  );
  await inNs(w.host, "ip", "link", "set", "nic0", "up");
  await inNs(w.host, "ip", "link", "set", "nic0p", "up");
}

/**
 * The far end of the test "NIC" is scaffolding: its operational state
 * depends on whether its peer's interface index happens to equal its own
 * (the kernel then reports DOWN rather than LOWERLAYERDOWN), not on the plugin.
 */
function withoutScaffolding(observed: unknown): unknown {
  return JSON.parse(JSON.stringify(observed), (_k, v) => {
    if (v && typeof v === "object" && v.name === "nic0p") return { ...v, operstate: "-" };
    return v;
  });
}

function sides(conf: (w: World) => Record<string, unknown>): [Side, Side] {
  return [
    {
      binary: `${ref.dir}/host-device`,
      path: [ref.dir],
      config: (w) => ({ ...conf(w), type: "host-device" }),
    },
    {
      binary: `${hydraBin}/hydra-host-device`,
      path: [ref.dir],
      config: (w) => ({ ...conf(w), type: "hydra-host-device" }),
    },
  ];
}

Deno.test(`host-device: by name with IPAM, moved in and back, matches the reference (CNI ${ref.version})`, async () => {
  const subnet = randomSubnet24();
  const [r, h] = sides((w) => ({
    cniVersion: ref.version,
    name: "hd",
    device: "nic0",
    ipam: { type: "host-local", subnet, dataDir: `${w.dir}/ipam` },
  }));
  const { want, got } = await observeBoth({ setup: nic, ifName: "net1" }, r, h);
  assert.equal(want.add.code, 0);
  assert.deepEqual(withoutScaffolding(got), withoutScaffolding(want));
});

Deno.test("host-device: by hardware address, without IPAM, matches the reference", async () => {
  const [r, h] = sides(() => ({ cniVersion: ref.version, name: "hd2", hwaddr: NIC_MAC }));
  const { want, got } = await observeBoth({ setup: nic }, r, h);
  assert.deepEqual(withoutScaffolding(got), withoutScaffolding(want));
});

Deno.test("host-device: the device keeps its name as alias in the pod and comes back under it", async () => {
  await withWorld(1, async (w) => {
    await nic(w);
    const conf = { cniVersion: "1.1.0", name: "hd3", type: "hydra-host-device", device: "nic0" };
    const inv = {
      containerId: containerId(),
      netns: w.pods[0].path,
      ifName: "data0",
      path: [ref.dir],
    };
    const bin = `${hydraBin}/hydra-host-device`;
    const result = await mustInvoke(w.host, bin, { ...inv, command: "ADD" }, conf);
    assert.deepEqual(result!.interfaces, [{
      name: "data0",
      mac: NIC_MAC,
      sandbox: w.pods[0].path,
    }]);
    const [inPod] = await w.pods[0].ipJson<{ ifname: string; ifalias?: string; flags: string[] }[]>(
      "link",
      "show",
      "data0",
    );
    assert.equal(inPod.ifalias, "nic0");
    assert.ok(inPod.flags.includes("UP"));
    const hostNames = async () =>
      (await w.host.ipJson<{ ifname: string }[]>("link", "show")).map((l) => l.ifname).sort();
    assert.deepEqual(await hostNames(), ["lo", "nic0p"]);
    await mustInvoke(w.host, bin, { ...inv, command: "CHECK" }, { ...conf, prevResult: result });
    await mustInvoke(w.host, bin, { ...inv, command: "DEL" }, { ...conf, prevResult: result });
    assert.deepEqual(await hostNames(), ["lo", "nic0", "nic0p"]);
    const [back] = await w.host.ipJson<{ ifalias?: string; address: string }[]>(
      "link",
      "show",
      "nic0",
    );
    assert.equal(back.ifalias, undefined);
    assert.equal(back.address, NIC_MAC);
    // A second DEL finds nothing to move and succeeds.
    await mustInvoke(w.host, bin, { ...inv, command: "DEL" }, conf);
  });
});

Deno.test("host-device: a kernelpath outside /sys/devices and a missing device are config errors", async () => {
  await withWorld(1, async (w) => {
    const inv = {
      command: "ADD" as const,
      containerId: containerId(),
      netns: w.pods[0].path,
      ifName: "eth0",
      path: [ref.dir],
    };
    const bin = `${hydraBin}/hydra-host-device`;
    const base = { cniVersion: "1.1.0", name: "hd4", type: "hydra-host-device" };
    const bad = await invoke(w.host, bin, inv, { ...base, kernelpath: "/tmp/x" });
    assert.equal(bad.json?.code, 7);
    assert.match(String(bad.json?.msg), /must be absolute and begin with \/sys\/devices/);
    const none = await invoke(w.host, bin, inv, base);
    assert.equal(none.json?.code, 7);
    assert.match(
      String(none.json?.msg),
      /specify either "device", "hwaddr", "kernelpath" or "pciBusID"/,
    );
    const missing = await invoke(w.host, bin, inv, { ...base, device: "nosuch0" });
    assert.equal(missing.json?.code, 7);
    assert.match(String(missing.json?.msg), /nosuch0/);
  });
});
