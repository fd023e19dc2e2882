/**
 * Moving host NICs into a pod's namespace and back, in real namespaces: a
 * veth and a macvlan stand in for NICs (this kernel has no dummy). The pod
 * side gets the asked name, MTU, addresses and routes; back on the host the
 * NIC has its name, MTU, addresses and up state again. Needs root.
 */

import assert from "node:assert/strict";
import { type TestNetns, uniqueName, withNetns } from "../tests/helpers/netns.ts";
import { closeHandle, type Handle, openHandle } from "../netlink/socket.ts";
import { addLink, findLink } from "../netlink/link.ts";
import { addAddr } from "../netlink/addr.ts";
import { probeAll } from "../cmd/icmp_probe.ts";
import { findNic, globalAddresses, moveNicBack, moveNicIntoPod, NicError } from "./nic.ts";
import type { MovedNic, NicPlan } from "./state.ts";

interface IpAddrLink {
  ifname: string;
  mtu: number;
  address: string;
  operstate: string;
  flags: string[];
  addr_info: { family: string; local: string; prefixlen: number; scope: string }[];
}

async function linkIn(ns: TestNetns, name: string): Promise<IpAddrLink | undefined> {
  const all = await ns.ipJson<IpAddrLink[]>("addr", "show");
  return all.find((l) => l.ifname === name);
}

const globals = (l: IpAddrLink | undefined) =>
  (l?.addr_info ?? []).filter((a) => a.scope === "global").map((a) => `${a.local}/${a.prefixlen}`)
    .sort();

function withHost(
  fn: (h: Handle, host: TestNetns, pod: TestNetns, wire: TestNetns) => Promise<void>,
) {
  return () =>
    withNetns(3, async (host, pod, wire) => {
      const h = openHandle({ netnsPath: host.path });
      try {
        await fn(h, host, pod, wire);
      } finally {
        closeHandle(h);
      }
    });
}

/** A veth "NIC" in the host namespace whose peer sits in `wire`, with an address and MTU 1400. */
async function vethNic(h: Handle, wire: TestNetns, name: string) {
  addLink(h, {
    kind: "veth",
    name,
    peer: { name: "wire0", netns: wire.path },
    mtu: 1400,
    up: true,
  });
  addAddr(h, name, "192.0.2.10/24");
  addAddr(h, name, "2001:db8::10/64", { nodad: true });
  await wire.exec("ip", "link", "set", "wire0", "up");
  return findLink(h, name)!;
}

function record(
  link: { name: string; mac?: string; mtu: number; up: boolean },
  h: Handle,
  ifName: string,
): MovedNic {
  return {
    claimUid: "c1",
    device: `nic-${link.name}`,
    hostName: link.name,
    mac: link.mac!,
    hostMtu: link.mtu,
    hostAddresses: globalAddresses(h, findLink(h, link.name)!.index),
    hostUp: link.up,
    ifName,
    phase: "attached",
  };
}

