/**
 * One pass of the hybrid router over every configured network: plan from
 * the node set, apply to the kernel, and summarise what a user needs to see
 * (the JSON `hydra hybrid sync --once` prints).
 *
 * @module
 */

import type { Handle } from "../netlink/mod.ts";
import type { NodeInfo } from "../route/nodes.ts";
import { applyHybrid } from "./dataplane.ts";
import type { HybridNetwork } from "../hybridnet/model.ts";
import type { HybridProblem } from "../hybridnet/node.ts";
import { planHybrid } from "./plan.ts";
import { removeStaleShims } from "./shim.ts";

/** The outcome of one pass for one network. */
export interface NetworkSummary {
  network: string;
  nodesSynced: number;
  routes: number;
  changes: number;
  problems: HybridProblem[];
  errors: string[];
}

/** The outcome of one pass. */
export interface HybridSyncSummary {
  ok: boolean;
  ms: number;
  networks: NetworkSummary[];
  /** Shims removed: their network is gone or no longer uses macvlan. */
  shimsRemoved: string[];
  /** Failures outside any one network (removing stale shims). */
  errors: string[];
}

/** Plans and applies every network on this node; `netns` names the namespace for nftables. */
export function syncHybrid(
  h: Handle,
  networks: readonly HybridNetwork[],
  nodes: readonly NodeInfo[],
  nodeName: string,
  netns?: string,
): HybridSyncSummary {
  const t0 = performance.now();
  const out: NetworkSummary[] = [];
  for (const net of networks) {
    const d = planHybrid(net, nodes, nodeName);
    let applied;
    try {
      applied = applyHybrid(h, d, netns);
    } catch (err) {
      applied = { changes: 0, routes: 0, errors: [(err as Error).message] };
    }
    out.push({
      network: net.name,
      nodesSynced: d.nodesSynced,
      routes: applied.routes,
      changes: applied.changes,
      problems: d.problems,
      errors: applied.errors,
    });
  }
  const keep = new Map(
    networks.filter((n) => n.underlayAttachment === "macvlan").map((n) => [n.name, n.shim]),
  );
  const errors: string[] = [];
  let shimsRemoved: string[] = [];
  try {
    shimsRemoved = removeStaleShims(h, keep);
  } catch (err) {
    errors.push(`removing stale shims: ${(err as Error).message}`);
  }
  return {
    ok: errors.length === 0 && out.every((n) => n.errors.length === 0),
    ms: Math.round((performance.now() - t0) * 10) / 10,
    networks: out,
    shimsRemoved,
    errors,
  };
}
