import assert from "node:assert/strict";
import type { Result } from "../cni/types.ts";
import {
  formatNetworkStatus,
  mergeNetworkStatus,
  networkStatusEntries,
  resultAnnotationKey,
  resultAnnotationValue,
} from "./status.ts";
import { addedInterfaceEvent } from "./report.ts";

const bridgeResult: Result = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "cni0", mac: "0a:58:0a:f4:00:01" },
    { name: "veth1234", mac: "6e:2f:9b:00:00:01" },
    { name: "eth0", mac: "0a:58:0a:f4:00:05", mtu: 1450, sandbox: "/var/run/netns/p" },
  ],
  ips: [{ address: "10.244.0.5/24", gateway: "10.244.0.1", interface: 2 }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.244.0.1" }, { dst: "10.96.0.0/12" }],
  dns: { nameservers: ["10.96.0.10"], search: [] },
};

Deno.test("bridge-like result: one entry for the sandbox interface, default marked", () => {
  assert.deepEqual(networkStatusEntries(bridgeResult, "cbr0", true), [{
    name: "cbr0",
    interface: "eth0",
    ips: ["10.244.0.5"],
    mac: "0a:58:0a:f4:00:05",
    mtu: 1450,
    default: true,
    dns: { nameservers: ["10.96.0.10"] },
    gateway: ["10.244.0.1"],
  }]);
  assert.equal(networkStatusEntries(bridgeResult, "cbr0", false)[0].default, undefined);
});

Deno.test("single-interface result: one entry with every address, in Multus's text layout", () => {
  const r: Result = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "net1", mac: "02:00:00:00:00:07", sandbox: "/proc/1/ns/net" }],
    ips: [{ address: "192.168.1.7/24", interface: 0 }, { address: "fd00:0:0::7/64" }],
  };
  const entries = networkStatusEntries(r, "default/macvlan-conf", false);
  assert.equal(
    formatNetworkStatus(entries),
    `[{
    "name": "default/macvlan-conf",
    "interface": "net1",
    "ips": [
        "192.168.1.7",
        "fd00::7"
    ],
    "mac": "02:00:00:00:00:07",
    "dns": {}
}]`,
  );
  // Not in a sandbox: no interface fields, still one entry.
  const host = networkStatusEntries(
    { cniVersion: "1.0.0", interfaces: [{ name: "h", mac: "m" }] },
    "n",
    true,
  );
  assert.deepEqual(host, [{ name: "n", default: true, dns: {} }]);
});

Deno.test("several sandbox interfaces: one entry each, addresses by index, unindexed to the last", () => {
  const r: Result = {
    cniVersion: "1.1.0",
    interfaces: [
      { name: "host0" },
      { name: "a0", mac: "02:00:00:00:00:a0", sandbox: "/ns" },
      { name: "b0", mac: "02:00:00:00:00:b0", sandbox: "/ns" },
    ],
    ips: [
      { address: "10.0.0.2/24", interface: 1 },
      { address: "10.1.0.2/24", gateway: "10.1.0.1", interface: 2 },
      { address: "10.2.0.2/24" },
      { address: "10.3.0.2/24", interface: 0 },
    ],
    routes: [{ dst: "::/0", gw: "fd00::1" }],
  };
  assert.deepEqual(networkStatusEntries(r, "ns/multi", true), [
    {
      name: "ns/multi",
      interface: "a0",
      ips: ["10.0.0.2"],
      mac: "02:00:00:00:00:a0",
      dns: {},
      gateway: ["fd00::1"],
    },
    {
      name: "ns/multi",
      interface: "b0",
      ips: ["10.1.0.2", "10.2.0.2"],
      mac: "02:00:00:00:00:b0",
      default: true,
      dns: {},
      gateway: ["fd00::1"],
    },
  ]);
  // Without a gatewayed address the first sandbox interface is the default one.
  const noGw = { ...r, ips: [{ address: "10.0.0.2/24", interface: 2 }] };
  assert.deepEqual(networkStatusEntries(noGw, "x", true).map((e) => e.default), [true, undefined]);
});

