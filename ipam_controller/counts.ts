/**
 * A pool's size, allocated and free addresses, counted from its spec and
 * the blocks of its network. Size is the window (`rangeStart`…`rangeEnd`)
 * less the excluded addresses in it; allocated counts every address of the
 * window recorded in a block (pods, StatefulSet holds, whereabouts' holds)
 * that is not excluded. Counts past 2^53-1 (huge IPv6 ranges) are capped.
 *
 * @module
 */

import type { Block } from "../ipam/pool/block.ts";
import { addressAt } from "../ipam/pool/block.ts";
import type { AddressPool } from "../ipam/pool/objects.ts";
import {
  compareIpAddr,
  type IpAddr,
  type IpNet,
  ipNetContains,
  lastIpAddr,
  networkIpAddr,
  parseIpAddr,
  parseIpNet,
} from "../ipaddr/ip.ts";

/** The counts written to a pool's status. */
export interface PoolCounts {
  size: number;
  allocated: number;
  free: number;
  blocks: number;
}

const CAP = BigInt(Number.MAX_SAFE_INTEGER);

function cap(n: bigint): number {
  return Number(n > CAP ? CAP : n < 0n ? 0n : n);
}

/** The pool's spec as values, or undefined when it cannot be read. */
export function poolWindow(p: AddressPool):
  | { cidr: IpNet; start: IpAddr; end: IpAddr; exclude: IpNet[] }
  | undefined {
  const net = typeof p.spec?.cidr === "string" ? parseIpNet(p.spec.cidr) : undefined;
  const start = typeof p.spec?.rangeStart === "string" ? parseIpAddr(p.spec.rangeStart) : undefined;
  const end = typeof p.spec?.rangeEnd === "string" ? parseIpAddr(p.spec.rangeEnd) : undefined;
  if (!net || !start || !end) return undefined;
  const exclude: IpNet[] = [];
  for (const text of p.spec.exclude ?? []) {
    const e = parseIpNet(text);
    if (!e) return undefined;
    exclude.push({ ip: networkIpAddr(e.ip, e.prefix), prefix: e.prefix });
  }
  return {
    cidr: { ip: networkIpAddr(net.ip, net.prefix), prefix: net.prefix },
    start,
    end,
    exclude,
  };
}

/** Number of window addresses the exclusions take (overlaps counted once). */
function excludedInWindow(start: IpAddr, end: IpAddr, exclude: IpNet[]): bigint {
  const spans = exclude.filter((e) => e.ip.family === start.family).map((e) => {
    const lo = e.ip.value > start.value ? e.ip.value : start.value;
    const hiRaw = lastIpAddr(e.ip, e.prefix).value;
    const hi = hiRaw < end.value ? hiRaw : end.value;
    return [lo, hi] as const;
  }).filter(([lo, hi]) => lo <= hi).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let total = 0n;
  let curLo = -1n;
  let curHi = -2n;
  for (const [lo, hi] of spans) {
    if (lo > curHi + 1n) {
      if (curHi >= curLo && curLo >= 0n) total += curHi - curLo + 1n;
      curLo = lo;
      curHi = hi;
    } else if (hi > curHi) curHi = hi;
  }
  if (curLo >= 0n && curHi >= curLo) total += curHi - curLo + 1n;
  return total;
}

/** Counts of one pool over the parsed blocks of its network. */
export function countPool(p: AddressPool, blocks: readonly Block[]): PoolCounts | undefined {
  const w = poolWindow(p);
  if (!w) return undefined;
  const inWindow = (ip: IpAddr) =>
    compareIpAddr(ip, w.start) >= 0 && compareIpAddr(ip, w.end) <= 0 &&
    !w.exclude.some((e) => ipNetContains(e, ip));
  const size = w.end.value - w.start.value + 1n - excludedInWindow(w.start, w.end, w.exclude);
  let allocated = 0n;
  let count = 0;
  for (const b of blocks) {
    if (b.cidr.ip.family !== w.cidr.ip.family) continue;
    if (!ipNetContains(w.cidr, b.cidr.ip)) {
      if (!ipNetContains(b.cidr, w.cidr.ip)) continue;
    }
    count++;
    for (const offset of b.allocations.keys()) {
      if (inWindow(addressAt(b, offset))) allocated++;
    }
  }
  return { size: cap(size), allocated: cap(allocated), free: cap(size - allocated), blocks: count };
}
