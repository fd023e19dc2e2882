import assert from "node:assert/strict";
import { type IpAddr, parseIpAddr } from "../ipaddr/ip.ts";
import type { PodAttachment } from "./attachments.ts";
import { type CompileInput, compilePod, type EffectivePolicy } from "./compile.ts";
import type { NamedPort, PodView } from "./pods.ts";
import { renderFailClosed, renderTable } from "./render.ts";
import { type MultiNetworkPolicy, parsePolicy } from "./spec.ts";

const BLUE = "net/blue";
const GREEN = "net/green";

function ip(text: string): IpAddr {
  return parseIpAddr(text)!;
}

function pod(
  namespace: string,
  name: string,
  blue: string,
  labels: Record<string, string> = { pod: name },
  ports: NamedPort[] = [],
): PodView {
  return {
    namespace,
    name,
    uid: `${namespace}-${name}`,
    labels,
    addresses: new Map([[BLUE, [ip(blue)]], [GREEN, [ip(blue.replace(/^10\.1/, "10.2"))]]]),
    ports,
  };
}

function policy(namespace: string, spec: unknown, networks = BLUE): EffectivePolicy {
  const obj: MultiNetworkPolicy = {
    metadata: {
      name: "p",
      namespace,
      annotations: { "k8s.v1.cni.cncf.io/policy-for": networks },
    },
    spec,
  };
  const check = parsePolicy(obj);
  assert.deepEqual(check.errors, []);
  return check.policy!;
}

const PODS = [
  pod("x", "a", "10.1.0.1", { pod: "a" }, [{ name: "web", port: 8080, protocol: "tcp" }]),
  pod("x", "b", "10.1.0.2"),
  pod("y", "b", "10.1.0.3", { pod: "b" }, [{ name: "web", port: 9090, protocol: "tcp" }]),
];
const NS_LABELS: Record<string, Record<string, string>> = { x: { ns: "x" }, y: { ns: "y" } };

function input(policies: EffectivePolicy[]): CompileInput {
  return { policies, pods: PODS, namespaceLabels: (ns) => NS_LABELS[ns] };
}

const ATTACHED: PodAttachment = {
  pod: { namespace: "x", name: "a", uid: "x-a" },
  netns: "/var/run/netns/test",
  interfaces: [
    { network: BLUE, ifName: "net1", addresses: [ip("10.1.0.1")] },
    { network: GREEN, ifName: "net2", addresses: [ip("10.2.0.1")] },
  ],
};

Deno.test("compile: a pod no policy selects has no rules, and its table is removed", () => {
  const rules = compilePod(PODS[0], ATTACHED, input([policy("y", { podSelector: {} })]));
  assert.deepEqual(rules.interfaces, []);
  assert.match(renderTable(rules).text, /delete table inet hydra_policy/);
});

Deno.test("compile: only the policy's networks are isolated; peers by pod and namespace selector", () => {
  const rules = compilePod(
    PODS[0],
    ATTACHED,
    input([policy("x", {
      podSelector: { matchLabels: { pod: "a" } },
      ingress: [{
        from: [
          { podSelector: { matchLabels: { pod: "b" } } },
          { namespaceSelector: { matchLabels: { ns: "y" } } },
        ],
        ports: [{ port: 80 }, { port: 90, endPort: 99 }, { port: "web" }, { protocol: "UDP" }],
      }],
    })]),
  );
  assert.equal(rules.interfaces.length, 1);
  const [net1] = rules.interfaces;
  assert.equal(net1.ifName, "net1");
  assert.equal(net1.egress, undefined);
  const { text, rules: count } = renderTable(rules);
  assert.match(text, /input iifname != \{ "net1" \} accept/);
  assert.match(
    text,
    /iifname "net1" ip saddr \{ 10\.1\.0\.2, 10\.1\.0\.3 \} tcp dport \{ 80, 90-99, 8080 \} accept comment "x\/p ingress\[0\]"/,
  );
  assert.match(
    text,
    /iifname "net1" ip saddr \{ 10\.1\.0\.2, 10\.1\.0\.3 \} meta l4proto udp accept/,
  );
  assert.match(text, /input counter drop/);
  assert.doesNotMatch(text, /add rule inet hydra_policy output/);
  assert.doesNotMatch(text, /net2/);
  assert.equal(count, 7);
});

Deno.test("compile: egress with ipBlock except and named ports of the destination", () => {
  const rules = compilePod(
    PODS[0],
    ATTACHED,
    input([policy("x", {
      podSelector: {},
      policyTypes: ["Egress"],
      egress: [
        { to: [{ ipBlock: { cidr: "10.1.0.0/16", except: ["10.1.0.2/32"] } }] },
        { to: [{ namespaceSelector: {} }], ports: [{ port: "web" }] },
      ],
    }, `${BLUE},${GREEN}`)]),
  );
  assert.equal(rules.interfaces.length, 2, "both networks named");
  const { text } = renderTable(rules);
  assert.match(
    text,
    /oifname "net1" ip daddr 10\.1\.0\.0\/16 ip daddr != 10\.1\.0\.2 accept comment "x\/p egress\[0\]"/,
  );
  assert.match(
    text,
    /oifname "net1" ip daddr \{ 10\.1\.0\.1, 10\.2\.0\.1 \} tcp dport 8080 accept/,
  );
  assert.match(
    text,
    /oifname "net1" ip daddr \{ 10\.1\.0\.3, 10\.2\.0\.3 \} tcp dport 9090 accept/,
  );
  assert.doesNotMatch(text, /add rule inet hydra_policy input/);
});

Deno.test("compile: policies add up; an empty rule list isolates with nothing allowed", () => {
  const deny = policy("x", { podSelector: {}, policyTypes: ["Ingress", "Egress"] });
  const allowAll = policy("x", { podSelector: {}, ingress: [{}] });
  const rules = compilePod(PODS[0], ATTACHED, input([deny, allowAll]));
  const [net1] = rules.interfaces;
  assert.deepEqual(net1.egress, []);
  assert.equal(net1.ingress!.length, 1);
  assert.match(renderTable(rules).text, /iifname "net1" accept comment/);
  const closed = renderFailClosed(rules).text;
  assert.doesNotMatch(closed, /iifname "net1" accept/);
  assert.match(closed, /ct state established,related accept/);
});

Deno.test("compile: a fail-closed stand-in with unknown networks isolates every secondary interface", () => {
  const rules = compilePod(PODS[0], ATTACHED, {
    ...input([]),
    policies: [{ namespace: "x", name: "broken", ingress: [], failClosed: true }],
  });
  assert.deepEqual(rules.interfaces.map((i) => [i.ifName, i.ingress]), [["net1", []], [
    "net2",
    [],
  ]]);
});

Deno.test("compile: peers without addresses on the network allow nothing", () => {
  const rules = compilePod(
    PODS[0],
    ATTACHED,
    input([policy("x", {
      podSelector: {},
      ingress: [{ from: [{ podSelector: { matchLabels: { pod: "nobody" } } }] }],
    })]),
  );
  assert.deepEqual(rules.interfaces[0].ingress, []);
});
