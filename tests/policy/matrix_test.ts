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
  for (const p of policies) await w.apply(p.ns, p.name, p.spec);
  for (const c of checks) await expectMatrix(w, c.expected, c);
  for (const p of policies) await w.remove(p.ns, p.name);
  await expectMatrix(w, all);
}

const short = (p: WorldPod) => p.id.split("/")[0];
const podName = (p: WorldPod) => p.id.split("/")[1];

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
          { expected: (_f, to) => short(to) !== "x" },
          { expected: (_f, to) => short(to) !== "x", proto: "udp" },
        ]),
    );

    await t.step("default-deny-all (ingress and egress)", () =>
      scenario(w, [{
        ns: "x",
        name: "deny-all",
        spec: { podSelector: {}, policyTypes: ["Ingress", "Egress"] },
      }], [{ expected: (f, to) => short(f) !== "x" && short(to) !== "x" }]));

    await t.step("allow from pods of the same namespace by podSelector", () =>
      scenario(w, [{
        ns: "x",
        name: "allow-b",
        spec: {
          podSelector: { matchLabels: { pod: "a" } },
          ingress: [{ from: [{ podSelector: { matchLabels: { pod: "b" } } }] }],
        },
      }], [{ expected: (f, to) => to.id !== "x/a" || f.id === "x/b" }]));
  });
});
