import assert from "node:assert/strict";
import { canonicalIP, isCIDR, isIP, isIPv4Family, isIPv6, macLength } from "./netaddr.ts";

Deno.test("IP syntax matches Go's ParseIP", () => {
  for (
    const ip of [
      "0.0.0.0",
      "10.1.2.3",
      "255.255.255.255",
      "::",
      "::1",
      "fe80::1",
      "2001:db8::",
      "1:2:3:4:5:6:7:8",
      "::ffff:10.0.0.1",
      "1::2:3:4:5:6:7",
      "64:ff9b::192.0.2.33",
    ]
  ) {
    assert.ok(isIP(ip), ip);
  }
  for (
    const ip of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "256.0.0.1",
      "1.2.3.-1",
      ":::",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "fe80::1%eth0",
      "12345::",
      "1:2:3:4:5:6:7::8",
      "::ffff:1.2.3",
      " 1.2.3.4",
    ]
  ) {
    assert.ok(!isIP(ip), ip);
  }
  assert.ok(isIPv6("1:2:3:4:5:6:1.2.3.4"));
  assert.ok(!isIPv6("1:2:3:4:5:6:7:1.2.3.4"));
});

Deno.test("CIDR syntax: prefix within the family's width", () => {
  assert.ok(isCIDR("10.0.0.0/8"));
  assert.ok(isCIDR("10.0.0.1/32"));
  assert.ok(isCIDR("fd00::/128"));
  assert.ok(!isCIDR("10.0.0.0/33"));
  assert.ok(!isCIDR("fd00::/129"));
  assert.ok(!isCIDR("10.0.0.0/"));
  assert.ok(!isCIDR("10.0.0.0"));
  assert.ok(!isCIDR("10.0.0.0/8/8"));
});

Deno.test("IPv4 family includes IPv4-mapped IPv6, as Go's To4 does", () => {
  assert.ok(isIPv4Family("10.0.0.1"));
  assert.ok(isIPv4Family("::ffff:10.0.0.1"));
  assert.ok(isIPv4Family("::ffff:a00:1"));
  assert.ok(!isIPv4Family("fd00::1"));
  assert.ok(!isIPv4Family("::10.0.0.1"));
});

Deno.test("canonical IP text matches Go's IP.String", () => {
  assert.equal(canonicalIP("10.1.2.3/24"), "10.1.2.3");
  assert.equal(canonicalIP("2001:DB8:0:0:0:0:0:1/64"), "2001:db8::1");
  assert.equal(canonicalIP("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1");
  assert.equal(canonicalIP("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  assert.equal(canonicalIP("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
  assert.equal(canonicalIP("0:0:0:0:0:0:0:0"), "::");
  assert.equal(canonicalIP("::ffff:10.0.0.1"), "10.0.0.1");
  assert.equal(canonicalIP("fe80::0001"), "fe80::1");
  assert.equal(canonicalIP("bogus"), "bogus");
});

Deno.test("MAC lengths: 6, 8 or 20 bytes only", () => {
  assert.equal(macLength("aa:bb:cc:dd:ee:ff"), 6);
  assert.equal(macLength("aabb.ccdd.eeff"), 6);
  assert.equal(macLength("aa-bb-cc-dd-ee-ff-00-11"), 8);
  assert.equal(macLength("aa:bb:cc:dd:ee"), 0);
  assert.equal(macLength("aa"), 0);
  assert.equal(macLength("aabbccddeeff"), 0);
});
