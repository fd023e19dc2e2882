/**
 * The nexthop objects a network's IPv4 routes go through: one per distinct
 * (gateway, device, on-link), carrying the network's protocol number, shared
 * by every route to that gateway, removed once no owned route uses it.
 *
 * A route naming a nexthop (`10.64.1.0/24 nhid 7 proto 202`, shown by `ip
 * route` with its gateway and device as usual) reaches exactly what a route
 * with the gateway in it does. The kernel adds it in constant time, whereas
 * thousands of plain routes each via another gateway on the same device
 * take time quadratic in their number (the kernel finds shared route info
 * through a hash that leaves out the gateway): 5,000 nodes' routes go in
 * within a fraction of the time.
 *
 * Where a nexthop cannot be made (a kernel without nexthop objects, a
 * device without carrier, a gateway not on any local network) the route is
 * added with its gateway as before, and the kernel has the last word.
 * Routes a run left either way are adopted as they are.
 *
 * @module
 */

import { type Handle, hasErrno, isNotFound, listAddrs } from "../netlink/mod.ts";
import { tryParseIp } from "../ipaddr/ip.ts";
import {
  addNexthop,
  delNexthop,
  listNexthops,
  type Nexthop,
  nexthopsUnsupported,
  queueAddNexthop,
} from "../netlink/nexthop.ts";
import type { RequestBatch } from "../netlink/socket.ts";

/** One nexthop the network owns. */
export interface OwnedNexthop {
  id: number;
  key: string;
  gateway: string;
  oif: number;
  onlink: boolean;
  /** Owned routes using it. */
  refs: number;
  /** Queued for creation in a batch not yet flushed: its index there. */
  pending?: number;
}

/** A network's nexthop objects, as the kernel holds them. */
export interface NexthopTable {
  /** False when the kernel has no nexthop objects: routes carry their gateway. */
  supported: boolean;
  byKey: Map<string, OwnedNexthop>;
  byId: Map<number, OwnedNexthop>;
  /** Ids in use in the namespace by anyone, at the last read (new ones avoid them). */
  taken: Set<number>;
  /** Where the search for a free id goes on. */
  nextId: number;
}

/** First id a network's nexthops try: a range of 2^16 per protocol number, away from small ids. */
function baseId(protocol: number): number {
  return (protocol << 16) + 1;
}

function nexthopKey(gateway: string, oif: number, onlink: boolean): string {
  return `${gateway}|${oif}|${onlink ? 1 : 0}`;
}

/** An empty table (no nexthops known yet). */
export function emptyNexthops(protocol: number, supported = true): NexthopTable {
  return {
    supported,
    byKey: new Map(),
    byId: new Map(),
    taken: new Set(),
    nextId: baseId(protocol),
  };
}

/**
 * Reads the namespace's nexthop objects: the network's own (its protocol,
 * plain IPv4 gateways) are kept with no references yet; every id is noted
 * as taken. A kernel that refuses the dump has none.
 */
export function readNexthops(h: Handle, protocol: number): NexthopTable {
  let all: Nexthop[];
  try {
    all = listNexthops(h);
  } catch (err) {
    if (nexthopsUnsupported(err)) return emptyNexthops(protocol, false);
    throw err;
  }
  const t = emptyNexthops(protocol);
  for (const nh of all) {
    t.taken.add(nh.id);
    if (nh.protocol !== protocol || nh.special || nh.family !== 4 || nh.oif === undefined) {
      continue;
    }
    const owned: OwnedNexthop = {
      id: nh.id,
      key: nexthopKey(nh.gateway!, nh.oif, nh.onlink),
      gateway: nh.gateway!,
      oif: nh.oif,
      onlink: nh.onlink,
      refs: 0,
    };
    t.byId.set(nh.id, owned);
    // A second one for the same gateway stays unreferenced and is swept.
    if (!t.byKey.has(owned.key)) t.byKey.set(owned.key, owned);
  }
  return t;
}

/**
 * Finds the device a directly connected IPv4 gateway is reached through,
 * from the namespace's addresses (read once per pass, on first use).
 * Undefined when no single device has a network holding it.
 */
export function connectedDeviceFinder(h: Handle): (gateway: string) => number | undefined {
  let nets: { net: number; mask: number; index: number }[] | undefined;
  return (gateway) => {
    const b = tryParseIp(gateway);
    if (!b || b.length !== 4) return undefined;
    nets ??= listAddrs(h).filter((a) => a.family === 4 && a.prefixLen < 32).map((a) => {
      const mask = a.prefixLen === 0 ? 0 : (~0 << (32 - a.prefixLen)) >>> 0;
      const ab = tryParseIp(a.address)!;
      const n = ((ab[0] << 24) | (ab[1] << 16) | (ab[2] << 8) | ab[3]) >>> 0;
      return { net: (n & mask) >>> 0, mask, index: a.index };
    });
    const ip = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
    let found: number | undefined;
    for (const n of nets) {
      if (((ip & n.mask) >>> 0) !== n.net) continue;
      if (found !== undefined && found !== n.index) return undefined;
      found = n.index;
    }
    return found;
  };
}

