import assert from "node:assert/strict";
import { parseNetwork } from "./config.ts";
import { ANYWHERE } from "./testdata.ts";
import { computeDesired, type DesiredInput, vxlanMac } from "./desired.ts";
import type { NodeInfo } from "./nodes.ts";

const routed = parseNetwork({ allowedCIDRs: ANYWHERE, name: "default" }, 0);
const red = parseNetwork(
  {
    allowedCIDRs: ANYWHERE,
    name: "red",
    mode: "vxlan",
    protocol: 204,
    vxlan: { device: "vx-red", vni: 42 },
  },
  1,
);

function n(name: string, cidr: string, addr: string, extra: Partial<NodeInfo> = {}): NodeInfo {
  return {
    name,
    podCIDRs: cidr ? cidr.split(",") : [],
    internalIPs: addr ? addr.split(",") : [],
    annotations: {},
    ...extra,
  };
}

function redNode(name: string, cidr: string, addr: string): NodeInfo {
  return n(name, "", "", {
    annotations: { "hydra.clusternet.io/red.cidr": cidr, "hydra.clusternet.io/red.address": addr },
  });
}

function compute(nodes: NodeInfo[], over: Partial<DesiredInput> = {}) {
  return computeDesired({
    networks: [routed],
    nodes,
    localName: "n1",
    localAddresses: ["192.168.1.1", "127.0.0.1"],
    ...over,
  });
}

Deno.test("routed: one route per remote CIDR via the remote's address, none for this node", () => {
  const { networks, problems } = compute([
    n("n1", "10.244.1.0/24", "192.168.1.1"),
    n("n2", "10.244.2.0/24,fd00:2::/64", "192.168.1.2,fd99::2"),
    n("n3", "10.244.3.0/24", "192.168.1.3"),
  ]);
  assert.deepEqual(problems, []);
  const routes = [...networks[0].routes.values()].map((r) =>
    `${r.dst} via ${r.gateway} (${r.node})`
  );
  assert.deepEqual(routes.sort(), [
    "10.244.2.0/24 via 192.168.1.2 (n2)",
    "10.244.3.0/24 via 192.168.1.3 (n3)",
    "fd00:2::/64 via fd99::2 (n2)",
  ]);
  const r = networks[0].routes.get("254|10.244.2.0/24|0")!;
  assert.equal(r.protocol, 202);
  assert.ok(
    networks[0].routes.has("254|fd00:2::/64|1024"),
    "IPv6 keys carry the kernel's default metric",
  );
  assert.equal(networks[0].nodesSynced, 2);
});

Deno.test("a node without annotations is skipped with a warning, the others still routed", () => {
  const blue = parseNetwork({ allowedCIDRs: ANYWHERE, name: "blue", protocol: 203 }, 1);
  const { networks, problems } = compute([
    n("n1", "", "", {
      annotations: {
        "hydra.clusternet.io/blue.cidr": "10.245.1.0/24",
        "hydra.clusternet.io/blue.address": "192.168.1.1",
      },
    }),
    n("n2", "", "", {
      annotations: {
        "hydra.clusternet.io/blue.cidr": "10.245.2.0/24",
        "hydra.clusternet.io/blue.address": "192.168.1.2",
      },
    }),
    n("n3", "", ""),
    n("n4", "", "", {
      annotations: {
        "hydra.clusternet.io/blue.cidr": "10.245.4.0/33",
        "hydra.clusternet.io/blue.address": "192.168.1.4",
      },
    }),
  ], { networks: [blue] });
  assert.deepEqual([...networks[0].routes.values()].map((r) => r.dst), ["10.245.2.0/24"]);
  assert.deepEqual(
    problems.map((p) => `${p.kind}:${p.level}:${p.node}`).sort(),
    ["malformed_annotation:error:n4", "missing_annotation:warn:n3"],
  );
  assert.equal(networks[0].nodesSkipped, 2);
});

