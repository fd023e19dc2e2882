import assert from "node:assert/strict";
import { canonicalJson, confDigest, lineSplitter, LineTooLongError } from "./protocol.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("lines are split across chunks and multibyte characters", () => {
  const s = lineSplitter(64);
  const bytes = enc('{"a":"ü"}\n{"b":');
  assert.deepEqual(s.push(bytes.subarray(0, 7)), []);
  assert.deepEqual(s.push(bytes.subarray(7)), ['{"a":"ü"}']);
  assert.equal(s.pending, 5);
  assert.deepEqual(s.push(enc("1}\n\n")), ['{"b":1}', ""]);
  assert.equal(s.pending, 0);
});

Deno.test("a line past the limit is an error however it arrives", () => {
  const s = lineSplitter(10);
  assert.deepEqual(s.push(enc("12345")), []);
  assert.throws(() => s.push(enc("678901")), LineTooLongError);
  assert.throws(() => lineSplitter(10).push(enc("12345678901\n")), LineTooLongError);
  assert.deepEqual(lineSplitter(10).push(enc("1234567890\n")), ["1234567890"]);
});

Deno.test("a conf's digest ignores key order and what the runtime adds per invocation", async () => {
  const conf = { cniVersion: "1.0.0", name: "n", type: "hydra", delegates: [{ a: 1, b: [1, 2] }] };
  const same = await confDigest({
    type: "hydra",
    delegates: [{ b: [1, 2], a: 1 }],
    name: "n",
    cniVersion: "1.0.0",
    runtimeConfig: { mac: "x" },
    prevResult: { cniVersion: "1.0.0" },
    capabilities: { mac: true },
    "cni.dev/valid-attachments": [],
  });
  assert.equal(await confDigest(conf), same);
  assert.match(same, /^sha256:[0-9a-f]{64}$/);
  assert.notEqual(await confDigest({ ...conf, cacheDir: "/tmp/x" }), same);
  assert.notEqual(await confDigest({ ...conf, args: { cni: {} } }), same);
  assert.equal(canonicalJson({ b: 1, a: [{ d: 1, c: 2 }] }), '{"a":[{"c":2,"d":1}],"b":1}');
});
