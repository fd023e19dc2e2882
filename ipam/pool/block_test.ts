import assert from "node:assert/strict";
import { parseIpAddr } from "../../ipaddr/ip.ts";
import {
  addressAt,
  BlockNonsenseError,
  blockObject,
  freeOffsets,
  newBlock,
  parseBlock,
} from "./block.ts";
import { type AddressBlock, blockOf, NETWORK_LABEL, NODE_LABEL, nodeKey } from "./objects.ts";

function obj(name: string, spec: Record<string, unknown>): AddressBlock {
  return { metadata: { name, resourceVersion: "7" }, spec } as unknown as AddressBlock;
}

Deno.test("block names follow from the network and the address, for both families", () => {
  assert.equal(blockOf("", parseIpAddr("10.1.0.37")!).name, "10.1.0.32-28");
  assert.equal(blockOf("blue", parseIpAddr("10.1.0.37")!).name, "blue.10.1.0.32-28");
  assert.equal(blockOf("", parseIpAddr("fd00::1f")!).name, "fd00--10-124");
  assert.equal(blockOf("", parseIpAddr("::5")!).name, "0--0-124");
  assert.equal(nodeKey("worker-1"), "worker-1");
  assert.match(nodeKey("a".repeat(70)), /^h-[0-9a-f]{16}$/);
});

Deno.test("a block survives the trip to an object and back", () => {
  const b = newBlock("blue", parseIpAddr("10.1.0.37")!, "n1");
  b.allocations.set(3, { ip: "10.1.0.35", pod: "ns/p", podUID: "u" });
  const o = blockObject(b);
  assert.equal(o.metadata.labels![NETWORK_LABEL], "blue");
  assert.equal(o.metadata.labels![NODE_LABEL], "n1");
  const back = parseBlock({ ...o, metadata: { ...o.metadata, resourceVersion: "9" } });
  assert.equal(back.allocations.get(3)?.pod, "ns/p");
  assert.equal(back.resourceVersion, "9");
  const free = freeOffsets(back, () => true);
  assert.equal(free.length, 15);
  assert.equal(free.includes(3), false);
  assert.equal(addressAt(back, 15).value, parseIpAddr("10.1.0.47")!.value);
});

Deno.test("a block edited into nonsense is refused as a whole, naming what is wrong", () => {
  const bad: [AddressBlock, RegExp][] = [
    [obj("10.1.0.32-28", { network: "", cidr: "10.1.0.32/27" }), /not an aligned block/],
    [obj("10.1.0.32-28", { network: "", cidr: "10.1.0.33/28" }), /not an aligned block/],
    [obj("10.1.0.32-28", { network: "", cidr: "10.1.0.48/28" }), /which is block 10\.1\.0\.48-28/],
    [obj("10.1.0.32-28", { network: 3, cidr: "10.1.0.32/28" }), /spec\.network/],
    [obj("10.1.0.32-28", { network: "", cidr: "10.1.0.32/28", allocations: "x" }), /not a list/],
    [
      obj("10.1.0.32-28", {
        network: "",
        cidr: "10.1.0.32/28",
        allocations: [{ ip: "10.1.0.99" }],
      }),
      /is not in 10\.1\.0\.32\/28/,
    ],
    [
      obj("10.1.0.32-28", {
        network: "",
        cidr: "10.1.0.32/28",
        allocations: [{ ip: "10.1.0.33" }, { ip: "10.1.0.33" }],
      }),
      /listed twice/,
    ],
    [
      obj("10.1.0.32-28", {
        network: "",
        cidr: "10.1.0.32/28",
        allocations: [{ ip: "10.1.0.33", pod: 5 }],
      }),
      /\.pod is not a string/,
    ],
    [obj("10.1.0.32-28", {}), /spec\.network/],
  ];
  for (const [o, pattern] of bad) {
    assert.throws(() => parseBlock(o), (err: unknown) => {
      assert.ok(err instanceof BlockNonsenseError);
      assert.match(err.message, pattern);
      assert.match(err.message, /repair or delete it by hand/);
      return true;
    });
  }
});
