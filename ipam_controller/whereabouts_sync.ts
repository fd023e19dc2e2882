/**
 * Addresses whereabouts gave out after hydra claimed their block (a NAD
 * switched over while a whereabouts ADD was still running): the controller
 * records each as a hold in hydra's block, for as long as its pod exists,
 * and reports any that hydra had given to another pod. Pure: the caller
 * reads whereabouts' pools and writes the blocks.
 *
 * @module
 */

import { type Block, copyBlock, offsetOf } from "../ipam/pool/block.ts";
import { blockOf } from "../ipam/pool/objects.ts";
import { holdsIn, type WhereaboutsHold } from "../ipam/pool/whereabouts.ts";

/** An address both whereabouts and hydra gave out, to different pods. */
export interface HoldConflict {
  ip: string;
  whereabouts: string;
  hydra?: string;
  block: string;
}

/**
 * The blocks to write (each a changed copy) and the conflicts, for
 * whereabouts' `holds` against hydra's parsed `blocks`; only holds whose
 * pod (`namespace/name`) is in `live` count.
 */
export function planHoldImports(
  holds: readonly WhereaboutsHold[],
  blocks: readonly Block[],
  live: ReadonlySet<string>,
  now: Date,
): { drafts: Block[]; conflicts: HoldConflict[] } {
  const byName = new Map(blocks.map((b) => [b.name, b]));
  const networks = new Set(blocks.map((b) => b.network));
  const time = now.toISOString().replace(/\.\d+Z$/, "Z");
  const drafts = new Map<string, Block>();
  const conflicts: HoldConflict[] = [];
  for (const h of holds) {
    if (!h.podRef || !live.has(h.podRef)) continue;
    for (const net of networks) {
      const b = byName.get(blockOf(net, h.ip).name);
      if (!b) continue;
      const offset = offsetOf(b, h.ip);
      const cur = (drafts.get(b.name) ?? b).allocations.get(offset);
      if (cur?.source === "whereabouts") continue;
      if (cur) {
        if (cur.pod !== h.podRef) {
          conflicts.push({ ip: cur.ip, whereabouts: h.podRef, hydra: cur.pod, block: b.name });
        }
        continue;
      }
      const draft = drafts.get(b.name) ?? copyBlock(b);
      draft.allocations.set(offset, holdsIn([h], b.cidr, time)[0]);
      drafts.set(b.name, draft);
    }
  }
  return { drafts: [...drafts.values()], conflicts };
}
