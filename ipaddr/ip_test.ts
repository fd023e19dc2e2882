import assert from "node:assert/strict";
import fc from "fast-check";
import {
  bigIntToIp,
  broadcastAddress,
  canonicalIp,
  cidrContains,
  cidrsOverlap,
  compareIp,
  compareIpAddr,
  formatCidr,
  formatIp,
  formatIpAddr,
  formatIpNet,
  hasHostBits,
  ipFamily,
  ipNetContains,
  ipToBigInt,
  isCidr,
  isIp,
  lastIpAddr,
  netmaskOf,
  networkAddress,
  networkCidr,
  networkIpAddr,
  nextIp,
  nextIpAddr,
  normalizeIp,
  parseCidr,
  parseIp,
  parseIpAddr,
  parseIpAddrOrCidr,
  parseIpNet,
  prevIp,
  prevIpAddr,
  tryParseIp,
} from "./ip.ts";

Deno.test("IPv4 parsing accepts dotted quads only", () => {
  assert.deepEqual([...parseIp("10.1.2.3")], [10, 1, 2, 3]);
  for (const bad of ["10.1.2", "10.1.2.256", "10.01.2.3", "1.2.3.4.5", "a.b.c.d", "", " 1.2.3.4"]) {
    assert.equal(isIp(bad), false, bad);
    assert.throws(() => parseIp(bad), TypeError);
  }
  assert.equal(ipFamily("192.168.0.1"), 4);
});

Deno.test("IPv6 parsing and RFC 5952 formatting", () => {
  assert.equal(normalizeIp("FD00:0:0:0:0:0:0:1"), "fd00::1");
  assert.equal(normalizeIp("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  assert.equal(normalizeIp("2001:0db8:0000:0001:0001:0001:0001:0001"), "2001:db8:0:1:1:1:1:1");
  assert.equal(normalizeIp("::"), "::");
  assert.equal(normalizeIp("::1"), "::1");
  assert.equal(normalizeIp("1::"), "1::");
  // Go's net.ParseIP(...).String(): an IPv4-mapped address is IPv4.
  assert.equal(normalizeIp("::ffff:10.1.2.3"), "10.1.2.3");
  assert.equal(normalizeIp("::FFFF:a00:1"), "10.0.0.1");
  assert.equal(normalizeIp("64:ff9b::192.0.2.33"), "64:ff9b::c000:221");
  for (const bad of ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", ":1", "1:", "g::1", "::1.2.3"]) {
    assert.equal(isIp(bad), false, bad);
  }
  assert.equal(ipFamily("fd00::1"), 6);
});

Deno.test("IPv6 formatting round-trips and matches the URL serializer", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.boolean(), (bytes, zeroRun) => {
      if (zeroRun) bytes.fill(0, 4, 10);
      const text = formatIp(bytes);
      const mapped = bytes.slice(0, 10).every((x) => x === 0) && bytes[10] === 0xff &&
        bytes[11] === 0xff;
      // An IPv4-mapped address reads back as IPv4, as in Go.
      assert.deepEqual(parseIp(text), mapped ? bytes.slice(12) : bytes);
      if (!mapped) assert.equal(new URL(`http://[${text}]/`).hostname, `[${text}]`);
    }),
  );
});

Deno.test("CIDR parsing and arithmetic", () => {
  const c = parseCidr("10.1.2.3/16");
  assert.deepEqual([c.family, c.ip, c.prefixLen], [4, "10.1.2.3", 16]);
  assert.equal(parseCidr("fd00::1").prefixLen, 128);
  assert.throws(() => parseCidr("10.0.0.0/33"), TypeError);
  assert.throws(() => parseCidr("10.0.0.0/"), TypeError);
  assert.equal(networkAddress("10.1.2.3/16"), "10.1.0.0");
  assert.equal(networkCidr("10.1.2.3/16"), "10.1.0.0/16");
  assert.equal(networkCidr("fd00:1:2:3::9/48"), "fd00:1:2::/48");
  assert.equal(broadcastAddress("10.1.2.3/23"), "10.1.3.255");
  assert.equal(broadcastAddress("10.1.2.3/32"), "10.1.2.3");
  assert.equal(netmaskOf(20), "255.255.240.0");
  assert.equal(formatCidr("fd00:0::1", 64), "fd00::1/64");
  assert.ok(cidrContains("10.1.0.0/16", "10.1.255.1"));
  assert.ok(!cidrContains("10.1.0.0/16", "10.2.0.1"));
  assert.ok(!cidrContains("10.1.0.0/16", "fd00::1"));
  assert.ok(cidrContains("0.0.0.0/0", "1.2.3.4"));
  assert.ok(cidrsOverlap("10.0.0.0/8", "10.1.0.0/16"));
  assert.ok(cidrsOverlap("10.1.0.0/16", "10.0.0.0/8"));
  assert.ok(!cidrsOverlap("10.1.0.0/16", "10.2.0.0/16"));
  assert.ok(!cidrsOverlap("10.1.0.0/16", "fd00::/8"));
});

