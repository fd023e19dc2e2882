import assert from "node:assert/strict";
import { newBlock } from "../ipam/pool/block.ts";
import type { AddressPool } from "../ipam/pool/objects.ts";
import { parseIpAddr } from "../ipaddr/ip.ts";
import { countPool } from "./counts.ts";

function pool(spec: Partial<AddressPool["spec"]>): AddressPool {
  return {
    metadata: { name: "p" },
    spec: {
      network: "",
      cidr: "10.0.0.0/24",
      rangeStart: "10.0.0.1",
      rangeEnd: "10.0.0.254",
      overlapping: true,
      ...spec,
    },
  };
}

Deno.test("size is the window less its exclusions, overlapping exclusions counted once", () => {
  assert.equal(countPool(pool({}), [])!.size, 254);
  const ex = pool({ exclude: ["10.0.0.0/30", "10.0.0.2/31", "10.0.0.200/32", "10.1.0.0/16"] });
  // 10.0.0.1-3 (the window starts at .1) and .200.
  assert.equal(countPool(ex, [])!.size, 250);
  const v6 = pool({
    cidr: "fd00::/64",
    rangeStart: "fd00::1",
    rangeEnd: "fd00::ffff:ffff:ffff:fffe",
  });
  assert.equal(countPool(v6, [])!.size, Number.MAX_SAFE_INTEGER, "capped");
});

Deno.test("allocated counts the window's recorded addresses, excluded ones left out", () => {
  const b = newBlock("", parseIpAddr("10.0.0.0")!, "n1");
  b.allocations.set(1, { ip: "10.0.0.1" });
  b.allocations.set(5, { ip: "10.0.0.5", source: "whereabouts" });
  const other = newBlock("", parseIpAddr("10.0.1.0")!, "n2");
  other.allocations.set(1, { ip: "10.0.1.1" });
  const c = countPool(pool({ exclude: ["10.0.0.1/32"] }), [b, other])!;
  assert.deepEqual(c, { size: 253, allocated: 1, free: 252, blocks: 1 });
});
