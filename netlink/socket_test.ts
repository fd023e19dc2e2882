import assert from "node:assert/strict";
import { withNetns } from "../tests/helpers/netns.ts";
import { RTM } from "./constants.ts";
import { addLink, getLink, listLinks } from "./link.ts";
import { beginDump, closeHandle, executeDump, openHandle } from "./socket.ts";

Deno.test("a handle stays usable after a dump callback throws half-way", async () => {
  await withNetns(1, (ns) => {
    const h = openHandle({ netnsPath: ns.path });
    try {
      // Enough links for the dump to span several datagrams.
      for (let i = 0; i < 80; i++) addLink(h, { kind: "bridge", name: `br${i}` });
      const w = beginDump(h, RTM.GETLINK);
      for (let i = 0; i < 4; i++) w.u32(0); // empty ifinfomsg
      let calls = 0;
      assert.throws(
        () =>
          executeDump(h, "list links", () => {
            calls++;
            throw new Error("parse failed");
          }),
        /parse failed/,
      );
      assert.equal(calls, 1, "no callbacks after the first failure");
      assert.equal(listLinks(h).length, 81);
      assert.equal(getLink(h, "br79").kind, "bridge");
    } finally {
      closeHandle(h);
    }
    return Promise.resolve();
  });
});

Deno.test("a closed handle refuses requests with EBADF", () => {
  const h = openHandle();
  closeHandle(h);
  closeHandle(h);
  assert.throws(() => listLinks(h), (e) => e instanceof Error && /EBADF/.test(e.message));
});

Deno.test("what a handle read stays intact after the handle is closed and its buffer serves the next one", async () => {
  await withNetns(2, (a, b) => {
    const ha = openHandle({ netnsPath: a.path });
    for (let i = 0; i < 30; i++) addLink(ha, { kind: "bridge", name: `a${i}` });
    const fromA = listLinks(ha);
    const seen = JSON.stringify(fromA);
    closeHandle(ha);
    assert.equal(ha.recvBuf.length, 0, "a closed handle keeps no buffer");
    const hb = openHandle({ netnsPath: b.path });
    try {
      for (let i = 0; i < 30; i++) {
        addLink(hb, { kind: "bridge", name: `b-${i}-longer-name`.slice(0, 15) });
      }
      assert.equal(listLinks(hb).length, 31);
      assert.equal(JSON.stringify(fromA), seen);
      assert.ok(fromA.some((l) => l.name === "a29"));
    } finally {
      closeHandle(hb);
    }
    return Promise.resolve();
  });
});
