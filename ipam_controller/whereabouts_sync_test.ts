import assert from "node:assert/strict";
import { newBlock } from "../ipam/pool/block.ts";
import { parseIpAddr } from "../ipaddr/ip.ts";
import { planHoldImports } from "./whereabouts_sync.ts";

Deno.test("late whereabouts allocations: recorded as holds while their pod lives; clashes reported", () => {
  const b = newBlock("blue", parseIpAddr("10.0.0.0")!, "n1");
  b.allocations.set(3, { ip: "10.0.0.3", pod: "ns/hydra-pod", podUID: "u" });
  b.allocations.set(4, { ip: "10.0.0.4", source: "whereabouts", pod: "ns/old" });
  const holds = [
    { ip: parseIpAddr("10.0.0.2")!, podRef: "ns/late", containerID: "c", ifName: "net1" },
    { ip: parseIpAddr("10.0.0.3")!, podRef: "ns/clash" },
    { ip: parseIpAddr("10.0.0.4")!, podRef: "ns/old" },
    { ip: parseIpAddr("10.0.0.5")!, podRef: "ns/gone" },
    { ip: parseIpAddr("10.9.0.5")!, podRef: "ns/late" },
  ];
  const live = new Set(["ns/late", "ns/clash", "ns/old"]);
  const plan = planHoldImports(holds, [b], live, new Date("2030-01-01T00:00:00Z"));
  assert.equal(plan.drafts.length, 1);
  const added = plan.drafts[0].allocations.get(2)!;
  assert.deepEqual(added, {
    ip: "10.0.0.2",
    source: "whereabouts",
    pod: "ns/late",
    containerID: "c",
    interface: "net1",
    time: "2030-01-01T00:00:00Z",
  });
  assert.equal(plan.drafts[0].allocations.has(5), false, "a gone pod's hold is not recorded");
  assert.deepEqual(plan.conflicts, [{
    ip: "10.0.0.3",
    whereabouts: "ns/clash",
    hydra: "ns/hydra-pod",
    block: b.name,
  }]);
  assert.equal(b.allocations.has(2), false, "the parsed block itself is not changed");
});