Deno.test("overlapping CIDRs: the earlier owner keeps its route, this node always wins", () => {
  const nodes = [
    n("n1", "10.244.1.0/24", "192.168.1.1"),
    n("b", "10.244.2.0/24", "192.168.1.2"),
    n("a", "10.244.2.128/25", "192.168.1.3"), // sorts first by name, but overlaps b
    n("c", "10.244.1.0/25", "192.168.1.4"), // overlaps this node
    n("d", "10.244.0.0/16", "192.168.1.5"), // overlaps everything
  ];
  // With no history, name order decides between remotes.
  const fresh = compute(nodes);
  assert.deepEqual([...fresh.networks[0].routes.values()].map((r) => `${r.dst}:${r.node}`), [
    "10.244.2.128/25:a",
  ]);
  const kinds = fresh.problems.map((p) => `${p.kind}:${p.node}`).sort();
  assert.deepEqual(kinds, ["overlapping_cidr:b", "overlapping_cidr:c", "overlapping_cidr:d"]);
  assert.ok(fresh.problems.some((p) => /this node's \(n1\)/.test(p.message)));
  // b was routed before a appeared: b keeps it.
  const withHistory = compute(nodes, {
    previousOwners: new Map([["default", new Map([["10.244.2.0/24", "b"]])]]),
  });
  assert.deepEqual([...withHistory.networks[0].routes.values()].map((r) => `${r.dst}:${r.node}`), [
    "10.244.2.0/24:b",
  ]);
  assert.equal(withHistory.networks[0].owners.get("10.244.2.0/24"), "b");
});

Deno.test("a CIDR containing its node's or this node's address is refused", () => {
  const { networks, problems } = compute([
    n("n1", "10.244.1.0/24", "192.168.1.1"),
    n("n2", "192.168.1.0/28", "192.168.1.20"), // contains this node's 192.168.1.1
    n("n3", "192.168.1.16/28", "192.168.1.20"), // contains its own address
    n("n4", "10.244.4.0/24", "192.168.1.4"),
  ]);
  assert.deepEqual([...networks[0].routes.values()].map((r) => r.node), ["n4"]);
  const msgs = problems.filter((p) => p.kind === "cidr_contains_node_address").map((p) =>
    p.message
  );
  assert.equal(msgs.length, 2);
  assert.ok(msgs.some((m) => /this node's address 192.168.1.1/.test(m)));
  assert.ok(msgs.some((m) => /its own address 192.168.1.20/.test(m)));
});

Deno.test("a remote node giving this node's address is refused (wrong --node-name)", () => {
  const { networks, problems } = compute([
    n("n1x", "10.244.1.0/24", "192.168.1.1"),
    n("n2", "10.244.2.0/24", "192.168.1.2"),
  ]);
  assert.equal(networks[0].routes.size, 1);
  assert.ok(problems.some((p) => p.kind === "duplicate_address" && p.node === "n1x"));
  assert.ok(problems.some((p) => p.kind === "local_node_missing"));
});

Deno.test("vxlan: device with the first local address, per remote a neighbour, FDB entry and on-link route", () => {
  const { networks, problems } = compute([
    redNode("n1", "10.246.1.0/24", "192.168.1.1"),
    redNode("n2", "10.246.2.0/24,fd46:2::/64", "192.168.1.2"),
    redNode("n3", "10.246.3.0/24", "192.168.1.3"),
  ], { networks: [red] });
  assert.deepEqual(problems, []);
  const d = networks[0];
  assert.equal(d.vxlan!.local, "192.168.1.1");
  assert.equal(d.vxlan!.mac, vxlanMac(42, "192.168.1.1"));
  assert.deepEqual(d.vxlan!.addresses, ["10.246.1.0/32"]);
  const mac2 = vxlanMac(42, "192.168.1.2");
  assert.equal(d.vxlan!.fdb.get(mac2), "192.168.1.2");
  assert.equal(d.vxlan!.neighs.get("10.246.2.0"), mac2);
  assert.equal(d.vxlan!.neighs.get("fd46:2::"), mac2);
  const r = d.routes.get("254|10.246.2.0/24|0")!;
  assert.equal(r.gateway, "10.246.2.0");
  assert.equal(r.device, "vx-red");
  assert.equal(d.routes.get("254|fd46:2::/64|1024")!.gateway, "fd46:2::");
  assert.equal(d.vxlan!.fdb.size, 2);
});

Deno.test("vxlan MACs are unicast, locally administered and differ by VNI and address", () => {
  const a = vxlanMac(1, "10.0.0.1");
  assert.equal(a, vxlanMac(1, "10.0.0.1"));
  assert.notEqual(a, vxlanMac(2, "10.0.0.1"));
  assert.notEqual(a, vxlanMac(1, "10.0.0.2"));
  const first = parseInt(a.slice(0, 2), 16);
  assert.equal(first & 1, 0, "unicast");
  assert.equal(first & 2, 2, "locally administered");
});

Deno.test("vxlan: no local address holds the network; two nodes on one underlay address are refused", () => {
  const held = compute([redNode("n2", "10.246.2.0/24", "192.168.1.2")], { networks: [red] });
  assert.equal(held.networks[0].hold, true);
  assert.ok(held.problems.some((p) => p.kind === "no_local_address"));
  const dup = compute([
    redNode("n1", "10.246.1.0/24", "192.168.1.1"),
    redNode("n2", "10.246.2.0/24", "192.168.1.2"),
    redNode("n3", "10.246.3.0/24", "192.168.1.2"),
  ], { networks: [red] });
  assert.equal(dup.networks[0].routes.size, 1);
  assert.ok(dup.problems.some((p) => p.kind === "duplicate_address" && p.node === "n3"));
});

Deno.test("5,000 nodes compute in one pass with every route present", () => {
  const nodes = Array.from(
    { length: 5000 },
    (_, i) => n(`node${i}`, `10.${100 + (i >> 8)}.${i & 255}.0/24`, `172.16.${i >> 8}.${i & 255}`),
  );
  const { networks, problems } = compute(nodes, {
    localName: "node0",
    localAddresses: ["172.16.0.0"],
  });
  assert.deepEqual(problems, []);
  assert.equal(networks[0].routes.size, 4999);
});

Deno.test("a node claiming a CIDR outside the network's allowed ranges is refused, never routed", () => {
  const blue = parseNetwork({
    name: "blue",
    protocol: 203,
    allowedCIDRs: ["10.245.0.0/16", "fd45::/48"],
  }, 1);
  const ann = (cidr: string, addr: string) => ({
    annotations: {
      "hydra.clusternet.io/blue.cidr": cidr,
      "hydra.clusternet.io/blue.address": addr,
    },
  });
  const { networks, problems } = compute([
    n("n1", "", "", ann("10.245.1.0/24", "192.168.1.1")),
    n("good", "", "", ann("10.245.2.0/24,fd45:0:0:2::/64", "192.168.1.2,fd99::2")),
    n("public", "", "", ann("8.8.8.0/24", "192.168.1.3")),
    n("metadata", "", "", ann("169.254.169.254/32", "192.168.1.4")),
    n("wider", "", "", ann("10.244.0.0/15", "192.168.1.5")),
    n("mixed", "", "", ann("10.245.6.0/24,fd46::/64", "192.168.1.6,fd99::6")),
  ], { networks: [blue] });
  assert.deepEqual([...networks[0].routes.values()].map((r) => `${r.dst} ${r.node}`).sort(), [
    "10.245.2.0/24 good",
    "fd45:0:0:2::/64 good",
  ]);
  assert.deepEqual(
    problems.map((p) => `${p.kind} ${p.level} ${p.node}`).sort(),
    ["metadata", "mixed", "public", "wider"].map((x) => `cidr_not_allowed error ${x}`),
  );
  const metadata = problems.find((p) => p.node === "metadata")!;
  assert.equal(
    metadata.message,
    "node metadata: annotation hydra.clusternet.io/blue.cidr claims 169.254.169.254/32, outside " +
      "the ranges network blue allows (10.245.0.0/16, fd45::/48); refused, not routed",
  );
  assert.equal(networks[0].nodesSkipped, 4);
});
