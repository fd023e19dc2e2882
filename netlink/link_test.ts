import assert from "node:assert/strict";
import { inNetns } from "../tests/helpers/netlink.ts";
import type { TestNetns } from "../tests/helpers/netns.ts";
import {
  addBridgeVlan,
  addLink,
  closeFd,
  closeHandle,
  delBridgeVlan,
  delLink,
  findLink,
  getLink,
  isExists,
  isNotFound,
  linkIndex,
  listBridgeVlans,
  listLinks,
  NetlinkError,
  openHandle,
  openNetnsFd,
  setBridgePort,
  setLink,
  setLinkAlias,
  setLinkDown,
  setLinkHairpin,
  setLinkMac,
  setLinkMaster,
  setLinkMtu,
  setLinkName,
  setLinkNetns,
  setLinkPromisc,
  setLinkUp,
} from "./mod.ts";

// deno-lint-ignore no-explicit-any
type IpLink = Record<string, any>;

async function ipLink(ns: TestNetns, name: string): Promise<IpLink> {
  const [link] = await ns.ipJson<IpLink[]>("-d", "link", "show", "dev", name);
  return link;
}

async function ipLinkNames(ns: TestNetns): Promise<string[]> {
  return (await ns.ipJson<IpLink[]>("link", "show")).map((l) => l.ifname).sort();
}

Deno.test(
  "veth pair: both ends exist, are peers, and come up with the given MTU",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "veth", name: "va", peer: { name: "vb", mtu: 1400 }, mtu: 1400, up: true });
    const a = await ipLink(ns, "va");
    const b = await ipLink(ns, "vb");
    assert.equal(a.linkinfo.info_kind, "veth");
    assert.equal(a.mtu, 1400);
    assert.equal(b.mtu, 1400);
    assert.ok(a.flags.includes("UP"));
    const got = getLink(h, "va");
    assert.equal(got.index, a.ifindex);
    assert.equal(got.kind, "veth");
    assert.equal(got.link, b.ifindex);
    assert.equal(got.mac, a.address);
    assert.equal(got.up, true);
    assert.equal(got.mtu, 1400);
  }),
);

Deno.test(
  "veth with its peer created directly in another namespace",
  inNetns(2, async (h, host, pod) => {
    addLink(h, {
      kind: "veth",
      name: "host0",
      peer: { name: "eth0", netns: pod.path, mac: "02:11:22:33:44:55" },
    });
    assert.deepEqual(await ipLinkNames(host), ["host0", "lo"]);
    const eth0 = await ipLink(pod, "eth0");
    assert.equal(eth0.address, "02:11:22:33:44:55");
    const hostEnd = getLink(h, "host0");
    assert.notEqual(hostEnd.linkNetnsId, undefined, "peer is reported as living in another netns");
    const ph = openHandle({ netnsPath: pod.path });
    try {
      assert.equal(getLink(ph, "eth0").link, hostEnd.index);
    } finally {
      closeHandle(ph);
    }
  }),
);

Deno.test(
  "veth end created directly in a target namespace via netns",
  inNetns(2, async (h, host, pod) => {
    addLink(h, { kind: "veth", name: "eth0", netns: pod.path, peer: { name: "vhost" } });
    assert.deepEqual(await ipLinkNames(host), ["lo", "vhost"]);
    assert.deepEqual(await ipLinkNames(pod), ["eth0", "lo"]);
  }),
);

Deno.test(
  "bridge with MTU; port enslaved, hairpin on/off, released again",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "bridge", name: "br0", mtu: 1450, up: true });
    addLink(h, { kind: "veth", name: "va", peer: { name: "vb" }, mtu: 1450 });
    const br = await ipLink(ns, "br0");
    assert.equal(br.linkinfo.info_kind, "bridge");
    assert.equal(br.mtu, 1450);
    assert.equal(getLink(h, "br0").bridge?.vlanFiltering, false);

    setLinkMaster(h, "va", "br0");
    assert.equal((await ipLink(ns, "va")).master, "br0");
    assert.equal(getLink(h, "va").master, getLink(h, "br0").index);
    assert.deepEqual(listLinks(h, { master: "br0" }).map((l) => l.name), ["va"]);

    setLinkHairpin(h, "va", true);
    assert.equal((await ipLink(ns, "va")).linkinfo.info_slave_data.hairpin, true);
    assert.equal(getLink(h, "va").bridgePort?.hairpin, true);
    setBridgePort(h, "va", { hairpin: false, learning: false });
    const slave = (await ipLink(ns, "va")).linkinfo.info_slave_data;
    assert.equal(slave.hairpin, false);
    assert.equal(slave.learning, false);

    setLinkMaster(h, "va", null);
    assert.equal((await ipLink(ns, "va")).master, undefined);
    assert.equal(getLink(h, "va").master, undefined);
  }),
);

