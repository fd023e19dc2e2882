/**
 * The upstream NetworkPolicy conformance scenarios (the e2e "netpol"
 * matrix: namespaces x, y, z with pods a, b, c, probes from every pod to
 * every other) on a secondary network, enforced by `hydra policy sync`
 * from MultiNetworkPolicy objects, checked with real TCP connects and UDP
 * round trips between the pods' network namespaces over hydra-bridge.
 * Each case must be in force within the bound, and every probe open again
 * once its policies are deleted.
 *
 * Needs root, libnftables and the built peers (etcd, kube-apiserver).
 */

import {
  expectMatrix,
  type PolicyWorld,
  setNamespaceLabels,
  setPodLabels,
  startPolicyWorld,
  statusWritten,
  type WorldPod,
} from "./world.ts";

const all = () => true;

async function withWorld(fn: (w: PolicyWorld) => Promise<void>): Promise<void> {
  const w = await startPolicyWorld();
  try {
    await statusWritten(w);
    await w.startAgent();
    await expectMatrix(w, all);
    await fn(w);
  } finally {
    await w.close();
  }
}

/** Applies `policies`, expects `expected`, removes them and expects everything open again. */
async function scenario(
  w: PolicyWorld,
  policies: { ns: string; name: string; spec: unknown }[],
  checks: {
    expected: (from: WorldPod, to: WorldPod) => boolean;
    proto?: "tcp" | "udp";
    port?: number;
  }[],
): Promise<void> {
  try {
    for (const p of policies) await w.apply(p.ns, p.name, p.spec);
    for (const c of checks) await expectMatrix(w, c.expected, c);
  } finally {
    for (const p of policies) await w.remove(p.ns, p.name);
  }
  await expectMatrix(w, all);
}

const short = (p: WorldPod) => p.id.split("/")[0];
const podName = (p: WorldPod) => p.id.split("/")[1];

const inX = (p: WorldPod) => short(p) === "x";
const sel = (labels: Record<string, string>) => ({ matchLabels: labels });

