/**
 * A host NIC by ResourceClaim (a step of claims_test.ts): the NIC is
 * published with its attributes; a pod whose claim comes from a
 * ResourceClaimTemplate is scheduled by kube-scheduler, which allocates the
 * NIC to the claim the controller manager made; the pod runs with the NIC
 * inside under the asked name, MTU and address, traffic flows through it;
 * the claim's status has its networkData and the pod's network-status its
 * entry; deleting the pod deletes its claim and puts the NIC back on the
 * host with its name, MTU and addresses.
 *
 * @module
 */

import assert from "node:assert/strict";
import { probeAll } from "../../cmd/icmp_probe.ts";
import { poll } from "../infra/process.ts";
import { type DraWorld, globalAddrs, type IpLink } from "./world.ts";
import type { ResourceSlice } from "../../dra/slices.ts";
import { NETWORK_STATUS_ANNOTATION } from "../../kube/status.ts";
import { claimPath } from "../../dra/claim.ts";

const NIC_CLASS = "hydra-nic";

/** A pod's claim for a host NIC: inside the pod as asked, back on the host after. */
export async function hostNic(w: DraWorld): Promise<void> {
  await w.startDra();
  await w.startNri();
  const nic = await w.nic({ mtu: 1400, addresses: ["192.0.2.10/24"] });
  await w.wire.exec("ip", "addr", "add", "198.51.100.1/24", "dev", nic.peer);

  // Published, with what netlink knows and nothing sysfs does not say of a veth.
  let slice: ResourceSlice | undefined;
  assert.ok(
    await poll(
      async () => {
        const list = await w.cp.api.must("GET", "/apis/resource.k8s.io/v1/resourceslices") as {
          items: ResourceSlice[];
        };
        slice = list.items.find((s) =>
          s.spec.nodeName === w.nodeName && s.spec.devices.some((d) => d.name === nic.device)
        );
        return slice !== undefined;
      },
      30_000,
      200,
    ),
    "NIC published",
  );
  const device = slice!.spec.devices.find((d) => d.name === nic.device)!;
  assert.deepEqual(device.attributes, {
    kind: { string: "nic" },
    ifName: { string: nic.name },
    mac: { string: nic.mac },
    mtu: { int: 1400 },
    linkKind: { string: "veth" },
  });
  assert.equal(slice!.spec.pool.name, w.nodeName);
  assert.ok(slice!.spec.devices.some((d) => d.name === "net-0"), "network slots too");

  await w.createClaimTemplate("nic-data0", [{
    name: "nic",
    deviceClassName: NIC_CLASS,
    selector: `device.attributes["hydra.clusternet.io"].ifName == "${nic.name}"`,
  }], { interface: "data0", mtu: 1300, addresses: ["198.51.100.7/24"] });
  await w.createPod("p1", [{ name: "nic", template: "nic-data0" }]);
  const c1 = await w.claimOf("p1", "nic");
  const running = await w.waitRunning("p1");
  assert.equal(running.spec?.nodeName, w.nodeName, "scheduled onto the node");
  const allocated = await w.getClaim(c1);
  assert.deepEqual(
    allocated.status?.allocation?.devices?.results?.map((r) => [r.request, r.pool, r.device]),
    [["nic", w.nodeName, nic.device]],
    "the scheduler allocated the NIC",
  );
  assert.deepEqual(allocated.status?.reservedFor?.map((r) => r.name), ["p1"]);

  const netns = await w.podNetns("p1");
  const inPod = (await w.addrs(netns)).find((l) => l.ifname === "data0");
  assert.ok(inPod, "data0 in the pod");
  assert.equal(inPod.address, nic.mac);
  assert.equal(inPod.mtu, 1300);
  assert.deepEqual(globalAddrs(inPod), ["198.51.100.7/24"]);
  assert.ok(inPod.flags.includes("UP"));
  assert.equal(
    (await w.nodeIp<IpLink[]>("addr", "show")).some((l) => l.ifname === nic.name),
    false,
    "not on the host",
  );
  assert.deepEqual(
    [...probeAll(netns, ["198.51.100.1"], 2000).values()],
    [true],
    "traffic through the NIC",
  );

  // The claim says what the pod got (KEP-4817), and so does the pod.
  let claimDevice: Record<string, unknown> | undefined;
  assert.ok(
    await poll(
      async () => {
        const c = await w.getClaim(c1);
        claimDevice = c.status?.devices?.find((d) => d.device === nic.device) as
          | Record<string, unknown>
          | undefined;
        return claimDevice?.networkData !== undefined;
      },
      30_000,
      200,
    ),
    "claim status written",
  );
  assert.equal(claimDevice!.driver, "hydra.clusternet.io");
  assert.equal(claimDevice!.pool, w.nodeName);
  assert.deepEqual(claimDevice!.networkData, {
    interfaceName: "data0",
    ips: ["198.51.100.7/24"],
    hardwareAddress: nic.mac,
  });
  const cond = (claimDevice!.conditions as Record<string, string>[])[0];
  assert.equal(cond.type, "Ready");
  assert.equal(cond.status, "True");
  let status: Record<string, unknown>[] = [];
  assert.ok(
    await poll(
      async () => {
        const p = await w.getPod("p1");
        status = JSON.parse(p?.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] ?? "[]");
        return status.some((e) => e.interface === "data0");
      },
      30_000,
      200,
    ),
    "network-status written",
  );
  assert.deepEqual(status.find((e) => e.interface === "data0"), {
    name: `${w.ns}/${c1}`,
    interface: "data0",
    ips: ["198.51.100.7"],
    mac: nic.mac,
    mtu: 1300,
    dns: {},
  });

  await w.deletePod("p1");
  let back: IpLink | undefined;
  assert.ok(
    await poll(
      async () => {
        back = (await w.nodeIp<IpLink[]>("addr", "show")).find((l) => l.ifname === nic.name);
        return back !== undefined && globalAddrs(back).length > 0;
      },
      30_000,
      200,
    ),
    "NIC back on the host",
  );
  assert.equal(back!.address, nic.mac);
  assert.equal(back!.mtu, 1400);
  assert.deepEqual(globalAddrs(back), ["192.0.2.10/24"]);
  assert.ok(back!.flags.includes("UP"));
  assert.ok(
    await poll(
      async () => (await w.cp.api.request("GET", claimPath(w.ns, c1))).status === 404,
      30_000,
      200,
    ),
    "the pod's claim deleted with it",
  );
}