Deno.test(
  "macvlan on a veth parent, created inside the pod namespace",
  inNetns(2, async (h, host, pod) => {
    addLink(h, { kind: "veth", name: "uplink", peer: { name: "uplink-p" }, up: true });
    addLink(h, {
      kind: "macvlan",
      name: "mv0",
      parent: "uplink",
      mode: "bridge",
      mtu: 1400,
      netns: pod.path,
    });
    assert.ok(!(await ipLinkNames(host)).includes("mv0"));
    const mv = await ipLink(pod, "mv0");
    assert.equal(mv.linkinfo.info_kind, "macvlan");
    assert.equal(mv.linkinfo.info_data.mode, "bridge");
    assert.equal(mv.mtu, 1400);
    // Modes round-trip through parsing.
    addLink(h, { kind: "macvlan", name: "mv1", parent: "uplink", mode: "private" });
    assert.equal((await ipLink(host, "mv1")).linkinfo.info_data.mode, "private");
    assert.deepEqual(getLink(h, "mv1").macvlan, { mode: "private" });
    assert.equal(getLink(h, "mv1").link, linkIndex(h, "uplink"));
  }),
);

Deno.test(
  "vxlan with vni, local, remote, port, underlay device, learning off, MTU",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "veth", name: "under", peer: { name: "under-p" } });
    addLink(h, {
      kind: "vxlan",
      name: "vx0",
      vni: 4242,
      local: "10.9.0.1",
      remote: "10.9.0.2",
      port: 4789,
      parent: "under",
      learning: false,
      mtu: 1400,
    });
    const vx = await ipLink(ns, "vx0");
    const d = vx.linkinfo.info_data;
    assert.equal(vx.linkinfo.info_kind, "vxlan");
    assert.equal(d.id, 4242);
    assert.equal(d.local, "10.9.0.1");
    assert.equal(d.remote, "10.9.0.2");
    assert.equal(d.port, 4789);
    assert.equal(d.link, "under");
    assert.equal(d.learning, false);
    assert.equal(vx.mtu, 1400);
    const got = getLink(h, "vx0").vxlan!;
    assert.equal(got.vni, 4242);
    assert.equal(got.local, "10.9.0.1");
    assert.equal(got.remote, "10.9.0.2");
    assert.equal(got.port, 4789);
    assert.equal(got.parent, linkIndex(h, "under"));
    assert.equal(got.learning, false);
    // IPv6 underlay and a multicast group instead of a remote.
    addLink(h, { kind: "vxlan", name: "vx6", vni: 7, local: "fd00::1", port: 8472 });
    assert.equal((await ipLink(ns, "vx6")).linkinfo.info_data.local6, "fd00::1");
    assert.equal(getLink(h, "vx6").vxlan?.local, "fd00::1");
    addLink(h, { kind: "vxlan", name: "vxg", vni: 8, group: "239.1.1.1", parent: "under" });
    assert.equal(getLink(h, "vxg").vxlan?.group, "239.1.1.1");
    assert.equal(getLink(h, "vxg").vxlan?.remote, undefined);
  }),
);

Deno.test(
  "tap device, persistent, with MTU and up",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "tap", name: "tap0", mtu: 1300, up: true });
    const tap = await ipLink(ns, "tap0");
    assert.equal(tap.linkinfo.info_kind, "tun");
    assert.equal(tap.linkinfo.info_data.type, "tap");
    assert.equal(tap.mtu, 1300);
    assert.ok(tap.flags.includes("UP"));
    delLink(h, "tap0");
    assert.deepEqual(await ipLinkNames(ns), ["lo"]);
  }),
);