Deno.test("results without interfaces produce no entry, as in Multus", () => {
  assert.deepEqual(
    networkStatusEntries({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.1/8" }] }, "x", true),
    [],
  );
});

Deno.test("merge keeps entries others wrote and replaces ours", () => {
  const theirs = formatNetworkStatus([{
    name: "cilium",
    interface: "eth0",
    ips: ["10.0.0.9"],
    default: true,
    dns: {},
  }]);
  const first = mergeNetworkStatus(theirs, [{
    name: "ns/a",
    interface: "net1",
    ips: ["10.1.0.2"],
    dns: {},
  }]);
  assert.deepEqual(JSON.parse(first).map((e: { name: string }) => e.name), ["cilium", "ns/a"]);
  // Again with a new address: replaced, not duplicated; an extra unknown entry survives.
  const withForeign = first.replace(/^\[/, '[{"name":"other","interface":"net9","extra":1},');
  const second = mergeNetworkStatus(withForeign, [{
    name: "ns/a",
    interface: "net1",
    ips: ["10.1.0.3"],
    dns: {},
  }]);
  assert.deepEqual(JSON.parse(second), [
    { name: "other", interface: "net9", extra: 1 },
    { name: "cilium", interface: "eth0", ips: ["10.0.0.9"], default: true, dns: {} },
    { name: "ns/a", interface: "net1", ips: ["10.1.0.3"], dns: {} },
  ]);
  // A stale entry on one of our interfaces goes; removal by name with nothing of ours.
  const third = mergeNetworkStatus(second, [{ name: "ns/b", interface: "net1", dns: {} }]);
  assert.deepEqual(JSON.parse(third).map((e: { name: string }) => e.name), [
    "other",
    "cilium",
    "ns/b",
  ]);
  assert.deepEqual(
    JSON.parse(mergeNetworkStatus(third, [], ["ns/b"])).map((e: { name: string }) => e.name),
    ["other", "cilium"],
  );
  // Garbage is replaced.
  assert.deepEqual(JSON.parse(mergeNetworkStatus("{oops", [{ name: "n", dns: {} }])), [{
    name: "n",
    dns: {},
  }]);
});

Deno.test("text escapes <, > and & the way Go's encoder does", () => {
  assert.equal(
    formatNetworkStatus([{ name: "a<b>&c", dns: {} }]),
    '[{\n    "name": "a\\u003cb\\u003e\\u0026c",\n    "dns": {}\n}]',
  );
});

Deno.test("result annotation: key per network within Kubernetes' key rules, value is the result JSON", () => {
  assert.equal(resultAnnotationKey("team/macvlan"), "hydra.clusternet.io.team/macvlan");
  assert.equal(resultAnnotationKey("cbr0"), "hydra.clusternet.io.cbr0");
  const long = resultAnnotationKey("team/" + "n".repeat(80));
  assert.match(long, /^hydra\.clusternet\.io\.team\/n{54}-[0-9a-f]{8}$/);
  assert.notEqual(long, resultAnnotationKey("team/" + "n".repeat(81)));
  const bare = resultAnnotationKey("x".repeat(60));
  assert.ok(bare.length <= 63, bare);
  assert.match(
    resultAnnotationKey("weird name!"),
    /^hydra\.clusternet\.io\.weird-name-[0-9a-f]{8}$/,
  );
  assert.equal(resultAnnotationValue(bridgeResult), JSON.stringify(bridgeResult));
});

Deno.test("AddedInterface event text as Multus writes it", () => {
  assert.deepEqual(
    addedInterfaceEvent("net1", {
      cniVersion: "1.0.0",
      ips: [{ address: "10.1.1.5/24" }, { address: "FD00:0::5/64" }],
    }, "ns/mv"),
    {
      type: "Normal",
      reason: "AddedInterface",
      message: "Add net1 [10.1.1.5/24 fd00::5/64] from ns/mv",
      host: undefined,
    },
  );
  assert.equal(addedInterfaceEvent("net1", { cniVersion: "1.0.0" }, "x"), undefined);
  assert.equal(
    addedInterfaceEvent("eth0", { cniVersion: "1.0.0", interfaces: [] }, "")?.message,
    "Add eth0 []",
  );
});
