import assert from "node:assert/strict";
import { inNetns, kernelRenamesRunningLinks } from "../tests/helpers/netlink.ts";
import type { TestNetns } from "../tests/helpers/netns.ts";
import {
  addAddr,
  addLink,
  addRoute,
  getLink,
  type Handle,
  setLinkGroup,
  setLinkUp,
} from "../netlink/mod.ts";
import {
  closeRemovalBatch,
  deferLinkDeletion,
  openRemovalBatch,
  settleDeferredDeletions,
} from "./link_batch.ts";
import { flushRemovalBatch, parkedName, removePodLink } from "./link_removal.ts";

// deno-lint-ignore no-explicit-any
type IpLink = Record<string, any>;

async function ipLinkNames(ns: TestNetns): Promise<string[]> {
  return (await ns.ipJson<IpLink[]>("link", "show")).map((l) => l.ifname).sort();
}

Deno.test(
  "removePodLink without a batch deletes at once",
  inNetns(1, async (h, pod) => {
    addLink(h, { kind: "veth", name: "eth0", peer: { name: "peer0" } });
    removePodLink(h, "c1", pod.path, "eth0");
    assert.deepEqual(await ipLinkNames(pod), ["lo"]);
  }),
);

Deno.test(
  "a batch keeps the links until it closes, then removes all of them, and only them",
  inNetns(1, async (h, pod) => {
    addLink(h, { kind: "veth", name: "eth0", peer: { name: "peer0" } });
    addLink(h, { kind: "veth", name: "net1", peer: { name: "peer1" } });
    addLink(h, { kind: "veth", name: "other", peer: { name: "otherp" } });
    const batch = openRemovalBatch("c1", pod.path);
    batch.owner = 1;
    removePodLink(h, "c1", pod.path, "net1");
    batch.owner = 0;
    removePodLink(h, "c1", pod.path, getLink(h, "eth0").index);
    // Another container's DEL in the same namespace is not part of it.
    removePodLink(h, "c2", pod.path, "other");
    assert.deepEqual(await ipLinkNames(pod), ["eth0", "lo", "net1", "peer0", "peer1"]);
    assert.deepEqual(await closeRemovalBatch(batch), []);
    assert.deepEqual(await ipLinkNames(pod), ["lo"]);
  }),
);

Deno.test(
  "a foreign link that happens to share the batch's group survives the flush",
  inNetns(1, async (h, pod) => {
    addLink(h, { kind: "veth", name: "eth0", peer: { name: "peer0" } });
    addLink(h, { kind: "veth", name: "keep", peer: { name: "keepp" } });
    const batch = openRemovalBatch("c1", pod.path);
    removePodLink(h, "c1", pod.path, "eth0");
    setLinkGroup(h, "keep", batch.group);
    assert.deepEqual(await closeRemovalBatch(batch), []);
    assert.deepEqual(await ipLinkNames(pod), ["keep", "keepp", "lo"]);
  }),
);

Deno.test(
  "joined batches flush when the last user leaves; a namespace already gone is fine",
  inNetns(1, async (h, pod) => {
    addLink(h, { kind: "veth", name: "eth0", peer: { name: "peer0" } });
    const outer = openRemovalBatch("c1", pod.path);
    const inner = openRemovalBatch("c1", pod.path);
    assert.equal(inner, outer);
    removePodLink(h, "c1", pod.path, "eth0");
    assert.deepEqual(await closeRemovalBatch(inner), []);
    assert.deepEqual(await ipLinkNames(pod), ["eth0", "lo", "peer0"]);
    assert.deepEqual(await closeRemovalBatch(outer), []);
    assert.deepEqual(await ipLinkNames(pod), ["lo"]);
    const gone = openRemovalBatch("c3", "/var/run/netns/hydra-test-no-such-namespace");
    gone.links.set(12345, 0);
    gone.flush = flushRemovalBatch;
    assert.deepEqual(await closeRemovalBatch(gone), []);
  }),
);

