import assert from "node:assert/strict";
import { podAddresses } from "./controller.ts";
import {
  evaluate,
  type NetworkObject,
  type SubnetObject,
  subnetSize,
} from "../hybridnet/objects.ts";
import { NET } from "./testdata.ts";

const network: NetworkObject = {
  metadata: { name: "hy" },
  spec: { mode: "hybrid", vni: 7000, uplink: "br-fab" },
};

function subnet(name: string, created: string, spec: Record<string, unknown>): SubnetObject {
  return {
    metadata: { name, creationTimestamp: created, generation: 1 },
    spec: { network: "hy", ...spec },
  };
}

Deno.test("objects: a subnet's size leaves out gateway and excludes, overlapping ones counted once", () => {
  const [ov, fab] = NET.subnets;
  assert.equal(subnetSize(ov), 65534);
  assert.equal(subnetSize(fab), 128);
  assert.equal(
    subnetSize({ ...fab, excludes: ["192.168.50.64/28", "192.168.50.70/32", "10.0.0.0/8"] }),
    112,
  );
  assert.equal(
    subnetSize({ ...fab, start: undefined, end: undefined }),
    253,
    "without .0, .255 and the gateway",
  );
});

Deno.test("objects: the older subnet keeps its addresses; counts per subnet and network", () => {
  const ev = evaluate(
    [network],
    [
      subnet("clash", "2026-01-02T00:00:00Z", { kind: "overlay", cidr: "10.250.9.0/24" }),
      subnet("ov", "2026-01-01T00:00:00Z", { kind: "overlay", cidr: "10.250.0.0/16" }),
      subnet("bad", "2026-01-01T00:00:00Z", {
        kind: "underlay",
        cidr: "10.9.0.0/24",
        gateway: "10.8.0.1",
      }),
      {
        ...subnet("lost", "2026-01-01T00:00:00Z", { kind: "overlay", cidr: "10.7.0.0/24" }),
        spec: { network: "nope", kind: "overlay", cidr: "10.7.0.0/24" },
      },
    ],
    ["10.250.9.5", "10.250.1.1", "10.250.1.1", "172.16.0.1", "fd00::1"],
  );
  assert.equal(ev.subnets.get("ov")!.phase, "Ready");
  assert.equal(ev.subnets.get("ov")!.used, 2, "an address counts once, in the accepted subnet");
  assert.equal(ev.subnets.get("clash")!.phase, "Refused");
  assert.equal(ev.subnets.get("bad")!.reason, "Invalid");
  assert.match(ev.subnets.get("bad")!.message!, /gateway 10\.8\.0\.1 is not in 10\.9\.0\.0\/24/);
  assert.equal(ev.subnets.get("lost")!.phase, "Pending");
  assert.deepEqual(ev.networks.get("hy"), { subnets: 1, total: 65534, used: 2, available: 65532 });
  assert.deepEqual(ev.accepted.map((n) => n.subnets.map((s) => s.name)), [["ov"]]);
});

Deno.test("controller: pod addresses from network-status; finished pods and broken annotations count nothing", () => {
  const ann = (v: string) => ({
    metadata: { annotations: { "k8s.v1.cni.cncf.io/network-status": v } },
  });
  assert.deepEqual(
    podAddresses([
      ann(JSON.stringify([{ name: "a", ips: ["10.250.1.2", 7] }, { name: "b" }])),
      ann("{not json"),
      ann(JSON.stringify({ ips: ["1.2.3.4"] })),
      { ...ann(JSON.stringify([{ ips: ["10.250.1.3"] }])), status: { phase: "Succeeded" } },
      { metadata: {} },
    ]),
    ["10.250.1.2"],
  );
});

Deno.test("objects: a pool-backed subnet stays one through the objects, of either kind", () => {
  const ev = evaluate([network], [
    subnet("ovp", "2026-01-01T00:00:00Z", { kind: "overlay", cidr: "10.251.0.0/16", pool: true }),
    subnet("fab", "2026-01-01T00:00:01Z", {
      kind: "underlay",
      cidr: "192.168.50.0/24",
      gateway: "192.168.50.1",
      pool: true,
    }),
  ], []);
  assert.deepEqual(
    ev.accepted[0].subnets.map((s) => [s.name, s.kind, s.pool, s.blockSize]),
    [["ovp", "overlay", true, 28], ["fab", "underlay", true, 28]],
  );
});