Deno.test("next/previous addresses and integer conversion", () => {
  assert.equal(nextIp("10.0.0.255"), "10.0.1.0");
  assert.equal(prevIp("10.0.1.0"), "10.0.0.255");
  assert.equal(nextIp("fd00::ffff"), "fd00::1:0");
  assert.throws(() => nextIp("255.255.255.255"), RangeError);
  assert.throws(() => prevIp("::"), RangeError);
  assert.equal(ipToBigInt("0.0.1.2"), 258n);
  assert.equal(bigIntToIp(258n, 4), "0.0.1.2");
  assert.ok(compareIp("10.0.0.2", "10.0.0.10") < 0);
  assert.ok(compareIp("10.0.0.2", "::1") < 0);
  assert.equal(compareIp("fd00::1", "fd00:0::1"), 0);
});

Deno.test("IPv4-mapped addresses: IPv4 when read, kept recognisable when printed from bytes", () => {
  assert.deepEqual([...parseIp("::ffff:10.1.2.3")], [10, 1, 2, 3]);
  assert.equal(ipFamily("::ffff:10.1.2.3"), 4);
  const wire = new Uint8Array(16);
  wire.set([0xff, 0xff, 10, 1, 2, 3], 10);
  assert.equal(formatIp(wire), "::ffff:10.1.2.3");
  // A mapped address with a prefix would count 128 bits for IPv4: refused.
  assert.throws(() => parseCidr("::ffff:10.0.0.0/104"), TypeError);
  assert.equal(parseCidr("::ffff:10.0.0.1").prefixLen, 32);
  assert.equal(parseCidr("10.0.0.0/024").prefixLen, 24);
});

// The cases below are Go's own answers (net.ParseIP, net.ParseCIDR, IP.String()).

Deno.test("address syntax matches Go's ParseIP, in every form", () => {
  const accepted = [
    "0.0.0.0",
    "10.1.2.3",
    "255.255.255.255",
    "::",
    "::1",
    "fe80::1",
    "fd00::",
    "2001:db8::",
    "2001:DB8::1",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1::2:3:4:5:6:7",
    "::ffff:10.0.0.1",
    "64:ff9b::192.0.2.33",
    "1:2:3:4:5:6:1.2.3.4",
    "::1.2.3.4",
  ];
  for (const text of accepted) {
    assert.ok(isIp(text), text);
    assert.ok(parseIpAddr(text), text);
    assert.ok(tryParseIp(text), text);
  }
  const rejected = [
    "",
    "1.2.3",
    "10.1.2",
    "1.2.3.4.5",
    "10.1.2.3.4",
    "01.2.3.4",
    "10.01.2.3",
    "256.0.0.1",
    "256.1.1.1",
    "1.2.3.-1",
    ":::",
    ":1::",
    "1::2:",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::",
    "1:2:3:4::5:6:7:8",
    "1:2:3:4:5:6:7::8",
    "12345::",
    "g::1",
    "fe80::1%eth0",
    "::ffff:1.2.3",
    "1:2:3:4:5:6:7:1.2.3.4",
    " 1.2.3.4",
    " 10.0.0.1",
  ];
  for (const text of rejected) {
    assert.ok(!isIp(text), text);
    assert.equal(parseIpAddr(text), undefined, text);
    assert.equal(tryParseIp(text), undefined, text);
  }
});

Deno.test("CIDR syntax: prefix within the family's width", () => {
  assert.ok(isCidr("10.0.0.0/8"));
  assert.ok(isCidr("10.0.0.1/32"));
  assert.ok(isCidr("fd00::/128"));
  assert.ok(isCidr("10.0.0.0/024"));
  assert.ok(isCidr("::ffff:10.0.0.0/104"));
  assert.ok(!isCidr("10.0.0.0/33"));
  assert.ok(!isCidr("fd00::/129"));
  assert.ok(!isCidr("10.0.0.0/"));
  assert.ok(!isCidr("10.0.0.0"));
  assert.ok(!isCidr("10.0.0.0/8/8"));
  assert.ok(!isCidr("10.0.0.0/-8"));
});