Deno.test(
  "a deferred batch frees the pod's names when it closes and deletes its links right after",
  inNetns(1, async (h, pod) => {
    const failures: string[] = [];
    const stop = deferLinkDeletion((netns, err) => failures.push(`${netns}: ${err.message}`));
    try {
      addLink(h, { kind: "veth", name: "eth0", peer: { name: "peer0" } });
      addLink(h, { kind: "veth", name: "net1", peer: { name: "peer1" } });
      const batch = openRemovalBatch("c1", pod.path);
      const eth0 = getLink(h, "eth0").index;
      removePodLink(h, "c1", pod.path, "eth0");
      removePodLink(h, "c1", pod.path, "net1");
      // Still there until the batch closes, down and out of the pod's names.
      const parked = await pod.ipJson<IpLink[]>("link", "show", "dev", parkedName(eth0));
      assert.equal(parked[0].operstate, "DOWN");
      assert.deepEqual(await closeRemovalBatch(batch), []);
      const names = await ipLinkNames(pod);
      assert.ok(!names.includes("eth0") && !names.includes("net1"), names.join());
      // The runtime may ADD again at once: the name is free.
      addLink(h, { kind: "veth", name: "eth0", peer: { name: "peer2" } });
      assert.equal(await settleDeferredDeletions(10_000), true);
      assert.deepEqual(await ipLinkNames(pod), ["eth0", "lo", "peer2"]);
      assert.deepEqual(failures, []);
    } finally {
      stop();
    }
    // Batches opened afterwards delete before closing returns, as before.
    const batch = openRemovalBatch("c2", pod.path);
    removePodLink(h, "c2", pod.path, "eth0");
    await closeRemovalBatch(batch);
    assert.deepEqual(await ipLinkNames(pod), ["lo"]);
  }),
);

/** A macvlan `name` on a veth parent, up, with an address and a route of each family. */
function runningMacvlan(h: Handle, name: string, n: number): number {
  addLink(h, { kind: "veth", name: `up${n}`, peer: { name: `upp${n}` } });
  addLink(h, { kind: "macvlan", name, parent: `up${n}`, mode: "bridge" });
  setLinkUp(h, `up${n}`);
  setLinkUp(h, name);
  addAddr(h, name, `10.9.${n}.5/24`);
  addAddr(h, name, `fd00:9:${n}::5/64`, { nodad: true });
  addRoute(h, { dst: `10.99.${n}.0/24`, gateway: `10.9.${n}.1` });
  addRoute(h, { dst: `fd00:99:${n}::/64`, gateway: `fd00:9:${n}::1` });
  return getLink(h, name).index;
}

async function routesVia(ns: TestNetns, dev: string): Promise<string[]> {
  const routes: IpLink[] = [
    ...await ns.ipJson<IpLink[]>("-4", "route", "show", "table", "all", "dev", dev),
    ...await ns.ipJson<IpLink[]>("-6", "route", "show", "table", "all", "dev", dev),
  ];
  // The kernel's own multicast route of an IPv6 link says nothing of the pod.
  return routes.filter((r) => r.dst !== "ff00::/8").map((r) => r.dst);
}

Deno.test(
  "keepUp parks a running link stripped of its addresses and routes, then deletes it",
  inNetns(1, async (h, pod) => {
    // Older kernels rename only links that are down: there it goes down as before.
    const live = kernelRenamesRunningLinks(h);
    const stop = deferLinkDeletion(() => {});
    try {
      const index = runningMacvlan(h, "net1", 1);
      const batch = openRemovalBatch("c1", pod.path);
      removePodLink(h, "c1", pod.path, "net1", { keepUp: true });
      const parked = parkedName(index);
      const [link] = await pod.ipJson<IpLink[]>("addr", "show", "dev", parked);
      assert.equal(link.flags.includes("UP"), live, link.flags.join());
      if (live) assert.deepEqual(link.addr_info, []);
      assert.deepEqual(await routesVia(pod, parked), []);
      assert.deepEqual(await closeRemovalBatch(batch), []);
      assert.equal(await settleDeferredDeletions(10_000), true);
      assert.ok(!(await ipLinkNames(pod)).includes(parked));
    } finally {
      stop();
    }
  }),
);

Deno.test(
  "keepUp brings the link down after all when a multipath route goes through it",
  inNetns(1, async (h, pod) => {
    const stop = deferLinkDeletion(() => {});
    try {
      const index = runningMacvlan(h, "net1", 1);
      runningMacvlan(h, "net2", 2);
      await pod.exec(
        "ip",
        ...["route", "add", "10.77.0.0/16", "nexthop", "via", "10.9.1.1", "dev", "net1"],
        ...["nexthop", "via", "10.9.2.1", "dev", "net2"],
      );
      const batch = openRemovalBatch("c1", pod.path);
      removePodLink(h, "c1", pod.path, "net1", { keepUp: true });
      const [link] = await pod.ipJson<IpLink[]>("link", "show", "dev", parkedName(index));
      assert.ok(!link.flags.includes("UP"), link.flags.join());
      assert.deepEqual(await closeRemovalBatch(batch), []);
      assert.equal(await settleDeferredDeletions(10_000), true);
      assert.deepEqual(await ipLinkNames(pod), ["lo", "net2", "up1", "up2", "upp1", "upp2"]);
    } finally {
      stop();
    }
  }),
);
