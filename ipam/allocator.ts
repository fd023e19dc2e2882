/**
 * host-local's allocation strategy over the shared store: one address per
 * range set, round-robin from the address after the set's last reservation
 * so a crash-looping pod does not get the same address back until the set
 * has been walked through, gateways skipped, wrapping from the end of one
 * range to the start of the next.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { formatIpAddr, type IpAddr, ipAddrEquals, ipAddrKey, nextIpAddr } from "../ipaddr/ip.ts";
import { type IpRange, rangeContains, rangeFor, type RangeSet, rangeSetToString } from "./range.ts";
import {
  lastReservedIp,
  listReservations,
  type LockedStore,
  ownedBy,
  removeReservations,
  type Reservation,
  reserve,
} from "./store.ts";

/** An address handed out from a range set. */
export interface Allocation {
  readonly ip: IpAddr;
  /** The range it came from (its subnet's prefix and gateway go into the result). */
  readonly range: IpRange;
  /** Index of the range set. */
  readonly setIndex: number;
}

/** A candidate address and the range it belongs to. */
export interface Candidate {
  readonly ip: IpAddr;
  readonly range: IpRange;
}

/**
 * The order in which host-local tries the addresses of `set`: from the one
 * after `last` when `last` lies in the set, else from the first range's
 * start; up each range to its end, then to the next range's start,
 * wrapping; gateways left out. Every address is yielded once, `last` (if
 * allocatable) at the very end.
 */
export function* candidates(set: RangeSet, last?: IpAddr): Generator<Candidate> {
  let index = last ? set.findIndex((r) => rangeContains(r, last)) : -1;
  let cur: IpAddr | undefined = index >= 0 ? last : undefined;
  let start: IpAddr | undefined;
  if (index < 0) index = 0;
  while (true) {
    let range = set[index];
    if (cur === undefined) {
      cur = range.rangeStart;
      start = cur;
    } else {
      if (ipAddrEquals(cur, range.rangeEnd)) {
        index = (index + 1) % set.length;
        range = set[index];
        cur = range.rangeStart;
      } else {
        cur = nextIpAddr(cur)!;
      }
      if (start === undefined) start = cur;
      else if (ipAddrEquals(cur, start)) return;
    }
    if (!ipAddrEquals(cur, range.gateway)) yield { ip: cur, range };
  }
}

function allocationError(setIndex: number, code: number, msg: string): CniError {
  return new CniError(code, `failed to allocate for range ${setIndex}: ${msg}`);
}

/**
 * Allocates one address from `set` for the attachment, or the `requested`
 * one when given (it must lie in the set). `reservations` is the store's
 * content, read under the same lock; it is updated with the new record.
 * Throws CniError: 11 when the set is exhausted or the requested address is
 * taken, 7 when the requested address is the gateway, 999 when the
 * attachment already holds an address of the set.
 */
export async function allocateFromSet(
  store: LockedStore,
  reservations: Reservation[],
  set: RangeSet,
  setIndex: number,
  containerId: string,
  ifname: string,
  requested?: IpAddr,
): Promise<Allocation> {
  const record = (ip: IpAddr, range: IpRange): Allocation => {
    reservations.push({ ip, name: formatIpAddr(ip), containerId, ifname });
    return { ip, range, setIndex };
  };
  if (requested) {
    const range = rangeFor(set, requested)!;
    if (ipAddrEquals(requested, range.gateway)) {
      throw allocationError(
        setIndex,
        ErrorCode.InvalidNetworkConfig,
        `requested ip ${formatIpAddr(requested)} is subnet's gateway`,
      );
    }
    const taken = reservations.some((r) => ipAddrEquals(r.ip, requested));
    if (taken || !(await reserve(store, requested, containerId, ifname, setIndex))) {
      throw allocationError(
        setIndex,
        ErrorCode.TryAgainLater,
        `requested IP address ${formatIpAddr(requested)} is not available in range set ${
          rangeSetToString(set)
        }`,
      );
    }
    return record(requested, range);
  }

  // The spec forbids a second ADD for the same attachment without a DEL.
  const held = reservations.find((r) =>
    (ownedBy(r, containerId, ifname, false) || ownedBy(r, containerId, ifname, true)) &&
    rangeFor(set, r.ip) !== undefined
  );
  if (held) {
    throw allocationError(
      setIndex,
      ErrorCode.Internal,
      `${
        formatIpAddr(held.ip)
      } has been allocated to ${containerId}, duplicate allocation is not allowed`,
    );
  }

  // Keyed by value, so a file named in a non-canonical spelling still counts as taken.
  const taken = new Set(reservations.map((r) => ipAddrKey(r.ip)));
  for (const { ip, range } of candidates(set, await lastReservedIp(store, setIndex))) {
    if (taken.has(ipAddrKey(ip))) continue;
    if (await reserve(store, ip, containerId, ifname, setIndex)) return record(ip, range);
  }
  throw allocationError(
    setIndex,
    ErrorCode.TryAgainLater,
    `no IP addresses available in range set: ${rangeSetToString(set)}`,
  );
}

/**
 * Allocates one address per range set, in order, for the attachment,
 * honouring requested addresses (each must fall in some set). Either every
 * set gets its address or none keeps one: on failure the addresses reserved
 * by this call are released before the error is thrown.
 */
export async function allocate(
  store: LockedStore,
  rangeSets: readonly RangeSet[],
  requestedIps: readonly IpAddr[],
  containerId: string,
  ifname: string,
): Promise<Allocation[]> {
  const reservations = await listReservations(store);
  const pending = [...requestedIps];
  const done: Allocation[] = [];
  try {
    for (const [setIndex, set] of rangeSets.entries()) {
      const i = pending.findIndex((ip) => rangeFor(set, ip) !== undefined);
      const requested = i >= 0 ? pending.splice(i, 1)[0] : undefined;
      done.push(
        await allocateFromSet(store, reservations, set, setIndex, containerId, ifname, requested),
      );
    }
    if (pending.length > 0) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `failed to allocate all requested IPs: ${pending.map(formatIpAddr).join(" ")}`,
      );
    }
    return done;
  } catch (err) {
    const mine = reservations.filter((r) => done.some((a) => ipAddrEquals(a.ip, r.ip)));
    await removeReservations(store, mine).catch(() => {});
    throw err;
  }
}
