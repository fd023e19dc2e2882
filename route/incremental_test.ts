import assert from "node:assert/strict";
import fc from "fast-check";
import { parseNetwork } from "./config.ts";
import { ANYWHERE } from "./testdata.ts";
import { computeDesired, type DesiredInput, type DesiredState } from "./desired.ts";
import { applyNodeChanges } from "./incremental.ts";
import type { NodeInfo } from "./nodes.ts";

const networks = [
  parseNetwork({ allowedCIDRs: ANYWHERE, name: "default" }, 0),
  parseNetwork({
    allowedCIDRs: ANYWHERE,
    name: "red",
    mode: "vxlan",
    protocol: 203,
    vxlan: { device: "vx", vni: 9 },
  }, 1),
];
const LOCAL = "n0";
const local: NodeInfo = {
  name: LOCAL,
  podCIDRs: ["10.244.0.0/24"],
  internalIPs: ["192.168.0.1"],
  annotations: {
    "hydra.clusternet.io/red.cidr": "10.246.0.0/24",
    "hydra.clusternet.io/red.address": "192.168.0.1",
  },
};

// Small pools so that overlaps, shared addresses and bad values happen often.
const cidrArb = fc.constantFrom(
  "10.244.1.0/24",
  "10.244.2.0/24",
  "10.244.3.0/24",
  "10.244.4.0/23",
  "10.244.5.0/25",
  "10.244.0.128/25", // overlaps this node
  "fd00:1::/64",
  "fd00:2::/64",
);
const addrArb = fc.constantFrom(
  "192.168.0.2",
  "192.168.0.3",
  "192.168.0.4",
  "192.168.0.5",
  "192.168.0.1", // this node's own
  "fd99::2",
  "not-an-ip",
);
const nodeArb = (name: string) =>
  fc.record({
    podCIDRs: fc.array(cidrArb, { minLength: 0, maxLength: 2 }),
    internalIPs: fc.array(addrArb, { minLength: 1, maxLength: 2 }),
    red: fc.option(fc.tuple(cidrArb.map((c) => c.replace("10.244", "10.246")), addrArb)),
  }).map((r): NodeInfo => ({
    name,
    podCIDRs: r.podCIDRs,
    internalIPs: r.internalIPs.filter((a) => a !== "not-an-ip"),
    annotations: r.red
      ? { "hydra.clusternet.io/red.cidr": r.red[0], "hydra.clusternet.io/red.address": r.red[1] }
      : {},
  }));
const NAMES = ["n1", "n2", "n3", "n4", "n5", "n6"];
const opArb = fc.array(
  fc.tuple(fc.constantFrom(...NAMES), fc.option(fc.constantFrom(...NAMES).chain(nodeArb))),
  { minLength: 1, maxLength: 3 },
);

function normalize(s: DesiredState) {
  return {
    problems: s.problems.map((p) => `${p.kind}|${p.network}|${p.node}|${p.message}`).sort(),
    networks: s.networks.map((d) => ({
      name: d.net.name,
      hold: d.hold,
      routes: [...d.routes.values()].map((r) => `${r.key} ${r.sig} ${r.node}`).sort(),
      owners: [...d.owners].map(([c, n]) => `${c}=${n}`).sort(),
      fdb: [...(d.vxlan?.fdb ?? [])].map(([m, u]) => `${m}>${u}`).sort(),
      neighs: [...(d.vxlan?.neighs ?? [])].map(([ip, m]) => `${ip}=${m}`).sort(),
      addresses: d.vxlan?.addresses,
      synced: d.nodesSynced,
      skipped: d.nodesSkipped,
    })),
  };
}

function input(nodes: Map<string, NodeInfo>, prev?: DesiredState): DesiredInput {
  return {
    networks,
    nodes: nodes.values(),
    localName: LOCAL,
    localAddresses: ["192.168.0.1"],
    previousOwners: new Map(prev?.networks.map((d) => [d.net.name, new Map(d.owners)]) ?? []),
  };
}

Deno.test("applying changed nodes alone gives what a full computation gives, and names every touched key", () => {
  let applied = 0;
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 1, maxLength: 12 }), (ops) => {
      const nodes = new Map<string, NodeInfo>([[LOCAL, local]]);
      let state = computeDesired(input(nodes));
      for (const op of ops) {
        const changed = new Set<string>();
        for (const [name, node] of op) {
          if (node) nodes.set(name, { ...node, name });
          else nodes.delete(name);
          changed.add(name);
        }
        const before = normalize(state);
        const mirror = state.networks.map((d) => ({
          routes: new Map([...d.routes].map(([k, r]) => [k, r.sig])),
          fdb: new Map(d.vxlan?.fdb ?? []),
          neighs: new Map(d.vxlan?.neighs ?? []),
        }));
        const full = computeDesired(input(nodes, state));
        const touched = applyNodeChanges(state, nodes, changed, LOCAL);
        if (!touched) {
          assert.deepEqual(normalize(state), before, "a declined change leaves the state alone");
          state = full;
          continue;
        }
        applied++;
        assert.deepEqual(normalize(state), normalize(full));
        // Replaying only the touched keys onto the old state reaches the new one.
        state.networks.forEach((d, i) => {
          const keys = touched.get(d.net.name)!;
          const m = mirror[i];
          for (const k of keys.routes) {
            const r = d.routes.get(k);
            if (r) m.routes.set(k, r.sig);
            else m.routes.delete(k);
          }
          for (const mac of keys.fdb) {
            const u = d.vxlan?.fdb.get(mac);
            if (u) m.fdb.set(mac, u);
            else m.fdb.delete(mac);
          }
          for (const ip of keys.neighs) {
            const mac = d.vxlan?.neighs.get(ip);
            if (mac) m.neighs.set(ip, mac);
            else m.neighs.delete(ip);
          }
          assert.deepEqual(m.routes, new Map([...d.routes].map(([k, r]) => [k, r.sig])));
          assert.deepEqual(m.fdb, new Map(d.vxlan?.fdb ?? []));
          assert.deepEqual(m.neighs, new Map(d.vxlan?.neighs ?? []));
        });
      }
    }),
    { numRuns: 300 },
  );
  assert.ok(applied > 100, `the incremental path was taken ${applied} times`);
});

Deno.test("a change to this node or one that overlaps another node is left to a full computation", () => {
  const nodes = new Map<string, NodeInfo>([
    [LOCAL, local],
    ["n1", {
      name: "n1",
      podCIDRs: ["10.244.1.0/24"],
      internalIPs: ["192.168.0.2"],
      annotations: {},
    }],
  ]);
  const state = computeDesired(input(nodes));
  assert.equal(applyNodeChanges(state, nodes, new Set([LOCAL]), LOCAL), undefined);
  nodes.set("n2", {
    name: "n2",
    podCIDRs: ["10.244.1.0/25"],
    internalIPs: ["192.168.0.3"],
    annotations: {},
  });
  assert.equal(applyNodeChanges(state, nodes, new Set(["n2"]), LOCAL), undefined);
  nodes.set("n2", {
    name: "n2",
    podCIDRs: ["10.244.2.0/24"],
    internalIPs: ["192.168.0.3"],
    annotations: {},
  });
  const touched = applyNodeChanges(state, nodes, new Set(["n2"]), LOCAL)!;
  assert.deepEqual([...touched.get("default")!.routes], ["254|10.244.2.0/24|0"]);
  assert.equal(state.networks[0].routes.get("254|10.244.2.0/24|0")?.gateway, "192.168.0.3");
});
