import assert from "node:assert/strict";
import type { Allocation } from "../ipam/pool/objects.ts";
import { type Facts, judge, ordinalOf } from "./judge.ts";

const NOW = Date.parse("2030-01-01T12:00:00Z");
const OPTS = { now: NOW, graceMs: 30_000, holdMs: 300_000 };
const ago = (s: number) => new Date(NOW - s * 1000).toISOString().replace(/\.\d+Z$/, "Z");

function facts(over: Partial<Facts> = {}): Facts {
  return {
    podWithUid: () => false,
    podNamed: () => undefined,
    statefulSetWants: () => false,
    newerTwin: () => undefined,
    nodeExists: () => false,
    ...over,
  };
}

const pod = (extra: Partial<Allocation> = {}): Allocation => ({
  ip: "10.0.0.5",
  pool: "p",
  pod: "ns/web-1",
  podUID: "u1",
  containerID: "c1",
  interface: "net1",
  time: ago(120),
  ...extra,
});

Deno.test("a live pod's address is kept, matched by UID, never by name alone", () => {
  assert.deepEqual(judge(pod(), facts({ podWithUid: (u) => u === "u1" }), OPTS), {
    action: "keep",
  });
  // Another pod of the same name (a re-created Deployment pod would have another name; a bare
  // pod re-created by hand has the same one) does not keep the old UID's address.
  const sameName = facts({ podNamed: () => ({ uid: "u2" }) });
  assert.deepEqual(judge(pod(), sameName, OPTS), { action: "free", reason: "pod-gone" });
});

Deno.test("nothing younger than the grace period is touched", () => {
  assert.deepEqual(judge(pod({ time: ago(5) }), facts(), OPTS), { action: "keep" });
  assert.deepEqual(judge(pod({ time: ago(45) }), facts(), OPTS), {
    action: "free",
    reason: "pod-gone",
  });
});

Deno.test("a StatefulSet pod's address is held while the StatefulSet wants the ordinal", () => {
  const a = pod({ statefulSet: "web" });
  const wants = facts({ statefulSetWants: (ns, n, o) => ns === "ns" && n === "web" && o === 1 });
  const v = judge(a, wants, OPTS);
  assert.equal(v.action, "update");
  assert.equal(
    v.action === "update" && v.allocation.releasedAt,
    ago(0),
    "marked released, not freed",
  );
  const released = { ...a, releasedAt: ago(60) };
  assert.deepEqual(judge(released, wants, OPTS), { action: "keep" });
  // While the new pod of that name runs, its ADD has taken the entry over (new UID): kept.
  assert.deepEqual(
    judge({ ...a, podUID: "u9" }, facts({ podWithUid: (u) => u === "u9" }), OPTS),
    { action: "keep" },
  );
});

Deno.test("the hold runs once the ordinal is unwanted, then the address is freed", () => {
  const released = pod({ statefulSet: "web", releasedAt: ago(600) });
  const v = judge(released, facts(), OPTS);
  assert.equal(v.action, "update");
  assert.equal(v.action === "update" && v.allocation.unwantedSince, ago(0));
  assert.deepEqual(judge({ ...released, unwantedSince: ago(100) }, facts(), OPTS), {
    action: "keep",
  });
  assert.deepEqual(
    judge({ ...released, unwantedSince: ago(301) }, facts(), OPTS),
    { action: "free", reason: "sts-hold-expired" },
  );
  // Wanted again (scaled back up) before the hold ran out: the hold is called off.
  const back = judge(
    { ...released, unwantedSince: ago(100) },
    facts({ statefulSetWants: () => true }),
    OPTS,
  );
  assert.equal(back.action, "update");
  assert.equal(back.action === "update" && back.allocation.unwantedSince, undefined);
});

Deno.test("a superseded allocation of the same pod and interface is freed; whereabouts holds follow their pod", () => {
  const alive = facts({ podWithUid: () => true, newerTwin: () => ago(60) });
  assert.deepEqual(judge(pod(), alive, OPTS), { action: "free", reason: "superseded" });
  const close = facts({ podWithUid: () => true, newerTwin: () => ago(110) });
  assert.deepEqual(judge(pod(), close, OPTS), { action: "keep" });
  const hold: Allocation = { ip: "10.0.0.9", source: "whereabouts", pod: "ns/old", time: ago(600) };
  assert.deepEqual(judge(hold, facts({ podNamed: () => ({ uid: "x" }) }), OPTS), {
    action: "keep",
  });
  assert.deepEqual(judge(hold, facts(), OPTS), { action: "free", reason: "whereabouts-pod-gone" });
});

Deno.test("an address allocated for no pod (a runtime outside Kubernetes) is left to its DEL", () => {
  assert.deepEqual(judge({ ip: "10.0.0.7", containerID: "c", time: ago(9999) }, facts(), OPTS), {
    action: "keep",
  });
});

Deno.test("ordinals are read from the pod name", () => {
  assert.equal(ordinalOf("web-0", "web"), 0);
  assert.equal(ordinalOf("web-12", "web"), 12);
  assert.equal(ordinalOf("web-01", "web"), undefined);
  assert.equal(ordinalOf("webx-1", "web"), undefined);
  assert.equal(ordinalOf("web-a", "web"), undefined);
});

const gateway = (extra: Partial<Allocation> = {}): Allocation => ({
  ip: "10.0.0.9",
  pool: "p",
  source: "pod",
  containerID: "hydra-hybrid-gateway-node1",
  interface: "gateway",
  node: "node1",
  time: ago(120),
  ...extra,
});

Deno.test("a node's gateway is kept while its node exists (pods or none), freed once it is gone", () => {
  const live = facts({ nodeExists: (n) => n === "node1" });
  assert.deepEqual(judge(gateway(), live, OPTS), { action: "keep" });
  assert.deepEqual(judge(gateway(), facts(), OPTS), { action: "free", reason: "node-gone" });
  assert.deepEqual(judge(gateway({ time: ago(5) }), facts(), OPTS), { action: "keep" });
});

Deno.test("only a true node gateway is judged by its node: lookalikes stay pods' or no one's", () => {
  // A pod named like the sandbox is a pod: judged by its UID, never by the node.
  const lookalike = gateway({ pod: "ns/hydra-hybrid-gateway-node1", podUID: "u9" });
  const podLives = facts({ podWithUid: (u) => u === "u9" });
  assert.deepEqual(judge(lookalike, podLives, OPTS), { action: "keep" });
  // The sandbox of another node than the one that allocated it: an allocation for no pod, kept.
  assert.deepEqual(judge(gateway({ node: "node2" }), facts(), OPTS), { action: "keep" });
  assert.deepEqual(judge(gateway({ interface: "net1" }), facts(), OPTS), { action: "keep" });
});