/**
 * The id of the network's nexthop for (gateway, device, on-link), made when
 * missing; one more reference is counted. Undefined when none can be made:
 * the caller adds the route with its gateway instead.
 */
export function acquireNexthop(
  h: Handle,
  t: NexthopTable,
  protocol: number,
  gateway: string,
  oif: number,
  onlink: boolean,
): number | undefined {
  if (!t.supported) return undefined;
  const key = nexthopKey(gateway, oif, onlink);
  const have = t.byKey.get(key);
  if (have) {
    have.refs++;
    return have.id;
  }
  for (let attempt = 0; attempt < 8; attempt++) {
    while (t.taken.has(t.nextId) || t.byId.has(t.nextId)) t.nextId = (t.nextId + 1) >>> 0 || 1;
    const id = t.nextId;
    try {
      addNexthop(h, { id, gateway, oif, protocol, onlink });
    } catch (err) {
      // Taken by someone since the last read: note it and try the next id.
      if (hasErrno(err, "EEXIST")) {
        t.taken.add(id);
        continue;
      }
      if (nexthopsUnsupported(err) && !hasErrno(err, "EINVAL")) t.supported = false;
      return undefined;
    }
    const owned: OwnedNexthop = { id, key, gateway, oif, onlink, refs: 1 };
    t.byId.set(id, owned);
    t.byKey.set(key, owned);
    t.taken.add(id);
    return id;
  }
  return undefined;
}

/** Deletes an unused nexthop; one the kernel keeps stays listed, for the next sweep. */
/**
 * Like {@link acquireNexthop}, but a missing nexthop is queued in `batch`
 * rather than made at once (and counted as made); `index` is the request's
 * place in the batch, for the caller to check after the flush (then
 * {@link forgetNexthop} when it failed).
 */
export function reserveNexthop(
  h: Handle,
  t: NexthopTable,
  batch: RequestBatch,
  protocol: number,
  gateway: string,
  oif: number,
  onlink: boolean,
): { id: number; index?: number } | undefined {
  if (!t.supported) return undefined;
  const key = nexthopKey(gateway, oif, onlink);
  const have = t.byKey.get(key);
  if (have) {
    have.refs++;
    return { id: have.id, index: have.pending };
  }
  while (t.taken.has(t.nextId) || t.byId.has(t.nextId)) t.nextId = (t.nextId + 1) >>> 0 || 1;
  const id = t.nextId;
  let index: number;
  try {
    index = queueAddNexthop(h, batch, { id, gateway, oif, protocol, onlink });
  } catch {
    return undefined; // not even expressible (a bad address): the route carries its gateway
  }
  const owned: OwnedNexthop = { id, key, gateway, oif, onlink, refs: 1, pending: index };
  t.byId.set(id, owned);
  t.byKey.set(key, owned);
  t.taken.add(id);
  return { id, index };
}

/** Drops a nexthop whose creation failed with `err` from the table (it is not in the kernel). */
export function forgetNexthop(t: NexthopTable, id: number, err: unknown): void {
  const nh = t.byId.get(id);
  if (nh) {
    t.byId.delete(id);
    if (t.byKey.get(nh.key) === nh) t.byKey.delete(nh.key);
  }
  // Taken by someone since the last read: the id stays taken; anything else frees it.
  if (!hasErrno(err, "EEXIST")) t.taken.delete(id);
  if (nexthopsUnsupported(err) && !hasErrno(err, "EINVAL")) t.supported = false;
}

function remove(h: Handle, t: NexthopTable, nh: OwnedNexthop): void {
  try {
    delNexthop(h, nh.id);
  } catch (err) {
    if (!isNotFound(err)) return;
  }
  t.byId.delete(nh.id);
  if (t.byKey.get(nh.key) === nh) t.byKey.delete(nh.key);
  t.taken.delete(nh.id);
}

/**
 * One reference fewer to nexthop `id` (a route stopped using it); the
 * nexthop goes when none is left. Ids not in the table are ignored.
 */
export function releaseNexthop(h: Handle, t: NexthopTable, id: number | undefined): void {
  if (id === undefined) return;
  const nh = t.byId.get(id);
  if (!nh) return;
  if (--nh.refs <= 0) remove(h, t, nh);
}

/** Removes the network's nexthops no owned route uses (after a full pass). */
export function sweepNexthops(h: Handle, t: NexthopTable): void {
  for (const nh of [...t.byId.values()]) if (nh.refs <= 0) remove(h, t, nh);
}
