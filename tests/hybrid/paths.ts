/**
 * The path a ping between two pods of a hybrid world took, read from the
 * kernel's packet counters around it: the nodes' vxlan devices, the
 * fabric switch's ports and, for macvlan underlay pods, the nodes' shims.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type HybridPod, type HybridWorld, pings, txPackets } from "./world.ts";

/** How a pair's packets travel. */
export type Path = "vxlan" | "fabric" | "local";

/** The path a pair must take. */
export function expectedPath(a: HybridPod, b: HybridPod): Path {
  if (a.node === b.node) return "local";
  return a.kind === "underlay" && b.kind === "underlay" ? "fabric" : "vxlan";
}

/** Packets sent by each node's vxlan device. */
export async function vxlanCounts(w: HybridWorld): Promise<number[]> {
  return await Promise.all(w.nodes.map((n) => txPackets(n.ns, "hy-hy")));
}

/** Packets sent by each node's macvlan shim. */
export async function shimCounts(w: HybridWorld): Promise<number[]> {
  return await Promise.all(w.nodes.map((n) => txPackets(n.ns, "hym-hy")));
}

async function switchCounts(w: HybridWorld): Promise<number[]> {
  return await Promise.all(
    w.nodes.map((n) => txPackets(w.fabric, `p${n.index}${w.id}`.slice(0, 15))),
  );
}

/**
 * Pings b from a; checks the answer and the path by the counters. With
 * macvlan underlay pods, an underlay pod talking to an overlay pod is
 * reached by its node through the node's shim.
 */
export async function checkPair(w: HybridWorld, a: HybridPod, b: HybridPod): Promise<Path> {
  const macvlan = w.underlay === "macvlan";
  const vx0 = await vxlanCounts(w);
  const sw0 = await switchCounts(w);
  const sh0 = macvlan ? await shimCounts(w) : [];
  assert.ok(await pings(a.ns, b.ip), `${a.name} → ${b.name} (${b.ip}) unanswered`);
  const vx1 = await vxlanCounts(w);
  const sw1 = await switchCounts(w);
  const ia = w.nodes.indexOf(a.node);
  const ib = w.nodes.indexOf(b.node);
  const vxMoved = (i: number) => vx1[i] > vx0[i];
  const path = expectedPath(a, b);
  if (path === "vxlan") {
    assert.ok(vxMoved(ia) && vxMoved(ib), `${a.name} → ${b.name}: not through vxlan both ways`);
  } else {
    assert.ok(!vxMoved(ia) && !vxMoved(ib), `${a.name} → ${b.name}: vxlan used (${path} expected)`);
  }
  if (path === "fabric") {
    // The switch delivered the request to b's node and the answer to a's.
    assert.ok(sw1[ib] > sw0[ib] && sw1[ia] > sw0[ia], `${a.name} → ${b.name}: not on the fabric`);
  }
  if (macvlan && a.kind !== b.kind) {
    const sh1 = await shimCounts(w);
    const u = a.kind === "underlay" ? ia : ib;
    assert.ok(sh1[u] > sh0[u], `${a.name} → ${b.name}: the underlay pod's node shim unused`);
  }
  return path;
}
