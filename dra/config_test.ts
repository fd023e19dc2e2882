/** Device config from classes and claims: merging, validation and the messages users see. */

import assert from "node:assert/strict";
import {
  type AllocationConfig,
  DeviceConfigError,
  mergedParameters,
  parseNetworkConfig,
  parseNicConfig,
} from "./config.ts";
import { kindOfDevice, nicDeviceName } from "../drasandbox/names.ts";

const opaque = (
  parameters: unknown,
  source = "FromClaim",
  requests?: string[],
): AllocationConfig => ({
  source,
  requests,
  opaque: { driver: "hydra.clusternet.io", parameters },
});

Deno.test("config: class first, claim wins, other drivers and requests ignored", () => {
  const configs: AllocationConfig[] = [
    opaque({ interface: "claim0", mtu: 9000 }, "FromClaim"),
    opaque({ interface: "class0", routes: [], apiVersion: "x/v1", kind: "NicConfig" }, "FromClass"),
    opaque({ mtu: 1 }, "FromClaim", ["other"]),
    { source: "FromClaim", opaque: { driver: "gpu.example.com", parameters: { mtu: 2 } } },
  ];
  assert.deepEqual(mergedParameters(configs, "nic"), {
    interface: "claim0",
    routes: [],
    mtu: 9000,
  });
  assert.deepEqual(mergedParameters(configs, "other"), { interface: "claim0", routes: [], mtu: 1 });
  assert.throws(() => mergedParameters([opaque([1])], "r"), /parameters must be an object/);
  // IPAM runs a plugin as root with its settings: a class's choice, not a claim's.
  const ipam = { ipam: { type: "host-local", dataDir: "/etc" } };
  assert.throws(
    () => mergedParameters([opaque(ipam)], "r"),
    /"ipam" may only be set in a DeviceClass/,
  );
  assert.deepEqual(mergedParameters([opaque(ipam, "FromClass")], "r"), ipam);
});

Deno.test("config: host NIC settings and their errors", () => {
  const w = 'claim ns/c request "nic"';
  assert.deepEqual(parseNicConfig({}, w), { routes: [] });
  assert.deepEqual(
    parseNicConfig({
      interface: "data0",
      mtu: 9000,
      addresses: ["10.0.0.5/24"],
      routes: [{ dst: "10.1.0.0/16", gw: "10.0.0.1" }],
    }, w),
    {
      interface: "data0",
      mtu: 9000,
      addresses: ["10.0.0.5/24"],
      routes: [{ dst: "10.1.0.0/16", gw: "10.0.0.1" }],
    },
  );
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ interface: "this-name-is-too-long" }, /longer than 15 bytes/],
    [{ interface: "a/b" }, /contains "\/"/],
    [{ mtu: 10 }, /"mtu" must be a whole number from 68 to 65535/],
    [{ addresses: ["10.0.0.5"] }, /"addresses": "10.0.0.5" is not an address in CIDR form/],
    [
      { addresses: ["10.0.0.5/24"], ipam: { type: "hydra-ipam" } },
      /give "addresses" or "ipam", not both/,
    ],
    [{ ipam: {} }, /"ipam" must be an IPAM config with a "type"/],
    [{ routes: [{ dst: "x" }] }, /routes\[0\]\.dst/],
    [{ interfce: "typo" }, /unknown field "interfce"/],
  ];
  for (const [p, re] of bad) {
    assert.throws(
      () => parseNicConfig(p, w),
      (e: unknown) =>
        e instanceof DeviceConfigError && re.test(e.message) && e.message.startsWith(w),
    );
  }
});

Deno.test("config: a network as an annotation element", () => {
  const w = 'claim ns/c request "blue"';
  const { selection, element } = parseNetworkConfig(
    { network: "other/blue", ips: ["10.9.0.4/24"] },
    "ns",
    "blue",
    w,
  );
  assert.equal(selection.name, "blue");
  assert.equal(selection.namespace, "other");
  assert.equal(selection.interface, "blue");
  assert.deepEqual(selection.ips, ["10.9.0.4/24"]);
  assert.deepEqual(element, {
    ips: ["10.9.0.4/24"],
    namespace: "other",
    name: "blue",
    interface: "blue",
  });
  assert.equal(
    parseNetworkConfig({ network: "red", interface: "r0" }, "ns", "x", w).selection.namespace,
    "ns",
  );
  assert.throws(() => parseNetworkConfig({}, "ns", "r", w), /"network" must name a network/);
  assert.throws(
    () => parseNetworkConfig({ network: "n" }, "ns", "request-too-long-for-ifname", w),
    /set "interface"/,
  );
  assert.throws(
    () => parseNetworkConfig({ network: "n", interface: "eth 0" }, "ns", "r", w),
    /whitespace/,
  );
  assert.throws(() => parseNetworkConfig({ network: "n", name: "m" }, "ns", "r", w), /not "name"/);
});

Deno.test("names: device names of host interfaces are DNS labels and stay apart", () => {
  assert.equal(nicDeviceName("eth1"), "nic-eth1");
  assert.equal(nicDeviceName("ens1f0np0"), "nic-ens1f0np0");
  const odd = ["Eth_1", "eth_1", "eth.1", "eth-1", "-x"].map(nicDeviceName);
  assert.equal(new Set(odd).size, odd.length);
  for (const n of odd) assert.match(n, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.equal(kindOfDevice("nic-eth1"), "nic");
  assert.equal(kindOfDevice("net-3"), "network");
  assert.equal(kindOfDevice("gpu-0"), undefined);
});
