import assert from "node:assert/strict";
import { type MultiNetworkPolicy, parsePolicy, POLICY_FOR_ANNOTATION } from "./spec.ts";

function mnp(spec: unknown, policyFor: string | null = "blue"): MultiNetworkPolicy {
  return {
    metadata: {
      name: "p",
      namespace: "ns1",
      uid: "u1",
      resourceVersion: "7",
      annotations: policyFor === null ? {} : { [POLICY_FOR_ANNOTATION]: policyFor },
    },
    spec,
  };
}

Deno.test("parsePolicy: networks, defaults of policyTypes, peers and ports", () => {
  const { policy, errors } = parsePolicy(mnp({
    podSelector: { matchLabels: { app: "a" } },
    ingress: [{
      from: [
        { podSelector: { matchLabels: { role: "c" } } },
        { namespaceSelector: {} },
        { podSelector: {}, namespaceSelector: { matchLabels: { team: "t" } } },
        { ipBlock: { cidr: "10.1.2.3/16", except: ["10.1.5.0/24"] } },
      ],
      ports: [{ port: 80 }, { protocol: "UDP", port: 53, endPort: 54 }, { port: "http" }, {
        protocol: "SCTP",
      }],
    }],
  }, " blue , other/red,blue,"));
  assert.deepEqual(errors, []);
  assert.ok(policy);
  assert.deepEqual(policy.networks, ["ns1/blue", "other/red"]);
  assert.equal(policy.egress, undefined, "no egress section: ingress only");
  const rule = policy.ingress![0];
  assert.deepEqual(rule.ports, [
    { protocol: "tcp", port: 80 },
    { protocol: "udp", port: 53, endPort: 54 },
    { protocol: "tcp", name: "http" },
    { protocol: "sctp" },
  ]);
  assert.equal(rule.peers[0].kind === "pods" && rule.peers[0].namespaces, "own");
  const block = rule.peers[3];
  assert.ok(block.kind === "ipBlock");
  assert.equal(block.cidr.prefix, 16);
  assert.equal(block.cidr.ip.value, 0x0a010000n, "host bits cleared");
  const egressOnly = parsePolicy(mnp({ podSelector: {}, egress: [{}] })).policy!;
  assert.ok(egressOnly.ingress && egressOnly.egress, "egress rules given: both");
  const explicit = parsePolicy(mnp({ podSelector: {}, policyTypes: ["Egress"] })).policy!;
  assert.equal(explicit.ingress, undefined);
  assert.deepEqual(explicit.egress, []);
});

Deno.test("parsePolicy: invalid input is refused with the field, and its scope kept", () => {
  const cases: [unknown, RegExp][] = [
    [
      { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/33" } }] }] },
      /cidr: "10.0.0.0\/33" is not a CIDR/,
    ],
    [{
      podSelector: {},
      ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8", except: ["11.0.0.0/16"] } }] }],
    }, /not a strict subset/],
    [{ podSelector: {}, ingress: [{ ports: [{ port: 70000 }] }] }, /port: 70000 is not 1-65535/],
    [{ podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] }, /port: 0/],
    [{ podSelector: {}, ingress: [{ ports: [{ port: "Not_A_Name" }] }] }, /is not a port name/],
    [
      { podSelector: {}, ingress: [{ ports: [{ port: "http", endPort: 90 }] }] },
      /not allowed with a named port/,
    ],
    [{ podSelector: {}, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }, /endPort: 80/],
    [{ podSelector: {}, ingress: [{ ports: [{ protocol: "ICMP" }] }] }, /"ICMP" is not TCP/],
    [
      { podSelector: {}, ingress: [{ from: [{}] }] },
      /needs podSelector, namespaceSelector or ipBlock/,
    ],
    [{
      podSelector: {},
      ingress: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} }] }],
    }, /cannot be combined/],
    [{ podSelector: {}, policyTypes: ["Sideways"] }, /"Sideways" is not Ingress or Egress/],
    [{}, /podSelector: missing/],
    [
      { podSelector: {}, ingress: Array.from({ length: 129 }, () => ({})) },
      /129 items, more than 128/,
    ],
    [
      {
        podSelector: {},
        ingress: Array.from({ length: 9 }, () => ({
          from: Array.from({ length: 120 }, () => ({ podSelector: {} })),
        })),
      },
      /1080 peers in all, more than 1024/,
    ],
  ];
  for (const [spec, re] of cases) {
    const check = parsePolicy(mnp(spec));
    assert.equal(check.policy, undefined, JSON.stringify(spec));
    assert.match(check.errors.join("\n"), re, JSON.stringify(spec));
    assert.deepEqual(check.scope.networks, ["ns1/blue"]);
  }
  const badSel = parsePolicy(mnp({ podSelector: { matchLabels: { "!": "x" } } }));
  assert.equal(badSel.scope.podSelector, undefined, "unreadable selector: every pod");
  const badTypes = parsePolicy(mnp({ podSelector: {}, policyTypes: ["Egress", "Nope"] }));
  assert.equal(badTypes.scope.ingress && badTypes.scope.egress, true, "both directions");
  const badFor = parsePolicy(mnp({ podSelector: {} }, "a/b/c"));
  assert.equal(badFor.scope.networks, undefined, "unreadable policy-for: every network");
  assert.match(badFor.errors[0], /"a\/b\/c" is not \[namespace\/\]name/);
});

Deno.test("parsePolicy: no policy-for is a warning and applies to no network", () => {
  const check = parsePolicy(mnp({ podSelector: {} }, null));
  assert.deepEqual(check.errors, []);
  assert.deepEqual(check.policy!.networks, []);
  assert.match(check.warnings[0], /applies to no network/);
});
