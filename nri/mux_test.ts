import assert from "node:assert/strict";
import { ProtocolError } from "./errors.ts";
import {
  createDemux,
  encodeFrame,
  frameMessage,
  MAX_OUTBOUND_FRAME,
  MUX_HEADER_LENGTH,
} from "./mux.ts";
import { concat, hex, toHex } from "./testdata.ts";

function collect(connIds: number[]) {
  const got = new Map<number, Uint8Array[]>(connIds.map((id) => [id, []]));
  const sinks = new Map(connIds.map((id) => [id, (b: Uint8Array) => got.get(id)!.push(b.slice())]));
  return { sinks, stream: (id: number) => concat(...got.get(id)!) };
}

Deno.test("encodeFrame writes conn id and length big-endian before the payload", () => {
  const frame = encodeFrame(2, hex("00 00 00 00 00 00 00 01 02 00"));
  assert.equal(toHex(frame), "000000020000000a" + "00000000000000010200");
});

Deno.test("frameMessage keeps each frame within 4096 bytes and splits in order", () => {
  const message = new Uint8Array(10_000).map((_, i) => i % 251);
  const framed = frameMessage(1, message);
  const view = new DataView(framed.buffer);
  const payloads: Uint8Array[] = [];
  for (let at = 0; at < framed.length;) {
    assert.equal(view.getUint32(at), 1);
    const len = view.getUint32(at + 4);
    assert.ok(MUX_HEADER_LENGTH + len <= MAX_OUTBOUND_FRAME, `frame of ${len} bytes`);
    assert.ok(len > 0, "no empty frames");
    payloads.push(framed.subarray(at + 8, at + 8 + len));
    at += 8 + len;
  }
  assert.equal(payloads.length, 3);
  assert.deepEqual(concat(...payloads), message);
});

Deno.test("frameMessage of a small message is a single frame holding only that message", () => {
  const message = hex("00 00 00 04 00 00 00 01 02 00 12 02 10 07");
  assert.equal(toHex(frameMessage(1, message)), "000000010000000e" + toHex(message));
  assert.equal(frameMessage(1, new Uint8Array(0)).length, 0);
});

Deno.test("demux reassembles per-conn streams from arbitrary chunking", () => {
  const trunk = concat(
    encodeFrame(1, hex("01 02 03")),
    encodeFrame(2, hex("aa")),
    encodeFrame(1, hex("04")),
    encodeFrame(2, new Uint8Array(0)),
    encodeFrame(2, hex("bb cc")),
  );
  for (let cut = 0; cut <= trunk.length; cut++) {
    const { sinks, stream } = collect([1, 2]);
    const demux = createDemux(sinks);
    demux.push(trunk.subarray(0, cut));
    demux.push(trunk.subarray(cut));
    assert.equal(toHex(stream(1)), "01020304");
    assert.equal(toHex(stream(2)), "aabbcc");
    assert.equal(demux.pendingHeaderBytes, 0);
  }
});

Deno.test("demux drops frames of unknown and reserved conn ids", () => {
  const { sinks, stream } = collect([1]);
  const demux = createDemux(sinks);
  demux.push(concat(encodeFrame(7, hex("dead")), encodeFrame(1, hex("01"))));
  demux.push(hex("00000000 00000002 beef")); // conn 0 is reserved
  demux.push(encodeFrame(1, hex("02")));
  assert.equal(toHex(stream(1)), "0102");
});

Deno.test("demux rejects a frame larger than the limit with a ProtocolError, and stays failed", () => {
  const demux = createDemux(new Map([[1, () => {}]]), { maxPayload: 16 });
  demux.push(encodeFrame(1, new Uint8Array(16)));
  assert.throws(() => demux.push(hex("00000001 00000011")), ProtocolError);
  assert.throws(() => demux.push(encodeFrame(1, hex("00"))), ProtocolError);
});

Deno.test("demux skips the payload of a large frame for an unknown conn without buffering it", () => {
  const { sinks, stream } = collect([1]);
  const demux = createDemux(sinks);
  demux.push(hex("00000009 00100000")); // 1 MiB for conn 9
  for (let i = 0; i < 16; i++) demux.push(new Uint8Array(64 * 1024));
  demux.push(encodeFrame(1, hex("42")));
  assert.equal(toHex(stream(1)), "42");
});