Deno.test(
  "nic: a veth NIC moves in under a new name with MTU, addresses, routes; and back unchanged",
  withHost(async (h, host, pod, wire) => {
    const name = uniqueName("nic");
    const link = await vethNic(h, wire, name);
    const before = await linkIn(host, name);
    const plan: NicPlan = {
      hostName: name,
      mac: link.mac!,
      ifName: "data0",
      mtu: 1300,
      addresses: ["198.51.100.7/24"],
      routes: [{ dst: "203.0.113.0/24", gw: "198.51.100.1" }],
    };
    const rec = record(link, h, "data0");
    assert.deepEqual(rec.hostAddresses.sort(), ["192.0.2.10/24", "2001:db8::10/64"]);
    const inPod = moveNicIntoPod(h, link.index, pod.path, plan, rec.hostAddresses);
    assert.deepEqual(inPod, {
      ifName: "data0",
      mac: link.mac,
      mtu: 1300,
      addresses: ["198.51.100.7/24"],
    });
    assert.equal(await linkIn(host, name), undefined, "gone from the host");
    const there = await linkIn(pod, "data0");
    assert.equal(there?.mtu, 1300);
    assert.equal(there?.address, link.mac);
    assert.ok(there?.flags.includes("UP"));
    assert.deepEqual(globals(there), ["198.51.100.7/24"]);
    const routes = await pod.ipJson<{ dst: string; gateway?: string; dev: string }[]>(
      "route",
      "show",
    );
    assert.ok(
      routes.some((r) =>
        r.dst === "203.0.113.0/24" && r.gateway === "198.51.100.1" && r.dev === "data0"
      ),
    );
    // Traffic flows through the moved NIC to its wire.
    await wire.exec("ip", "addr", "add", "198.51.100.1/24", "dev", "wire0");
    assert.deepEqual([...probeAll(pod.path, ["198.51.100.1"], 2000).values()], [true]);

    assert.equal(moveNicBack(h, pod.path, rec), "restored");
    assert.equal(await linkIn(pod, "data0"), undefined, "gone from the pod");
    const after = await linkIn(host, name);
    assert.equal(after?.mtu, before?.mtu);
    assert.equal(after?.address, before?.address);
    assert.deepEqual(globals(after), globals(before));
    assert.ok(after?.flags.includes("UP"));
  }),
);

Deno.test(
  "nic: keeping the host's addresses; a taken name in the pod is refused and the NIC stays",
  withHost(async (h, host, pod, wire) => {
    const name = uniqueName("nic");
    const link = await vethNic(h, wire, name);
    await pod.exec("ip", "link", "add", "taken0", "type", "veth", "peer", "name", "taken1");
    const plan: NicPlan = {
      hostName: name,
      mac: link.mac!,
      ifName: "taken0",
      addresses: [],
      routes: [],
    };
    assert.throws(
      () => moveNicIntoPod(h, link.index, pod.path, plan, []),
      (e: unknown) =>
        e instanceof NicError && /already has an interface named "taken0"/.test(e.message),
    );
    assert.ok(await linkIn(host, name), "still on the host");
    const rec = record(link, h, name);
    const keep: NicPlan = {
      hostName: name,
      mac: link.mac!,
      ifName: name,
      addresses: [],
      keepHostAddresses: true,
      routes: [],
    };
    moveNicIntoPod(h, findLink(h, name)!.index, pod.path, keep, rec.hostAddresses);
    assert.deepEqual(globals(await linkIn(pod, name)), ["192.0.2.10/24", "2001:db8::10/64"]);
    // The host took the name meanwhile: the NIC comes back under a temporary one.
    await host.exec("ip", "link", "add", name, "type", "veth", "peer", "name", uniqueName("pe"));
    assert.equal(moveNicBack(h, pod.path, rec), "restored");
    const back = findNic(h, name, link.mac!);
    assert.ok(back && back.name !== name && back.name.startsWith("hydra"));
    assert.deepEqual(globalAddresses(h, back.index).sort(), ["192.0.2.10/24", "2001:db8::10/64"]);
  }),
);

Deno.test(
  "nic: a macvlan NIC whose pod namespace died is gone, not an error",
  withHost(async (h, host, _pod, wire) => {
    const parent = uniqueName("par");
    addLink(h, { kind: "veth", name: parent, peer: { name: "wire0", netns: wire.path }, up: true });
    const name = uniqueName("mv");
    addLink(h, { kind: "macvlan", name, parent, mode: "bridge", up: true });
    const link = findLink(h, name)!;
    const rec = record(link, h, "m0");
    await withNetns(1, (doomed) => {
      moveNicIntoPod(h, link.index, doomed.path, {
        hostName: name,
        mac: link.mac!,
        ifName: "m0",
        addresses: [],
        routes: [],
      }, []);
      return Promise.resolve();
    });
    assert.equal(moveNicBack(h, "/var/run/netns/does-not-exist", rec), "gone");
    assert.equal(await linkIn(host, name), undefined);
  }),
);
