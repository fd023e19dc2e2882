import assert from "node:assert/strict";
import { parseNetwork } from "./config.ts";
import { ANYWHERE } from "./testdata.ts";
import {
  nodeCidr,
  nodeFromKube,
  type NodeInfo,
  NodeListError,
  nodeNetwork,
  parseNodeList,
  sameNode,
} from "./nodes.ts";

const defaultNet = parseNetwork({ allowedCIDRs: ANYWHERE, name: "default" }, 0);
const blue = parseNetwork({ allowedCIDRs: ANYWHERE, name: "blue", protocol: 203 }, 1);

function node(over: Partial<NodeInfo> = {}): NodeInfo {
  return { name: "n1", podCIDRs: [], internalIPs: [], annotations: {}, ...over };
}

Deno.test("nodeCidr clears host bits and gives the range", () => {
  const c = nodeCidr("10.244.1.7/24")!;
  assert.equal(c.cidr, "10.244.1.0/24");
  assert.equal(c.first, "10.244.1.0");
  assert.deepEqual([c.start, c.end], ["0af40100", "0af401ff"]);
  assert.equal(nodeCidr("fd00:1::/64")!.family, 6);
  assert.deepEqual(nodeCidr("0.0.0.0/0"), {
    cidr: "0.0.0.0/0",
    family: 4,
    first: "0.0.0.0",
    start: "00000000",
    end: "ffffffff",
  });
  assert.equal(nodeCidr("255.255.255.255/32")!.start, "ffffffff");
  assert.equal(nodeCidr("192.168.7.200/30")!.cidr, "192.168.7.200/30");
  assert.equal(nodeCidr("192.168.7.201/31")!.end, "c0a807c9");
  // The IPv4 fast path and the generic path agree.
  assert.deepEqual(nodeCidr("10.1.2.3/20"), {
    cidr: "10.1.0.0/20",
    family: 4,
    first: "10.1.0.0",
    start: "0a010000",
    end: "0a010fff",
  });
  assert.equal(nodeCidr("fd00:1::7/64")!.cidr, "fd00:1::/64");
  for (
    const bad of [
      "banana",
      "10.0.0.0/33",
      "10.0.0.1",
      "10.0.0/8",
      "",
      "010.0.0.0/8",
      "10.0.0.256/24",
      "10.0.0.0/08",
    ]
  ) {
    assert.equal(nodeCidr(bad), undefined, bad);
  }
});

Deno.test("default network: spec.podCIDRs and InternalIP; secondary: the two annotations", () => {
  const n = node({
    podCIDRs: ["10.244.1.0/24", "fd00:1::/64"],
    internalIPs: ["192.168.1.1"],
    annotations: {
      "hydra.clusternet.io/blue.cidr": " 10.245.1.0/24 , fd01:1::/64 ",
      "hydra.clusternet.io/blue.address": "192.168.2.1,fd02::1",
    },
  });
  const d = nodeNetwork(n, defaultNet);
  assert.ok(d.ok);
  assert.deepEqual(d.cidrs.map((c) => c.cidr), ["10.244.1.0/24", "fd00:1::/64"]);
  assert.deepEqual(d.addresses, ["192.168.1.1"]);
  const b = nodeNetwork(n, blue);
  assert.ok(b.ok);
  assert.deepEqual(b.cidrs.map((c) => c.cidr), ["10.245.1.0/24", "fd01:1::/64"]);
  assert.deepEqual(b.addresses, ["192.168.2.1", "fd02::1"]);
});

Deno.test("missing annotations are a warning-level outcome, malformed ones an error", () => {
  const missing = nodeNetwork(
    node({ annotations: { "hydra.clusternet.io/blue.cidr": "10.1.0.0/24" } }),
    blue,
  );
  assert.equal(missing.ok, false);
  assert.equal(!missing.ok && missing.kind, "missing_annotation");
  assert.match(
    !missing.ok ? missing.message : "",
    /no annotation hydra.clusternet.io\/blue.address/,
  );
  const badCidr = nodeNetwork(
    node({ annotations: { "hydra.clusternet.io/blue.cidr": "10.1.0.0/24,banana" } }),
    blue,
  );
  assert.equal(!badCidr.ok && badCidr.kind, "malformed_annotation");
  assert.match(!badCidr.ok ? badCidr.message : "", /"banana", not a CIDR/);
  const badAddr = nodeNetwork(
    node({
      annotations: {
        "hydra.clusternet.io/blue.cidr": "10.1.0.0/24",
        "hydra.clusternet.io/blue.address": "10.0.0.300",
      },
    }),
    blue,
  );
  assert.equal(!badAddr.ok && badAddr.kind, "malformed_annotation");
  const noPodCidr = nodeNetwork(node({ internalIPs: ["10.0.0.1"] }), defaultNet);
  assert.match(!noPodCidr.ok ? noPodCidr.message : "", /no spec.podCIDRs for network default/);
});

