import assert from "node:assert/strict";
import {
  checkSubnetChange,
  checkSubnets,
  HybridConfigError,
  parseHybridNetwork,
  subnetOf,
} from "./model.ts";
import { parseHybridConfig } from "./config_file.ts";
import { NET, RAW_NET } from "../hybrid/testdata.ts";

Deno.test("model: a network's defaults and canonical subnets", () => {
  assert.equal(NET.device, "hy-hy");
  assert.equal(NET.port, 8472);
  assert.equal(NET.protocol, 210);
  assert.equal(NET.table, 210);
  assert.equal(NET.defaultKind, "overlay");
  const raw = structuredClone(RAW_NET);
  raw.subnets[0].cidr = "10.250.7.9/16";
  assert.equal(parseHybridNetwork(raw).subnets[0].cidr, "10.250.0.0/16");
  assert.equal(subnetOf(NET, "192.168.50.70")?.name, "fab");
  assert.equal(subnetOf(NET, "10.250.3.0/24")?.kind, "overlay");
  assert.equal(subnetOf(NET, "10.0.0.0/8"), undefined, "a CIDR wider than the subnet is not in it");
});

Deno.test("model: bad input is refused with a message naming the field", () => {
  const bad = (mutate: (r: Record<string, unknown>) => void, re: RegExp) => {
    const raw = structuredClone(RAW_NET) as unknown as Record<string, unknown>;
    mutate(raw);
    assert.throws(
      () => parseHybridNetwork(raw),
      (e: Error) => e instanceof HybridConfigError && re.test(e.message),
    );
  };
  bad((r) => (r.uplink = undefined), /uplink/);
  bad((r) => (r.vni = 0), /vni/);
  bad(
    (r) => ((r.subnets as Record<string, unknown>[])[1].gateway = "10.0.0.1"),
    /gateway 10.0.0.1 is not in/,
  );
  bad((r) => ((r.subnets as Record<string, unknown>[])[1].gateway = undefined), /gateway must be/);
  bad((r) => ((r.subnets as Record<string, unknown>[])[0].gateway = "10.250.0.1"), /no gateway/);
  bad((r) => ((r.subnets as Record<string, unknown>[])[0].kind = "vlan"), /kind must be/);
  bad(
    (r) => ((r.subnets as Record<string, unknown>[])[1].start = "192.168.50.200"),
    /start .* is after end/,
  );
  bad((r) => ((r.subnets as Record<string, unknown>[])[0].cidr = "fd00::/64"), /IPv4/);
  bad(
    (r) => (r.defaultKind = "underlay", r.subnets = [(r.subnets as unknown[])[0]]),
    /defaultKind underlay has no subnet/,
  );
  bad(
    (r) => (r.subnets as unknown[]).push({ name: "ov2", kind: "overlay", cidr: "10.250.128.0/24" }),
    /subnet ov2 \(10\.250\.128\.0\/24\) overlaps subnet ov/,
  );
});

Deno.test("model: overlapping subnets across networks are refused, the earlier one kept", async () => {
  const a = { network: "a", subnet: NET.subnets[0] };
  const b = { network: "b", subnet: { ...NET.subnets[1], name: "x", cidr: "10.250.9.0/24" } };
  const c = { network: "b", subnet: { ...NET.subnets[1], name: "y", cidr: "172.16.0.0/24" } };
  const problems = checkSubnets([a, b, c]);
  assert.equal(problems.length, 1);
  assert.equal(problems[0].subnet, "x");
  assert.match(problems[0].message, /overlaps subnet ov \(10\.250\.0\.0\/16\) of network a/);
  const text = `networks:\n  - ${JSON.stringify(RAW_NET)}\n  - ${
    JSON.stringify({ ...RAW_NET, name: "hz", vni: 7001 })
  }\n`;
  await assert.rejects(
    () => parseHybridConfig(text),
    /network hz: subnet ov .* overlaps subnet ov/,
  );
});

Deno.test("model: a subnet in use keeps its kind and range and stays", () => {
  const [ov] = NET.subnets;
  assert.equal(checkSubnetChange(ov, { ...ov, kind: "underlay" }, 0), undefined);
  assert.equal(checkSubnetChange(ov, undefined, 0), undefined);
  assert.match(
    checkSubnetChange(ov, { ...ov, kind: "underlay" }, 3)!,
    /3 addresses in use; its kind cannot change from overlay to underlay/,
  );
  assert.match(checkSubnetChange(ov, undefined, 1)!, /cannot be removed/);
  assert.match(checkSubnetChange(ov, { ...ov, cidr: "10.251.0.0/16" }, 1)!, /cidr cannot change/);
  assert.equal(checkSubnetChange(ov, { ...ov, excludes: ["10.250.0.9/32"] }, 5), undefined);
});

Deno.test("model: underlay pods on a bridge by default, or on macvlan with the node's shim", () => {
  assert.equal(NET.underlayAttachment, "bridge");
  const mv = parseHybridNetwork({ ...RAW_NET, uplink: "eth1", underlayAttachment: "macvlan" });
  assert.equal(mv.underlayAttachment, "macvlan");
  assert.equal(mv.shim, "hym-hy");
  assert.equal(parseHybridNetwork({ ...RAW_NET, shim: "mv-node" }).shim, "mv-node");
  assert.throws(
    () => parseHybridNetwork({ ...RAW_NET, underlayAttachment: "ipvlan" }),
    /underlayAttachment must be "bridge" or "macvlan"/,
  );
  assert.throws(
    () => parseHybridNetwork({ ...RAW_NET, shim: "br-fab" }),
    /device, shim and uplink must be three devices/,
  );
  assert.throws(() => parseHybridNetwork({ ...RAW_NET, shim: "a/b" }), /shim must be a device/);
});
