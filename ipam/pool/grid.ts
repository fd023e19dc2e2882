/**
 * Where a node looks for a block nobody has claimed yet: every aligned
 * block of a range's window, starting at a hash of the node's name (so
 * that nodes claiming at the same moment rarely want the same block) and
 * wrapping around, skipping the blocks known to exist.
 *
 * @module
 */

import type { IpAddr } from "../../ipaddr/ip.ts";
import type { PoolRange } from "./config.ts";
import { BLOCK_ADDRESSES, blockOf, fnv64 } from "./objects.ts";

/** Most candidates looked at in a huge (IPv6) window beyond the blocks that exist. */
const HUGE_WINDOW_TRIES = 1_000_000n;

/**
 * The first address of each block of `range` not in `existing` (names),
 * in the order node `node` tries them. A window of more blocks than can be
 * walked is walked as far as the existing blocks plus a million.
 */
export function* unclaimedBlocks(
  network: string,
  range: Pick<PoolRange, "name" | "start" | "end">,
  node: string,
  existing: ReadonlySet<string>,
): Generator<IpAddr> {
  const family = range.start.family;
  const size = BigInt(BLOCK_ADDRESSES);
  const first = blockOf(network, range.start).cidr.ip.value;
  const last = blockOf(network, range.end).cidr.ip.value;
  const count = (last - first) / size + 1n;
  const start = BigInt("0x" + fnv64(`${node}|${range.name}`)) % count;
  const limit = count < HUGE_WINDOW_TRIES ? count : BigInt(existing.size) + HUGE_WINDOW_TRIES;
  for (let k = 0n; k < limit; k++) {
    const ip: IpAddr = { family, value: first + ((start + k) % count) * size };
    if (!existing.has(blockOf(network, ip).name)) yield ip;
  }
}
