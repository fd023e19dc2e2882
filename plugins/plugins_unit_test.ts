/**
 * Unit tests of the built-in plugins' pure parts: config reading, names and
 * hashes shared with the reference plugins, gateway computation, sysctl
 * paths, tunnel MACs.
 */

import assert from "node:assert/strict";
import { CniError } from "../cni/errors.ts";
import type { CmdArgs, NetConf, Result } from "../cni/types.ts";
import { addGateways } from "./bridge_gateway.ts";
import { parseBridgeConf, parseVlanTrunk } from "./bridge_conf.ts";
import { masqChainName, masqComment, nftComment, splitRuleLine } from "./ipmasq.ts";
import { sysctlFile } from "./tuning.ts";
import { vtepMac, vxlanBridgeName, vxlanDeviceName } from "./vxlan.ts";

function cmd(config: Record<string, unknown>, args = ""): CmdArgs {
  return {
    command: "ADD",
    containerId: "c1",
    netns: "/var/run/netns/x",
    ifName: "eth0",
    args,
    path: [],
    stdinData: new TextEncoder().encode(JSON.stringify(config)),
    config: config as NetConf,
  };
}

function code(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CniError, String(e));
    return e.code;
  }
  assert.fail("no error");
}

Deno.test("masquerade names and comments are the reference plugins' (values observed from them)", async () => {
  assert.equal(await masqChainName("t1", "c1"), "CNI-87402a8d3893a3f03d2a7566");
  assert.equal(masqComment("t1", "c1"), 'name: "t1" id: "c1"');
  assert.equal(
    await nftComment({ network: "nf", ifName: "eth0", containerId: "c1" }),
    "89dd549a5098686b-f4d01f2ef4b92245, net: nf, if: eth0, id: c1",
  );
  const long = await nftComment({ network: "n".repeat(200), ifName: "eth0", containerId: "c" });
  assert.equal(long.length, 128);
});

Deno.test("iptables -S lines split into the words to delete them with", () => {
  assert.deepEqual(
    splitRuleLine(
      '-A POSTROUTING -s 10.1.0.2/32 -m comment --comment "name: \\"a b\\" id: \\"c\\"" -j CNI-x',
    ),
    [
      "-A",
      "POSTROUTING",
      "-s",
      "10.1.0.2/32",
      "-m",
      "comment",
      "--comment",
      'name: "a b" id: "c"',
      "-j",
      "CNI-x",
    ],
  );
});

Deno.test("bridge config: defaults, MAC precedence, refused fields", () => {
  const base = { cniVersion: "1.1.0", name: "n", type: "hydra-bridge" };
  const c = parseBridgeConf(cmd(base));
  assert.equal(c.bridge, "cni0");
  assert.equal(c.isGateway, false);
  assert.equal(c.mac, undefined);
  assert.equal(parseBridgeConf(cmd({ ...base, isDefaultGateway: true })).isGateway, true);
  const macs = {
    ...base,
    args: { cni: { mac: "0a:00:00:00:00:02" } },
    runtimeConfig: { mac: "0a:00:00:00:00:03" },
  };
  assert.equal(parseBridgeConf(cmd(macs, "MAC=0a:00:00:00:00:01")).mac, "0a:00:00:00:00:03");
  assert.equal(
    parseBridgeConf(cmd({ ...base, args: macs.args }, "MAC=0a:00:00:00:00:01")).mac,
    "0a:00:00:00:00:02",
  );
  assert.equal(parseBridgeConf(cmd(base, "MAC=0a:00:00:00:00:01")).mac, "0a:00:00:00:00:01");
  assert.equal(code(() => parseBridgeConf(cmd(base, "FOO=1"))), 4);
  assert.equal(code(() => parseBridgeConf(cmd({ ...base, macspoofchk: true }))), 2);
  assert.equal(code(() => parseBridgeConf(cmd({ ...base, vlan: -1 }))), 7);
  assert.equal(code(() => parseBridgeConf(cmd({ ...base, isGateway: "yes" }))), 6);
  assert.equal(code(() => parseBridgeConf(cmd({ ...base, ipMasqBackend: "pf" }))), 7);
});

Deno.test("vlanTrunk expands ids and ranges, sorted and unique; bad entries are refused", () => {
  assert.deepEqual(parseVlanTrunk([{ id: 7 }, { minID: 3, maxID: 5 }, { id: 4 }]), [3, 4, 5, 7]);
  assert.deepEqual(parseVlanTrunk(undefined), []);
  for (const bad of [{ minID: 3 }, { maxID: 3 }, { minID: 5, maxID: 3 }, { id: 0 }, { id: 4095 }]) {
    assert.equal(code(() => parseVlanTrunk([bad])), 7, JSON.stringify(bad));
  }
});

Deno.test("gateways: first address of the subnet when missing, one default route per family", () => {
  const r: Result = {
    cniVersion: "1.1.0",
    ips: [
      { address: "10.1.0.5/16" },
      { address: "10.2.0.5/24", gateway: "10.2.0.254" },
      { address: "fd00::5/64" },
    ],
    routes: [{ dst: "::/0", gw: "fd00::99" }],
  };
  const gws = addGateways(r, { isGateway: true, isDefaultGateway: true });
  assert.deepEqual(gws, ["10.1.0.1/16", "10.2.0.254/24", "fd00::1/64"]);
  assert.deepEqual(r.ips!.map((i) => [i.interface, i.gateway]), [
    [2, "10.1.0.1"],
    [2, "10.2.0.254"],
    [2, "fd00::1"],
  ]);
  assert.deepEqual(r.routes, [{ dst: "::/0", gw: "fd00::99" }, {
    dst: "0.0.0.0/0",
    gw: "10.1.0.1",
  }]);
  const l2: Result = { cniVersion: "1.1.0", ips: [{ address: "10.1.0.5/16" }] };
  assert.deepEqual(addGateways(l2, { isGateway: false, isDefaultGateway: false }), []);
  assert.equal(l2.ips![0].gateway, undefined);
});

Deno.test("tuning sysctl keys: dots, slashes, IFNAME, and nothing outside /proc/sys/net", () => {
  assert.equal(
    sysctlFile("net.ipv4.conf.IFNAME.arp_filter", "eth0.100"),
    "/proc/sys/net/ipv4/conf/eth0.100/arp_filter",
  );
  assert.equal(
    sysctlFile("net/ipv6/conf/all/forwarding", "eth0"),
    "/proc/sys/net/ipv6/conf/all/forwarding",
  );
  assert.equal(sysctlFile("/net/core/somaxconn", "eth0"), "/proc/sys/net/core/somaxconn");
  for (const bad of ["kernel.hostname", "net", "/kernel/x", "vm/swappiness"]) {
    assert.equal(code(() => sysctlFile(bad, "eth0")), 7, bad);
  }
});

Deno.test("vxlan: tunnel MACs come from the underlay address; default names fit an interface name", () => {
  assert.equal(vtepMac("192.168.0.10"), "0e:68:c0:a8:00:0a");
  assert.equal(vtepMac("fd00::1"), "0e:68:fd:00:00:01");
  assert.notEqual(vtepMac("fd00::1"), vtepMac("fd00::2"));
  assert.equal(vxlanDeviceName(16777215), "hydravx16777215");
  assert.ok(vxlanBridgeName(16777215).length <= 15);
});
