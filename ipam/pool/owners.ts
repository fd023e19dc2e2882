/**
 * Which blocks hold the allocations of a sandbox, a pod (by UID) or a
 * StatefulSet pod (by name): what an ADD looks for first, found without
 * walking every block a long-lived allocator has read. Only a hint: the
 * caller checks the block itself.
 *
 * @module
 */

import type { Block } from "./block.ts";
import type { Allocation } from "./objects.ts";

/** The keys an allocation is found by. */
export function ownerKeys(
  a: Pick<Allocation, "containerID" | "interface" | "podUID" | "pod">,
): string[] {
  const keys: string[] = [];
  if (a.containerID) keys.push(`c|${a.containerID}|${a.interface ?? ""}`);
  if (a.podUID) keys.push(`u|${a.podUID}|${a.interface ?? ""}`);
  if (a.pod) keys.push(`p|${a.pod}|${a.interface ?? ""}`);
  return keys;
}

/** Block names by owner key, kept as blocks are read. */
export class OwnerIndex {
  #blocks = new Map<string, Set<string>>();
  #keysOf = new Map<string, string[]>();

  /** Records what `b` holds now (replacing what an earlier copy of it held). */
  index(b: Block): void {
    for (const key of this.#keysOf.get(b.name) ?? []) this.#blocks.get(key)?.delete(b.name);
    const keys = [...b.allocations.values()].flatMap(ownerKeys);
    for (const key of keys) {
      let set = this.#blocks.get(key);
      if (!set) this.#blocks.set(key, set = new Set());
      set.add(b.name);
    }
    this.#keysOf.set(b.name, keys);
  }

  /** Names of the blocks that may hold what a request of this sandbox or pod holds. */
  blocksFor(
    req: {
      containerID: string;
      ifName: string;
      pod?: { namespace: string; name: string; uid?: string };
    },
  ): Set<string> {
    const keys = ownerKeys({
      containerID: req.containerID,
      interface: req.ifName,
      podUID: req.pod?.uid,
      pod: req.pod ? `${req.pod.namespace}/${req.pod.name}` : undefined,
    });
    const out = new Set<string>();
    for (const key of keys) for (const name of this.#blocks.get(key) ?? []) out.add(name);
    return out;
  }
}
