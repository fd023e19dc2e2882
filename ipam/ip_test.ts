import assert from "node:assert/strict";
import {
  cidrContains,
  compareIp,
  formatCidr,
  formatIp,
  hasHostBits,
  lastAddress,
  networkAddress,
  nextIp,
  parseCidr,
  parseIp,
  parseIpOrCidr,
  prevIp,
} from "./ip.ts";

const ip = (text: string) => {
  const parsed = parseIp(text);
  assert.ok(parsed, `${text} should parse`);
  return parsed;
};

Deno.test("parseIp accepts what Go's net.ParseIP accepts", () => {
  for (
    const text of [
      "0.0.0.0",
      "10.1.2.3",
      "255.255.255.255",
      "::",
      "::1",
      "fd00::",
      "2001:DB8::1",
      "1:2:3:4:5:6:7:8",
      "1:2:3:4:5:6:7::",
      "::2:3:4:5:6:7:8",
      "1:2:3:4:5:6:1.2.3.4",
      "::1.2.3.4",
    ]
  ) {
    assert.ok(parseIp(text), text);
  }
});

Deno.test("parseIp rejects malformed addresses", () => {
  for (
    const text of [
      "",
      "10.1.2",
      "10.1.2.3.4",
      "10.01.2.3",
      "256.1.1.1",
      "1.2.3.-1",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7:8::",
      "12345::",
      ":1::",
      "1::2:",
      "fe80::1%eth0",
      "1:2:3:4:5:6:7:1.2.3.4",
      "g::1",
      " 10.0.0.1",
    ]
  ) {
    assert.equal(parseIp(text), undefined, text);
  }
});

Deno.test("IPv4-mapped IPv6 addresses become IPv4", () => {
  assert.deepEqual(ip("::ffff:10.0.0.1"), ip("10.0.0.1"));
  assert.deepEqual(ip("::ffff:a00:1"), ip("10.0.0.1"));
  assert.equal(formatIp(ip("::FFFF:192.168.1.1")), "192.168.1.1");
});

Deno.test("formatIp writes RFC 5952 text as Go does", () => {
  const cases: [string, string][] = [
    ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of two equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // a single zero group stays
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["::1.2.3.4", "::102:304"],
    ["fd00::a:0:0:0:5", "fd00:0:0:a::5"],
    ["10.0.0.1", "10.0.0.1"],
  ];
  for (const [input, want] of cases) assert.equal(formatIp(ip(input)), want, input);
});

Deno.test("parseCidr keeps host bits and checks the prefix", () => {
  const net = parseCidr("10.1.2.3/8");
  assert.ok(net);
  assert.equal(formatCidr(net), "10.1.2.3/8");
  assert.ok(hasHostBits(net.ip, net.prefix));
  assert.equal(formatIp(networkAddress(net.ip, net.prefix)), "10.0.0.0");
  assert.equal(parseCidr("10.0.0.0/33"), undefined);
  assert.equal(parseCidr("10.0.0.0/"), undefined);
  assert.equal(parseCidr("10.0.0.0/-1"), undefined);
  assert.equal(parseCidr("10.0.0.0"), undefined);
  assert.equal(parseCidr("fd00::/129"), undefined);
  assert.equal(parseCidr("fd00::/024")?.prefix, 24);
  const mapped = parseCidr("::ffff:10.0.0.0/104");
  assert.ok(mapped?.mappedV6);
  assert.equal(mapped.ip.family, 4);
});

Deno.test("parseIpOrCidr takes either form", () => {
  assert.deepEqual(parseIpOrCidr("10.0.0.5/24"), ip("10.0.0.5"));
  assert.deepEqual(parseIpOrCidr("fd00::5"), ip("fd00::5"));
  assert.equal(parseIpOrCidr("10.0.0.5/40"), undefined);
});

Deno.test("network arithmetic", () => {
  assert.equal(formatIp(lastAddress(ip("10.0.0.0"), 29)), "10.0.0.7");
  assert.equal(formatIp(lastAddress(ip("fd00::"), 120)), "fd00::ff");
  assert.equal(formatIp(nextIp(ip("10.0.0.255"))!), "10.0.1.0");
  assert.equal(formatIp(nextIp(ip("fd00::ffff"))!), "fd00::1:0");
  assert.equal(formatIp(prevIp(ip("10.0.1.0"))!), "10.0.0.255");
  assert.equal(nextIp(ip("255.255.255.255")), undefined);
  assert.equal(prevIp(ip("::")), undefined);
  assert.ok(cidrContains({ ip: ip("10.0.0.0"), prefix: 24 }, ip("10.0.0.200")));
  assert.ok(!cidrContains({ ip: ip("10.0.0.0"), prefix: 24 }, ip("10.0.1.0")));
  assert.ok(!cidrContains({ ip: ip("::"), prefix: 0 }, ip("10.0.0.1")));
  assert.equal(compareIp(ip("10.0.0.2"), ip("10.0.0.10")), -1);
  assert.equal(compareIp(ip("fd00::"), ip("10.0.0.1")), 1);
  assert.equal(compareIp(ip("fd00::1"), ip("fd00:0::1")), 0);
});