Deno.test("Node objects reduce to name, podCIDRs, InternalIPs and annotations", () => {
  const n = nodeFromKube({
    metadata: { name: "w1", annotations: { a: "b" } },
    spec: { podCIDR: "10.244.3.0/24" },
    status: {
      addresses: [{ type: "Hostname", address: "w1" }, { type: "InternalIP", address: "10.0.0.3" }],
    },
  });
  assert.deepEqual(n, {
    name: "w1",
    podCIDRs: ["10.244.3.0/24"],
    internalIPs: ["10.0.0.3"],
    annotations: { a: "b" },
  });
});

Deno.test("node lists: plain entries (YAML, JSON) and Node objects (kubectl output)", async () => {
  const plain = await parseNodeList(`
nodes:
  - name: a
    podCIDRs: [10.244.1.0/24]
    addresses: [192.168.1.1]
    annotations: { x.io/c: "10.9.0.0/24" }
`);
  assert.deepEqual(plain, [{
    name: "a",
    podCIDRs: ["10.244.1.0/24"],
    internalIPs: ["192.168.1.1"],
    annotations: { "x.io/c": "10.9.0.0/24" },
  }]);
  const json = await parseNodeList(
    '{"nodes":[{"name":"b","podCIDRs":"10.244.2.0/24","addresses":"192.168.1.2"}]}',
  );
  assert.deepEqual(json[0].podCIDRs, ["10.244.2.0/24"]);
  const kubectl = await parseNodeList(`
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Node
    metadata: { name: c }
    spec: { podCIDRs: [10.244.3.0/24] }
    status: { addresses: [{ type: InternalIP, address: 192.168.1.3 }] }
`);
  assert.deepEqual(kubectl[0].internalIPs, ["192.168.1.3"]);
  assert.deepEqual(await parseNodeList("nodes: []"), []);
  assert.deepEqual(await parseNodeList("[]"), []);
});

Deno.test("bad node lists are refused as a whole", async () => {
  const cases: [string, RegExp][] = [
    ["nodes: [{ podCIDRs: [] }]", /name is missing/],
    ["nodes: [{ name: a }, { name: a }]", /listed twice/],
    ["nodes: [{ name: a, podCIDRs: [1, 2] }]", /list of strings/],
    ["nodes: [{ name: a, annotations: { k: 1 } }]", /must be a string/],
    ["nodes: 5", /must be a list/],
    ["{ nodes: [", /not YAML or JSON/],
    ["", /no "nodes" list/],
    ["nodes:", /no "nodes" list/],
    ["# nothing yet\n", /no "nodes" list/],
  ];
  for (const [text, re] of cases) {
    await assert.rejects(() => parseNodeList(text, "n.yaml"), (err: unknown) => {
      assert.ok(err instanceof NodeListError, text);
      assert.match(err.message, re, text);
      return true;
    });
  }
});

Deno.test("only the annotations the networks read are kept, so other changes are no change", () => {
  const keys = new Set(["hydra.clusternet.io/blue.cidr"]);
  const base = {
    metadata: {
      name: "w1",
      annotations: { "hydra.clusternet.io/blue.cidr": "10.245.1.0/24", "other/heartbeat": "1" },
    },
  };
  const a = nodeFromKube(base, keys);
  assert.deepEqual(a.annotations, { "hydra.clusternet.io/blue.cidr": "10.245.1.0/24" });
  const b = nodeFromKube({
    metadata: {
      ...base.metadata,
      annotations: { ...base.metadata.annotations, "other/heartbeat": "2" },
    },
  }, keys);
  assert.ok(sameNode(a, b));
  assert.ok(!sameNode(a, { ...a, internalIPs: ["10.0.0.1"] }));
  assert.ok(
    !sameNode(a, { ...a, annotations: { "hydra.clusternet.io/blue.cidr": "10.245.2.0/24" } }),
  );
});

Deno.test("sameNode: every field counts, annotations by key and value whatever their order", () => {
  const a = {
    name: "n1",
    podCIDRs: ["10.244.1.0/24"],
    internalIPs: ["192.168.1.10"],
    annotations: { x: "1", y: "2" },
  };
  assert.ok(sameNode(a, { ...a, annotations: { y: "2", x: "1" } }));
  assert.ok(!sameNode(a, { ...a, name: "n2" }));
  assert.ok(!sameNode(a, { ...a, podCIDRs: ["10.244.1.0/24", "fd00::/64"] }));
  assert.ok(!sameNode(a, { ...a, podCIDRs: ["10.244.2.0/24"] }));
  assert.ok(!sameNode(a, { ...a, internalIPs: [] }));
  assert.ok(!sameNode(a, { ...a, annotations: { x: "1" } }));
  assert.ok(!sameNode(a, { ...a, annotations: { x: "1", y: "2", z: "3" } }));
  assert.ok(!sameNode(a, { ...a, annotations: { x: "1", z: "2" } }));
  assert.ok(!sameNode({ ...a, annotations: {} }, a));
});
