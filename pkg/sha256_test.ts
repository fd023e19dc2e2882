import assert from "node:assert/strict";
import fc from "fast-check";
import { sha256, sha256Hex } from "./sha256.ts";

const hex = (b: ArrayBuffer) =>
  Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("sha256: the standard's test vectors", () => {
  assert.equal(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(
    sha256Hex("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
  );
});

Deno.test("sha256: the same digest as Web Crypto for every length around the block edges and random data", async () => {
  for (let n = 0; n <= 200; n++) {
    const data = Uint8Array.from({ length: n }, (_, i) => (i * 31 + n) & 0xff);
    assert.equal(
      hex(sha256(data).slice().buffer),
      hex(await crypto.subtle.digest("SHA-256", data)),
      `length ${n}`,
    );
  }
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 1000 }), async (data) => {
      assert.equal(
        hex(sha256(data).slice().buffer),
        hex(await crypto.subtle.digest("SHA-256", data)),
      );
    }),
    { numRuns: 300 },
  );
  assert.equal(
    sha256Hex("héllo"),
    hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode("héllo"))),
  );
});