Deno.test("netpol matrix on a secondary network", async (t) => {
  await withWorld(async (w) => {
    await t.step(
      "default-deny-ingress",
      () =>
        scenario(w, [{
          ns: "x",
          name: "deny",
          spec: { podSelector: {}, policyTypes: ["Ingress"] },
        }], [
          { expected: (_f, to) => !inX(to) },
          { expected: (_f, to) => !inX(to), proto: "udp" },
        ]),
    );

    await t.step("default-deny-all: ingress and egress", () =>
      scenario(w, [{
        ns: "x",
        name: "deny-all",
        spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
      }], [{ expected: (f, to) => !inX(f) && !inX(to) }]));

    await t.step("allow from pods in the server namespace by podSelector", () =>
      scenario(w, [{
        ns: "x",
        name: "allow-b",
        spec: {
          podSelector: sel({ pod: "a" }),
          ingress: [{ from: [{ podSelector: sel({ pod: "b" }) }] }],
        },
      }], [{ expected: (f, to) => to.id !== "x/a" || f.id === "x/b" }]));

    await t.step("allow only from a different namespace by namespaceSelector", () =>
      scenario(w, [{
        ns: "x",
        name: "allow-ns-y",
        spec: {
          podSelector: sel({ pod: "a" }),
          ingress: [{ from: [{ namespaceSelector: sel({ ns: "y" }) }] }],
        },
      }], [{ expected: (f, to) => to.id !== "x/a" || short(f) === "y" }]));

    await t.step("podSelector AND namespaceSelector in one peer", () =>
      scenario(w, [{
        ns: "x",
        name: "allow-yb",
        spec: {
          podSelector: sel({ pod: "a" }),
          ingress: [{
            from: [{ namespaceSelector: sel({ ns: "y" }), podSelector: sel({ pod: "b" }) }],
          }],
        },
      }], [{ expected: (f, to) => to.id !== "x/a" || f.id === "y/b" }]));

    await t.step("podSelector OR namespaceSelector as two peers", () =>
      scenario(w, [{
        ns: "x",
        name: "allow-or",
        spec: {
          podSelector: sel({ pod: "a" }),
          ingress: [{
            from: [{ namespaceSelector: sel({ ns: "y" }) }, { podSelector: sel({ pod: "b" }) }],
          }],
        },
      }], [{ expected: (f, to) => to.id !== "x/a" || short(f) === "y" || f.id === "x/b" }]));

    await t.step("matchExpressions on pods and namespaces", () =>
      scenario(w, [{
        ns: "x",
        name: "exprs",
        spec: {
          podSelector: { matchExpressions: [{ key: "pod", operator: "In", values: ["a", "b"] }] },
          ingress: [{
            from: [{
              namespaceSelector: {
                matchExpressions: [{ key: "ns", operator: "NotIn", values: ["x", "y"] }],
              },
            }],
          }],
        },
      }], [{
        expected: (f, to) => !(inX(to) && ["a", "b"].includes(podName(to))) || short(f) === "z",
      }]));

    await t.step("ports: only 81 allowed (80 closed, 81 open), TCP and UDP", () =>
      scenario(w, [{
        ns: "x",
        name: "port-81",
        spec: {
          podSelector: sel({ pod: "a" }),
          ingress: [{ ports: [{ port: 81 }, { protocol: "UDP", port: 81 }] }],
        },
      }], [
        { expected: (_f, to) => to.id !== "x/a", port: 80 },
        { expected: all, port: 81 },
        { expected: (_f, to) => to.id !== "x/a", port: 80, proto: "udp" },
        { expected: all, port: 81, proto: "udp" },
      ]));

    await t.step("named port and endPort range", () =>
      scenario(w, [{
        ns: "x",
        name: "named",
        spec: {
          podSelector: sel({ pod: "a" }),
          ingress: [{ ports: [{ port: "serve-81-tcp" }] }],
        },
      }, {
        ns: "x",
        name: "range",
        spec: {
          podSelector: sel({ pod: "b" }),
          ingress: [{ ports: [{ port: 79, endPort: 80 }] }],
        },
      }], [
        { expected: (_f, to) => to.id !== "x/a", port: 80 },
        { expected: (_f, to) => to.id !== "x/b", port: 81 },
      ]));

    await t.step("a policy for UDP only does not open TCP", () =>
      scenario(w, [{
        ns: "x",
        name: "udp-only",
        spec: {
          podSelector: sel({ pod: "a" }),
          ingress: [{ ports: [{ protocol: "UDP", port: 80 }] }],
        },
      }], [
        { expected: (_f, to) => to.id !== "x/a" },
        { expected: all, proto: "udp" },
      ]));

    await t.step(
      "egress: deny from x/a except to namespace y, and on a named port",
      () =>
        scenario(w, [{
          ns: "x",
          name: "egress",
          spec: {
            podSelector: sel({ pod: "a" }),
            policyTypes: ["Egress"],
            egress: [
              { to: [{ namespaceSelector: sel({ ns: "y" }) }] },
              { to: [{ podSelector: sel({ pod: "c" }) }], ports: [{ port: "serve-81-tcp" }] },
            ],
          },
        }], [
          { expected: (f, to) => f.id !== "x/a" || short(to) === "y" },
          { expected: (f, to) => f.id !== "x/a" || short(to) === "y" || to.id === "x/c", port: 81 },
        ]),
    );

    await t.step("egress to an ipBlock with an exception", () => {
      const b = w.pod("x/b");
      return scenario(w, [{
        ns: "x",
        name: "cidr",
        spec: {
          podSelector: sel({ pod: "a" }),
          policyTypes: ["Egress"],
          egress: [{
            to: [{
              ipBlock: {
                cidr: `${b.ip.net1.split(".").slice(0, 3).join(".")}.0/24`,
                except: [`${b.ip.net1}/32`],
              },
            }],
          }],
        },
      }], [{ expected: (f, to) => f.id !== "x/a" || to.id !== "x/b" }]);
    });

    await t.step(
      "ingress denied on the server even when the client's egress allows it",
      () =>
        scenario(w, [
          { ns: "x", name: "deny-in", spec: { podSelector: sel({ pod: "a" }), ingress: [] } },
          {
            ns: "y",
            name: "allow-out",
            spec: { podSelector: {}, policyTypes: ["Egress"], egress: [{}] },
          },
        ], [{ expected: (_f, to) => to.id !== "x/a" }]),
    );

    await t.step("stacked policies add up; an allow-all ingress policy wins", () =>
      scenario(w, [
        { ns: "x", name: "deny", spec: { podSelector: {}, policyTypes: ["Ingress"] } },
        {
          ns: "x",
          name: "allow-b",
          spec: {
            podSelector: sel({ pod: "a" }),
            ingress: [{ from: [{ podSelector: sel({ pod: "b" }) }] }],
          },
        },
        { ns: "x", name: "allow-all-c", spec: { podSelector: sel({ pod: "c" }), ingress: [{}] } },
      ], [{
        expected: (f, to) => !inX(to) || to.id === "x/c" || (to.id === "x/a" && f.id === "x/b"),
      }]));

    await t.step(
      "updates: the selector changes, a pod and a namespace are relabelled",
      async () => {
        await w.apply("x", "upd", {
          podSelector: sel({ pod: "a" }),
          ingress: [{ from: [{ namespaceSelector: sel({ allowed: "yes" }) }] }],
        });
        await expectMatrix(w, (_f, to) => to.id !== "x/a");
        await setNamespaceLabels(w, w.ns.z, { ns: "z", allowed: "yes" });
        await expectMatrix(w, (f, to) => to.id !== "x/a" || short(f) === "z");
        await w.apply("x", "upd", {
          podSelector: sel({ pod: "b" }),
          ingress: [{ from: [{ namespaceSelector: sel({ allowed: "yes" }) }] }],
        });
        await expectMatrix(w, (f, to) => to.id !== "x/b" || short(f) === "z");
        await setPodLabels(w, w.pod("x/b"), { pod: "b-renamed" });
        await expectMatrix(w, all);
        await setPodLabels(w, w.pod("x/b"), { pod: "b" });
        await setNamespaceLabels(w, w.ns.z, { ns: "z" });
        await w.remove("x", "upd");
        await expectMatrix(w, all);
      },
    );
  });
});