Deno.test("IPv4 family includes IPv4-mapped IPv6, as Go's To4 does", () => {
  assert.equal(parseIpAddr("10.0.0.1")?.family, 4);
  assert.equal(parseIpAddr("::ffff:10.0.0.1")?.family, 4);
  assert.equal(parseIpAddr("::ffff:a00:1")?.family, 4);
  assert.equal(parseIpAddr("fd00::1")?.family, 6);
  assert.equal(parseIpAddr("::10.0.0.1")?.family, 6);
});

Deno.test("canonical IP text matches Go's IP.String", () => {
  assert.equal(canonicalIp("10.1.2.3/24"), "10.1.2.3");
  assert.equal(canonicalIp("2001:DB8:0:0:0:0:0:1/64"), "2001:db8::1");
  assert.equal(canonicalIp("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1");
  assert.equal(canonicalIp("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  assert.equal(canonicalIp("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
  assert.equal(canonicalIp("0:0:0:0:0:0:0:0"), "::");
  assert.equal(canonicalIp("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(canonicalIp("fe80::0001"), "fe80::1");
  assert.equal(canonicalIp("bogus"), "bogus");
  assert.equal(canonicalIp("bogus/24"), "bogus/24");
});

const ip = (text: string) => {
  const parsed = parseIpAddr(text);
  assert.ok(parsed, `${text} should parse`);
  return parsed;
};

Deno.test("IPv4-mapped IPv6 addresses become IPv4", () => {
  assert.deepEqual(ip("::ffff:10.0.0.1"), ip("10.0.0.1"));
  assert.deepEqual(ip("::ffff:a00:1"), ip("10.0.0.1"));
  assert.equal(formatIpAddr(ip("::FFFF:192.168.1.1")), "192.168.1.1");
});

Deno.test("formatIpAddr writes RFC 5952 text as Go does", () => {
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
  for (const [input, want] of cases) assert.equal(formatIpAddr(ip(input)), want, input);
});

Deno.test("parseIpNet keeps host bits and checks the prefix", () => {
  const net = parseIpNet("10.1.2.3/8");
  assert.ok(net);
  assert.equal(formatIpNet(net), "10.1.2.3/8");
  assert.ok(hasHostBits(net.ip, net.prefix));
  assert.equal(formatIpAddr(networkIpAddr(net.ip, net.prefix)), "10.0.0.0");
  assert.equal(parseIpNet("10.0.0.0/33"), undefined);
  assert.equal(parseIpNet("10.0.0.0/"), undefined);
  assert.equal(parseIpNet("10.0.0.0/-1"), undefined);
  assert.equal(parseIpNet("10.0.0.0"), undefined);
  assert.equal(parseIpNet("fd00::/129"), undefined);
  assert.equal(parseIpNet("fd00::/024")?.prefix, 24);
  const mapped = parseIpNet("::ffff:10.0.0.0/104");
  assert.ok(mapped?.mappedV6);
  assert.equal(mapped.ip.family, 4);
});

Deno.test("parseIpAddrOrCidr takes either form", () => {
  assert.deepEqual(parseIpAddrOrCidr("10.0.0.5/24"), ip("10.0.0.5"));
  assert.deepEqual(parseIpAddrOrCidr("fd00::5"), ip("fd00::5"));
  assert.equal(parseIpAddrOrCidr("10.0.0.5/40"), undefined);
});

Deno.test("network arithmetic", () => {
  assert.equal(formatIpAddr(lastIpAddr(ip("10.0.0.0"), 29)), "10.0.0.7");
  assert.equal(formatIpAddr(lastIpAddr(ip("fd00::"), 120)), "fd00::ff");
  assert.equal(formatIpAddr(nextIpAddr(ip("10.0.0.255"))!), "10.0.1.0");
  assert.equal(formatIpAddr(nextIpAddr(ip("fd00::ffff"))!), "fd00::1:0");
  assert.equal(formatIpAddr(prevIpAddr(ip("10.0.1.0"))!), "10.0.0.255");
  assert.equal(nextIpAddr(ip("255.255.255.255")), undefined);
  assert.equal(prevIpAddr(ip("::")), undefined);
  assert.ok(ipNetContains({ ip: ip("10.0.0.0"), prefix: 24 }, ip("10.0.0.200")));
  assert.ok(!ipNetContains({ ip: ip("10.0.0.0"), prefix: 24 }, ip("10.0.1.0")));
  assert.ok(!ipNetContains({ ip: ip("::"), prefix: 0 }, ip("10.0.0.1")));
  assert.equal(compareIpAddr(ip("10.0.0.2"), ip("10.0.0.10")), -1);
  assert.equal(compareIpAddr(ip("fd00::"), ip("10.0.0.1")), 1);
  assert.equal(compareIpAddr(ip("fd00::1"), ip("fd00:0::1")), 0);
});
