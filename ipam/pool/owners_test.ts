import assert from "node:assert/strict";
import { parseIpAddr } from "../../ipaddr/ip.ts";
import { newBlock } from "./block.ts";
import { OwnerIndex } from "./owners.ts";

Deno.test("blocks are found by sandbox, pod UID and pod name, and forgotten when they change", () => {
  const idx = new OwnerIndex();
  const a = newBlock("", parseIpAddr("10.0.0.0")!, "n1");
  a.allocations.set(1, {
    ip: "10.0.0.1",
    containerID: "c1",
    interface: "net1",
    podUID: "u1",
    pod: "ns/p1",
  });
  const b = newBlock("", parseIpAddr("10.0.0.16")!, "n2");
  b.allocations.set(2, { ip: "10.0.0.18", containerID: "c2", interface: "net1", pod: "ns/web-0" });
  idx.index(a);
  idx.index(b);
  const req = (containerID: string, pod?: { namespace: string; name: string; uid?: string }) =>
    idx.blocksFor({ containerID, ifName: "net1", pod });
  assert.deepEqual([...req("c1")], [a.name]);
  assert.deepEqual([...req("c9", { namespace: "ns", name: "x", uid: "u1" })], [a.name]);
  assert.deepEqual([...req("c9", { namespace: "ns", name: "web-0" })], [b.name]);
  assert.deepEqual([...req("c9", { namespace: "ns", name: "other" })], []);
  a.allocations.delete(1);
  idx.index(a);
  assert.deepEqual([...req("c1")], []);
  assert.deepEqual(
    [...idx.blocksFor({ containerID: "c1", ifName: "net2" })],
    [],
    "another interface",
  );
});
