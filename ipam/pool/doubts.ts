/**
 * Writes whose outcome is unknown: the API server went away while a block
 * write was in flight, so the ADD failed (CNI code 11) though its
 * allocation may have been recorded after all. A long-lived process (the
 * node daemon) keeps the ADD's handle and, once the API answers again,
 * removes the allocation if it is still there with that handle
 * (compare-and-swap) — a retried ADD that took the address over wrote its
 * own handle, so what it holds is never taken back. After ten minutes the
 * record is left to the retried ADD or the reclaim controller.
 *
 * @module
 */

import type { KubeClient } from "../../kube/client.ts";
import type { Logger } from "../../pkg/log.ts";
import { blockObject, copyBlock, parseBlock } from "./block.ts";
import { getBlock, updateBlock } from "./store.ts";

/** Where a doubtful allocation may be. */
export interface Doubt {
  block: string;
  containerID: string;
  ifName: string;
}

/** How long a doubtful record is chased. */
const TTL_MS = 10 * 60_000;

/** Between sweeps. */
const SWEEP_MS = 2_000;

/** The doubtful allocations of one allocator, swept in the background. */
export class Doubts {
  #open = new Map<string, Doubt & { since: number }>();
  #sweeping = false;

  /** @param forget told when a block changed under the allocator's copy */
  constructor(
    readonly client: KubeClient,
    readonly log: Logger | undefined,
    readonly forget: (block: string) => void,
  ) {}

  /** True while `handle` is doubtful (its allocation must not be trusted as the ADD's). */
  has(handle: string): boolean {
    return this.#open.has(handle);
  }

  add(handle: string, doubt: Doubt): void {
    this.#open.set(handle, { ...doubt, since: Date.now() });
    if (!this.#sweeping) this.#later();
  }

  #later(): void {
    this.#sweeping = true;
    // A sweep never keeps a process alive by itself.
    Deno.unrefTimer(setTimeout(() => void this.#sweep(), SWEEP_MS));
  }

  /** Tries each open doubt once; returns true when it is settled. */
  async #settle(handle: string, doubt: Doubt): Promise<boolean> {
    const d = { end: Date.now() + 5_000 };
    const obj = await getBlock(this.client, doubt.block, d);
    const b = obj && parseBlock(obj);
    const offset = b ? [...b.allocations].find(([, a]) => a.handle === handle)?.[0] : undefined;
    if (!b || offset === undefined) return true;
    const next = copyBlock(b);
    next.allocations.delete(offset);
    if (await updateBlock(this.client, blockObject(next), d) === "conflict") return false;
    this.forget(b.name);
    this.log?.info("took back the address of a failed ADD", {
      block: b.name,
      containerID: doubt.containerID,
      interface: doubt.ifName,
    });
    return true;
  }

  async #sweep(): Promise<void> {
    for (const [handle, doubt] of [...this.#open]) {
      let done = Date.now() - doubt.since > TTL_MS;
      if (!done) {
        // Still away, or the block is malformed: try again later.
        done = await this.#settle(handle, doubt).catch(() => false);
      }
      if (done) this.#open.delete(handle);
    }
    if (this.#open.size > 0) this.#later();
    else this.#sweeping = false;
  }
}