Deno.test(
  "set up/down, MTU, MAC, alias, promisc, rename",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "veth", name: "va", peer: { name: "vb" } });
    setLinkUp(h, "va");
    assert.ok((await ipLink(ns, "va")).flags.includes("UP"));
    setLinkDown(h, "va");
    assert.ok(!(await ipLink(ns, "va")).flags.includes("UP"));
    setLinkMtu(h, "va", 9000);
    assert.equal((await ipLink(ns, "va")).mtu, 9000);
    setLinkMac(h, "va", "02:aa:bb:cc:dd:ee");
    assert.equal((await ipLink(ns, "va")).address, "02:aa:bb:cc:dd:ee");
    setLinkAlias(h, "va", "pod uplink");
    assert.equal((await ipLink(ns, "va")).ifalias, "pod uplink");
    assert.equal(getLink(h, "va").alias, "pod uplink");
    setLinkAlias(h, "va", "");
    assert.equal(getLink(h, "va").alias, undefined);
    setLinkPromisc(h, "va", true);
    assert.ok((await ipLink(ns, "va")).flags.includes("PROMISC"));
    assert.ok(getLink(h, "va").promiscuity > 0);
    setLinkPromisc(h, "va", false);
    assert.ok(!(await ipLink(ns, "va")).flags.includes("PROMISC"));
    const index = linkIndex(h, "va");
    setLinkName(h, "va", "renamed0");
    assert.equal(getLink(h, index).name, "renamed0");
    assert.deepEqual(await ipLinkNames(ns), ["lo", "renamed0", "vb"]);
    // Several changes in one request.
    setLink(h, index, { mtu: 1280, up: true, alias: "x" });
    const l = await ipLink(ns, "renamed0");
    assert.equal(l.mtu, 1280);
    assert.ok(l.flags.includes("UP"));
    assert.equal(l.ifalias, "x");
  }),
);

Deno.test(
  "move a link to another namespace, renamed there, and back",
  inNetns(2, async (h, host, pod) => {
    addLink(h, { kind: "veth", name: "dev0", peer: { name: "dev0p" } });
    setLinkNetns(h, "dev0", pod.path, "net1");
    assert.deepEqual(await ipLinkNames(pod), ["lo", "net1"]);
    assert.equal(findLink(h, "dev0"), undefined);
    // Back by an open namespace fd.
    const ph = openHandle({ netnsPath: pod.path });
    const hostFd = openNetnsFd(host.path);
    try {
      setLinkNetns(ph, "net1", { fd: hostFd }, "dev0");
    } finally {
      closeFd(hostFd);
      closeHandle(ph);
    }
    assert.deepEqual(await ipLinkNames(host), ["dev0", "dev0p", "lo"]);
    assert.deepEqual(await ipLinkNames(pod), ["lo"]);
    // By name, keeping the name.
    setLinkNetns(h, "dev0p", pod.path);
    assert.deepEqual(await ipLinkNames(pod), ["dev0p", "lo"]);
    assert.equal(getLink(h, "dev0").linkNetnsId !== undefined, true, "peer now elsewhere");
  }),
);

Deno.test(
  "list links with kind filter and parsed fields matching ip",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "veth", name: "va", peer: { name: "vb" } });
    addLink(h, { kind: "bridge", name: "br0" });
    const all = listLinks(h);
    const ip = await ns.ipJson<IpLink[]>("link", "show");
    assert.deepEqual(all.map((l) => [l.index, l.name]), ip.map((l) => [l.ifindex, l.ifname]));
    for (const l of ip) {
      const mine = all.find((x) => x.index === l.ifindex)!;
      assert.equal(mine.mtu, l.mtu);
      assert.equal(mine.operstate, l.operstate);
      assert.equal(mine.mac, l.address);
    }
    assert.deepEqual(listLinks(h, { kind: "veth" }).map((l) => l.name).sort(), ["va", "vb"]);
    assert.deepEqual(listLinks(h, { kind: "bridge" }).map((l) => l.name), ["br0"]);
  }),
);

Deno.test(
  "delete removes both ends of a veth pair",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "veth", name: "va", peer: { name: "vb" } });
    delLink(h, "va");
    assert.deepEqual(await ipLinkNames(ns), ["lo"]);
  }),
);

