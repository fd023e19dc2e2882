import assert from "node:assert/strict";
import { formatMac } from "../ipaddr/ip.ts";
import { hashedMac, parseMac, randomMac, tryParseMac } from "./mac.ts";

Deno.test("MAC parsing and formatting", () => {
  assert.deepEqual([...parseMac("02:AA:bb:0c:0d:0E")], [2, 0xaa, 0xbb, 0x0c, 0x0d, 0x0e]);
  assert.equal(formatMac(parseMac("02-aa-bb-0c-0d-0e")), "02:aa:bb:0c:0d:0e");
  assert.throws(() => parseMac("02:aa:bb:0c:0d"), TypeError);
  assert.throws(() => parseMac("02:aa:bb:0c:0d:zz"), TypeError);
  const m = parseMac(randomMac());
  assert.equal(m[0] & 0x01, 0, "unicast");
  assert.equal(m[0] & 0x02, 0x02, "locally administered");
});

Deno.test("MAC syntax matches Go's ParseMAC: 6, 8 or 20 bytes", () => {
  assert.equal(tryParseMac("aa:bb:cc:dd:ee:ff")?.length, 6);
  assert.equal(formatMac(tryParseMac("aabb.ccdd.eeff")!), "aa:bb:cc:dd:ee:ff");
  assert.equal(tryParseMac("aa-bb-cc-dd-ee-ff-00-11")?.length, 8);
  assert.equal(tryParseMac(new Array(20).fill("0a").join(":"))?.length, 20);
  for (
    const bad of ["aa:bb:cc:dd:ee", "aa", "aabbccddeeff", "aa:bb-cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff:"]
  ) {
    assert.equal(tryParseMac(bad), undefined, bad);
  }
  // hydra's links take Ethernet addresses only.
  assert.throws(() => parseMac("aa-bb-cc-dd-ee-ff-00-11"), TypeError);
  assert.deepEqual([...parseMac("02aa.bb0c.0d0e")], [2, 0xaa, 0xbb, 0x0c, 0x0d, 0x0e]);
});

Deno.test("hashedMac: the first six bytes of the text's SHA-256, made unicast and locally administered", async () => {
  for (const text of ["hydra-vxlan/42/192.168.1.1", "hydra-hybrid-shim/blue/10.0.0.1", ""]) {
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
    );
    const b = digest.slice(0, 6);
    b[0] = (b[0] & 0xfe) | 0x02;
    assert.equal(hashedMac(text), formatMac(b), text);
  }
});
