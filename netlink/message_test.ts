import assert from "node:assert/strict";
import { errnoName, errnoNumber, isExists, isNotFound, NetlinkError } from "./errors.ts";
import {
  attr,
  createWriter,
  getU16,
  getU32,
  NLA_F_NESTED,
  parseAttrList,
  parseAttrs,
} from "./message.ts";

Deno.test("writer lays out header, aligned attributes and nests; parser reads them back", () => {
  const w = createWriter(8); // tiny, to exercise growth
  w.begin(16, 0x405, 77);
  w.u32(0xdeadbeef);
  w.attrU8(1, 7);
  w.attrU16(2, 0x1234);
  w.attrBe16(3, 4789);
  w.attrU32(4, 0xffffffff);
  w.attrString(5, "veth0");
  const nest = w.nestStart(6);
  w.attrString(1, "vxlan");
  const inner = w.nestStart(2);
  w.attrU32(1, 42);
  w.nestEnd(inner);
  w.nestEnd(nest);
  w.attrFlag(7);
  const msg = w.finish();
  assert.equal(getU32(msg, 0), msg.length);
  assert.equal(msg.length % 4, 0);
  assert.equal(getU16(msg, 4), 16);
  assert.equal(getU16(msg, 6), 0x405);
  assert.equal(getU32(msg, 8), 77);
  assert.equal(getU32(msg, 16), 0xdeadbeef);
  const a = parseAttrs(msg, 20);
  assert.equal(attr.u8(a, 1), 7);
  assert.equal(attr.u16(a, 2), 0x1234);
  assert.equal(attr.be16(a, 3), 4789);
  assert.equal(attr.u32(a, 4), 0xffffffff);
  assert.equal(attr.str(a, 5), "veth0");
  assert.equal(a.get(5)!.length, 6, "NUL-terminated");
  const n = attr.nested(a, 6)!;
  assert.equal(attr.str(n, 1), "vxlan");
  assert.equal(attr.u32(attr.nested(n, 2)!, 1), 42);
  assert.equal(a.get(7)!.length, 0);
  // The nested bit is set on the wire and masked off when parsing.
  const raw = parseAttrList(msg.subarray(20));
  assert.deepEqual(raw.map(([t]) => t), [1, 2, 3, 4, 5, 6, 7]);
  let off = 20;
  for (let i = 0; i < 5; i++) off += (getU16(msg, off) + 3) & ~3;
  assert.equal(getU16(msg, off + 2), 6 | NLA_F_NESTED);
});

Deno.test("begin resets the buffer for the next message", () => {
  const w = createWriter();
  w.begin(1, 0, 1);
  w.attrString(1, "a long string that takes some room");
  const first = w.finish().length;
  w.begin(2, 0, 2);
  w.attrU32(1, 1);
  const second = w.finish();
  assert.ok(second.length < first);
  assert.equal(second.length, 24);
});

Deno.test("truncated attributes are ignored, not read past the end", () => {
  const buf = new Uint8Array([8, 0, 1, 0, 1, 2, 3, 4, 40, 0, 2, 0, 9, 9]);
  const a = parseAttrs(buf);
  assert.equal(attr.u32(a, 1), 0x04030201);
  assert.equal(a.has(2), false);
});

Deno.test("errno names and error classification", () => {
  assert.equal(errnoName(17), "EEXIST");
  assert.equal(errnoName(19), "ENODEV");
  assert.equal(errnoName(1), "EPERM");
  assert.equal(errnoName(9999), "E9999");
  assert.equal(errnoNumber("ENOENT"), 2);
  const e = new NetlinkError('add link "x"', 17, "kernel says no");
  assert.equal(e.code, "EEXIST");
  assert.equal(e.errno, 17);
  assert.equal(e.name, "NetlinkError");
  assert.match(e.message, /add link "x": EEXIST \(File exists\): kernel says no/);
  assert.ok(isExists(e));
  assert.ok(!isNotFound(e));
  for (const errno of [2, 3, 6, 19, 99]) {
    assert.ok(isNotFound(new NetlinkError("x", errno)), String(errno));
  }
  assert.ok(!isExists(new Error("EEXIST")));
});