Deno.test(
  "errors: EEXIST for a taken name, ENODEV for missing devices",
  inNetns(1, (h) => {
    addLink(h, { kind: "bridge", name: "br0" });
    assert.throws(
      () => addLink(h, { kind: "bridge", name: "br0" }),
      (e) => isExists(e) && e.errno === 17 && e.message.includes("br0"),
    );
    assert.throws(
      () => addLink(h, { kind: "veth", name: "br0", peer: { name: "x0" } }),
      (e) => isExists(e),
    );
    assert.throws(
      () => getLink(h, "nosuch0"),
      (e) => e instanceof NetlinkError && e.code === "ENODEV",
    );
    assert.throws(() => getLink(h, 999999), (e) => isNotFound(e));
    assert.throws(
      () => delLink(h, "nosuch0"),
      (e) => e instanceof NetlinkError && e.code === "ENODEV",
    );
    assert.throws(() => setLinkUp(h, "nosuch0"), (e) => isNotFound(e));
    assert.throws(
      () => addLink(h, { kind: "macvlan", name: "mv0", parent: 999999 }),
      (e) => e instanceof NetlinkError && e.code === "ENODEV",
    );
    assert.throws(
      () => addLink(h, { kind: "macvlan", name: "mv0", parent: "nosuch0" }),
      (e) => e instanceof NetlinkError && e.code === "ENODEV",
    );
    assert.equal(findLink(h, "nosuch0"), undefined);
    for (const bad of ["", "sixteen-bytes-xx", "a/b", "a b", "a:b", ".."]) {
      assert.throws(
        () => addLink(h, { kind: "bridge", name: bad }),
        (e) => e instanceof NetlinkError && e.code === "EINVAL",
        bad,
      );
    }
    assert.throws(
      () => setLinkName(h, "br0", "x".repeat(16)),
      (e) => e instanceof NetlinkError && e.code === "EINVAL",
    );
  }),
);

Deno.test(
  "bridge port VLANs: added and removed, or EOPNOTSUPP on kernels without VLAN filtering",
  inNetns(1, async (h, ns) => {
    addLink(h, { kind: "bridge", name: "br0" });
    addLink(h, { kind: "veth", name: "va", peer: { name: "vb" }, master: "br0" });
    assert.throws(() => addBridgeVlan(h, "va", { vid: 4095 }), RangeError);
    // Which outcome is right is the kernel's to say: a bridge shows vlan_filtering in sysfs
    // exactly when the kernel was built with VLAN filtering.
    const filtering = (await ns.exec("ls", "/sys/class/net/br0/bridge/")).split(/\s+/)
      .includes("vlan_filtering");
    if (!filtering) {
      assert.throws(
        () => addBridgeVlan(h, "va", { vid: 10, pvid: true, untagged: true }),
        (e) => e instanceof NetlinkError && e.code === "EOPNOTSUPP",
      );
      return;
    }
    addBridgeVlan(h, "va", { vid: 10, pvid: true, untagged: true });
    const show = async () => JSON.parse(await ns.exec("bridge", "-j", "vlan", "show", "dev", "va"));
    const [port] = await show();
    const v10 = port.vlans.find((v: { vlan: number }) => v.vlan === 10);
    assert.deepEqual(v10.flags.sort(), ["Egress Untagged", "PVID"]);
    addBridgeVlan(h, "va", { vid: 20 });
    const listed = listBridgeVlans(h, "va").sort((a, b) => a.vid - b.vid);
    assert.deepEqual(
      listed.filter((v) => v.vid === 10 || v.vid === 20),
      [{ vid: 10, pvid: true, untagged: true }, { vid: 20, pvid: false, untagged: false }],
    );
    assert.deepEqual(
      listed.map((v) => v.vid),
      port.vlans.map((v: { vlan: number }) => v.vlan).concat(20).sort((a: number, b: number) =>
        a - b
      ),
    );
    delBridgeVlan(h, "va", { vid: 20 });
    delBridgeVlan(h, "va", { vid: 10 });
    const after = await show();
    assert.ok(
      !after.some((p: { vlans: Array<{ vlan: number }> }) => p.vlans.some((v) => v.vlan === 10)),
    );
  }),
);
