/**
 * hydra-macvlan against the reference macvlan plugin. The master is one end
 * of a veth pair in the test host namespace, never a real NIC.
 */

import assert from "node:assert/strict";
import { observeBoth, type Scenario, type Side, withoutTxqlen } from "./differential.ts";
import {
  containerId,
  debianDir,
  hydraBin,
  inNs,
  mustInvoke,
  randomSubnet24,
  reaches,
  reference,
  withWorld,
  type World,
} from "./helpers.ts";
import { inNetns, kernelRenamesRunningLinks } from "../helpers/netlink.ts";
import type { CmdArgs } from "../../cni/types.ts";
import { addLink, findLink, getLink, type Handle } from "../../netlink/mod.ts";
import {
  closeRemovalBatch,
  deferLinkDeletion,
  openRemovalBatch,
  settleDeferredDeletions,
} from "../../plugins/link_batch.ts";
import { plugin as macvlan } from "../../plugins/macvlan.ts";

const ref = reference();

const POD_SYSCTLS = [
  "net/ipv4/conf/eth0/arp_notify",
  "net/ipv6/conf/eth0/ndisc_notify",
];

/** An "uplink" veth pair up0/up1 in the host namespace, up0 with a default route. */
async function uplink(w: World): Promise<void> {
  await inNs(w.host, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1");
  await inNs(w.host, "ip", "link", "set", "up0", "up");
  await inNs(w.host, "ip", "link", "set", "up1", "up");
  await inNs(w.host, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0");
  await inNs(w.host, "ip", "route", "add", "default", "via", "192.0.2.254", "dev", "up0");
}

function sides(conf: (w: World) => Record<string, unknown>, dir = ref.dir): [Side, Side] {
  return [
    { binary: `${dir}/macvlan`, path: [dir], config: (w) => ({ ...conf(w), type: "macvlan" }) },
    {
      binary: `${hydraBin}/hydra-macvlan`,
      path: [dir],
      config: (w) => ({ ...conf(w), type: "hydra-macvlan" }),
    },
  ];
}

async function compare(
  scenario: Scenario,
  conf: (w: World) => Record<string, unknown>,
  dir?: string,
) {
  const [r, h] = sides(conf, dir);
  const { want, got } = await observeBoth({ setup: uplink, ...scenario }, r, h);
  assert.equal(want.add.code, 0);
  assert.deepEqual(got, want);
}

Deno.test(`macvlan: bridge mode with MTU, IPAM routes and a MAC match the reference (CNI ${ref.version})`, async () => {
  const subnet = randomSubnet24();
  await compare(
    { podSysctls: POD_SYSCTLS, args: "IgnoreUnknown=1;MAC=0a:58:0a:0b:0c:0d" },
    (w) => ({
      cniVersion: ref.version,
      name: "mv",
      master: "up0",
      mode: "bridge",
      mtu: 1400,
      ipam: {
        type: "host-local",
        subnet,
        routes: [{ dst: "0.0.0.0/0" }, {
          dst: "198.51.100.0/24",
          gw: subnet.replace(/0\/24$/, "9"),
        }],
        dataDir: `${w.dir}/ipam`,
      },
    }),
  );
});

Deno.test("macvlan: master from the default route, private mode, no IPAM match the reference", async () => {
  await compare({ podSysctls: POD_SYSCTLS }, () => ({
    cniVersion: ref.version,
    name: "mv2",
    mode: "private",
  }));
});

Deno.test("macvlan: CNI 0.4.0 result and state match Debian's macvlan", async () => {
  const subnet = randomSubnet24();
  const [r, h] = sides((w) => ({
    cniVersion: "0.4.0",
    name: "mv3",
    master: "up0",
    mode: "vepa",
    ipam: { type: "host-local", subnet, dataDir: `${w.dir}/ipam` },
  }), debianDir);
  // Debian's older build neither sets ndisc_notify nor leaves the kernel's
  // queue length on the device: compare what both versions do.
  const scenario = { setup: uplink, podSysctls: ["net/ipv4/conf/eth0/arp_notify"] };
  const { want, got } = await observeBoth(scenario, r, h);
  assert.deepEqual(withoutTxqlen(got), withoutTxqlen(want));
});

Deno.test("macvlan: two pods on one master reach each other; DEL releases and removes", async () => {
  await withWorld(2, async (w) => {
    await uplink(w);
    const conf = {
      cniVersion: "1.1.0",
      name: "mvp",
      type: "hydra-macvlan",
      master: "up0",
      ipam: { type: "hydra-ipam", subnet: randomSubnet24(), dataDir: `${w.dir}/ipam` },
    };
    const bin = `${hydraBin}/hydra-macvlan`;
    const invs = w.pods.map((p) => ({
      containerId: containerId(),
      netns: p.path,
      ifName: "net1",
      path: [ref.dir],
    }));
    const results = [];
    for (const inv of invs) {
      results.push(await mustInvoke(w.host, bin, { ...inv, command: "ADD" }, conf));
    }
    const ip1 = (results[1]!.ips as { address: string }[])[0].address.split("/")[0];
    assert.ok(await reaches(w.pods[0], ip1), "pod 0 cannot reach pod 1 over macvlan");
    for (const [i, inv] of invs.entries()) {
      await mustInvoke(w.host, bin, { ...inv, command: "CHECK" }, {
        ...conf,
        prevResult: results[i],
      });
      await mustInvoke(w.host, bin, { ...inv, command: "DEL" }, {
        ...conf,
        prevResult: results[i],
      });
    }
    for (const p of w.pods) {
      const links = await p.ipJson<{ ifname: string }[]>("link", "show");
      assert.deepEqual(links.map((l) => l.ifname), ["lo"]);
    }
    const left = [...Deno.readDirSync(`${w.dir}/ipam/mvp`)].map((e) => e.name)
      .filter((n) => !n.startsWith("last_reserved") && n !== "lock");
    assert.deepEqual(left, []);
  });
});

/** CNI arguments for hydra-macvlan in-process, its master `up1` in the pod's namespace. */
function inProcessArgs(command: "ADD" | "DEL", netns: string, id: string, mac?: string): CmdArgs {
  const config = {
    cniVersion: "1.0.0",
    name: "mv",
    type: "macvlan",
    master: "up1",
    linkInContainer: true,
    ...(mac ? { mac } : {}),
  };
  return {
    command,
    containerId: id,
    netns,
    ifName: "net1",
    args: "",
    path: [],
    stdinData: new TextEncoder().encode(JSON.stringify(config)),
    config,
  };
}

/** ADD then DEL of container `id` in a deferred batch left open; the parked link. */
async function addThenPark(h: Handle, netns: string, id: string, mac?: string) {
  await macvlan.add(inProcessArgs("ADD", netns, id, mac));
  const index = getLink(h, "net1").index;
  const batch = openRemovalBatch(id, netns);
  await macvlan.del(inProcessArgs("DEL", netns, id, mac));
  assert.equal(findLink(h, "net1"), undefined);
  return { parked: getLink(h, index), batch };
}

Deno.test(
  "macvlan: a node daemon's DEL parks the link up, or down when its MAC was fixed",
  inNetns(1, async (h, pod) => {
    addLink(h, { kind: "veth", name: "up1", peer: { name: "up2" }, up: true });
    // Older kernels rename only links that are down: there it goes down as before.
    const live = kernelRenamesRunningLinks(h);
    const stop = deferLinkDeletion(() => {});
    try {
      // Up: its close would make the DEL wait a grace period.
      const random = await addThenPark(h, pod.path, "c1");
      assert.equal(random.parked.up, live);
      await closeRemovalBatch(random.batch);
      // Down: the MAC is free for an ADD that wants it before the deletion.
      const mac = "02:42:00:00:00:07";
      const fixed = await addThenPark(h, pod.path, "c2", mac);
      assert.ok(!fixed.parked.up);
      await macvlan.add(inProcessArgs("ADD", pod.path, "c3", mac));
      assert.ok(getLink(h, "net1").up);
      await closeRemovalBatch(fixed.batch);
      assert.equal(await settleDeferredDeletions(10_000), true);
      assert.equal(findLink(h, fixed.parked.index), undefined);
    } finally {
      stop();
      await settleDeferredDeletions(10_000);
    }
  }),
);
