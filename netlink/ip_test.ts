import assert from "node:assert/strict";
import fc from "fast-check";
import {
  bigIntToIp,
  broadcastAddress,
  cidrContains,
  cidrsOverlap,
  compareIp,
  formatCidr,
  formatIp,
  formatMac,
  ipFamily,
  ipToBigInt,
  isIp,
  netmaskOf,
  networkAddress,
  networkCidr,
  nextIp,
  normalizeIp,
  parseCidr,
  parseIp,
  parseMac,
  prevIp,
  randomMac,
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
  assert.equal(normalizeIp("::ffff:10.1.2.3"), "::ffff:10.1.2.3");
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
      assert.deepEqual(parseIp(text), bytes);
      const mapped = bytes.slice(0, 10).every((x) => x === 0) && bytes[10] === 0xff &&
        bytes[11] === 0xff;
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

Deno.test("MAC parsing and formatting", () => {
  assert.deepEqual([...parseMac("02:AA:bb:0c:0d:0E")], [2, 0xaa, 0xbb, 0x0c, 0x0d, 0x0e]);
  assert.equal(formatMac(parseMac("02-aa-bb-0c-0d-0e")), "02:aa:bb:0c:0d:0e");
  assert.throws(() => parseMac("02:aa:bb:0c:0d"), TypeError);
  assert.throws(() => parseMac("02:aa:bb:0c:0d:zz"), TypeError);
  const m = parseMac(randomMac());
  assert.equal(m[0] & 0x01, 0, "unicast");
  assert.equal(m[0] & 0x02, 0x02, "locally administered");
});
