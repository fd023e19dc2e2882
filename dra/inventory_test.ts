/**
 * The host NIC pool: which links of a real namespace are offered (not the
 * uplink and its bridge, not enslaved ports, loopback, excluded kinds or
 * names), what sysfs adds where it has something (the real /sys of this
 * machine, and a sysfs tree standing in for SR-IOV, NUMA and RDMA hardware
 * this machine lacks), and that sysfs of another namespace is not read.
 * Needs root for the namespace tests.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { withNetns, withTempDir } from "../tests/helpers/netns.ts";
import { closeHandle, openHandle } from "../netlink/socket.ts";
import { addLink, findLink, listLinks } from "../netlink/link.ts";
import { addAddr } from "../netlink/addr.ts";
import { addRoute } from "../netlink/route.ts";
import {
  DEFAULT_EXCLUDE,
  DEFAULT_EXCLUDE_KINDS,
  globToRegExp,
  listHostNics,
  type NicFilter,
} from "./inventory.ts";
import { readSysfs } from "./sysfs.ts";
import { nicDevice } from "./devices.ts";

const defaults: NicFilter = {
  include: [],
  exclude: DEFAULT_EXCLUDE,
  excludeKinds: DEFAULT_EXCLUDE_KINDS,
};

Deno.test("inventory: globs", () => {
  assert.ok(globToRegExp("veth*").test("veth1234"));
  assert.ok(!globToRegExp("veth*").test("myveth"));
  assert.ok(globToRegExp("eth?").test("eth1"));
  assert.ok(!globToRegExp("a.b").test("axb"), "a dot is a dot");
});

Deno.test("inventory: the pool of a namespace leaves out uplink, bridges, ports, loopback and excluded names", () =>
  withNetns(2, (node, wire) => {
    const h = openHandle({ netnsPath: node.path });
    try {
      // The uplink: a bridge holding the default route, with a port.
      addLink(h, { kind: "bridge", name: "br-up", up: true });
      addLink(h, {
        kind: "veth",
        name: "upport",
        peer: { name: "w-up", netns: wire.path },
        master: "br-up",
        up: true,
      });
      addAddr(h, "br-up", "192.0.2.2/24");
      addRoute(h, { dst: "default", gateway: "192.0.2.1" });
      // Candidates.
      addLink(h, {
        kind: "veth",
        name: "nica",
        peer: { name: "w-a", netns: wire.path },
        mtu: 9000,
      });
      addLink(h, { kind: "veth", name: "nicb", peer: { name: "w-b", netns: wire.path } });
      addLink(h, { kind: "macvlan", name: "nicm", parent: "nicb", mode: "bridge" });
      addLink(h, { kind: "veth", name: "veth1", peer: { name: "w-c", netns: wire.path } });
      addLink(h, { kind: "vxlan", name: "ovl", vni: 42, port: 4789 });
      const names = (f: NicFilter) => listHostNics(h, f).map((n) => n.name);
      assert.deepEqual(names(defaults), ["nica", "nicb", "nicm"]);
      assert.deepEqual(names({ ...defaults, include: ["nic?"] }), ["nica", "nicb", "nicm"]);
      assert.deepEqual(names({ ...defaults, include: ["nica"] }), ["nica"]);
      assert.deepEqual(names({ ...defaults, exclude: [] }), ["nica", "nicb", "nicm", "veth1"]);
      assert.deepEqual(names({ ...defaults, excludeKinds: [] }), ["nica", "nicb", "nicm", "ovl"]);
      const a = listHostNics(h, defaults).find((n) => n.name === "nica")!;
      assert.equal(a.mtu, 9000);
      assert.equal(a.linkKind, "veth");
      assert.equal(a.mac, findLink(h, "nica")!.mac);
      // Virtual links have no hardware in sysfs (and this process's /sys is another namespace's).
      assert.deepEqual(a.sysfs, {});
      const dev = nicDevice(a);
      assert.equal(dev.name, "nic-nica");
      assert.deepEqual(dev.attributes, {
        kind: { string: "nic" },
        ifName: { string: "nica" },
        mac: { string: a.mac },
        mtu: { int: 9000 },
        linkKind: { string: "veth" },
      });
      const m = listHostNics(h, defaults).find((n) => n.name === "nicm")!;
      assert.deepEqual(nicDevice(m).attributes.linkKind, { string: "macvlan" });
    } finally {
      closeHandle(h);
    }
    return Promise.resolve();
  }));

Deno.test("sysfs: this machine's own links, as readlink sees them", () => {
  const h = openHandle();
  try {
    let checked = 0;
    for (const l of listLinks(h)) {
      const info = readSysfs("/sys", l.name, l.index);
      let device: string | undefined;
      try {
        device = Deno.realPathSync(`/sys/class/net/${l.name}/device`);
      } catch {
        device = undefined;
      }
      if (!device) {
        assert.deepEqual(info, {}, `${l.name} has no device in sysfs`);
        continue;
      }
      checked++;
      const pci = device.split("/").filter((p) =>
        /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(p)
      ).pop();
      assert.equal(info.pciAddress, pci, `${l.name}: PCI address`);
      assert.equal(
        info.driver,
        Deno.realPathSync(`/sys/class/net/${l.name}/device/driver`).split("/").pop(),
      );
      if (pci) assert.match(info.pcieRoot ?? "", /^pci[0-9a-f]{4}:[0-9a-f]{2}$/);
      // A link name of another namespace with another index is not read.
      assert.deepEqual(readSysfs("/sys", l.name, l.index + 100000), {});
    }
    if (checked === 0) console.warn("no link with a device in sysfs here; only the empty case ran");
  } finally {
    closeHandle(h);
  }
});

Deno.test("sysfs: SR-IOV PF and VF, NUMA, RDMA from a stand-in sysfs tree", () =>
  withTempDir(async (root) => {
    const dev = (addr: string) => join(root, "devices/pci0000:3a/0000:3a:00.0", addr);
    const mk = async (ifName: string, addr: string, index: number) => {
      await Deno.mkdir(join(root, "class/net", ifName), { recursive: true });
      await Deno.mkdir(join(dev(addr), "net", ifName), { recursive: true });
      await Deno.writeTextFile(join(root, "class/net", ifName, "ifindex"), `${index}\n`);
      await Deno.symlink(dev(addr), join(root, "class/net", ifName, "device"));
      await Deno.mkdir(join(root, "bus/pci/drivers/mlx5_core"), { recursive: true });
      await Deno.symlink(join(root, "bus/pci/drivers/mlx5_core"), join(dev(addr), "driver"));
    };
    await mk("pf0", "0000:3b:00.0", 7);
    await Deno.writeTextFile(join(dev("0000:3b:00.0"), "numa_node"), "1\n");
    await Deno.writeTextFile(join(dev("0000:3b:00.0"), "sriov_totalvfs"), "8\n");
    await Deno.mkdir(join(dev("0000:3b:00.0"), "infiniband/mlx5_0"), { recursive: true });
    await mk("vf3", "0000:3b:00.4", 9);
    await Deno.writeTextFile(join(dev("0000:3b:00.4"), "numa_node"), "-1\n");
    await Deno.symlink(dev("0000:3b:00.0"), join(dev("0000:3b:00.4"), "physfn"));
    assert.deepEqual(readSysfs(root, "pf0", 7), {
      driver: "mlx5_core",
      pciAddress: "0000:3b:00.0",
      pcieRoot: "pci0000:3a",
      numaNode: 1,
      sriovTotalVfs: 8,
      rdma: true,
    });
    assert.deepEqual(readSysfs(root, "vf3", 9), {
      driver: "mlx5_core",
      pciAddress: "0000:3b:00.4",
      pcieRoot: "pci0000:3a",
      sriovVf: true,
      sriovPfName: "pf0",
    });
    const attrs = nicDevice({
      name: "vf3",
      index: 9,
      mac: "02:00:00:00:00:09",
      mtu: 1500,
      linkKind: "physical",
      up: true,
      sysfs: readSysfs(root, "pf0", 7),
    }).attributes;
    assert.deepEqual(attrs["resource.kubernetes.io/pcieRoot"], { string: "pci0000:3a" });
    assert.deepEqual(attrs.numaNode, { int: 1 });
    assert.deepEqual(attrs.rdma, { bool: true });
    assert.deepEqual(attrs.sriovTotalVfs, { int: 8 });
  }));
