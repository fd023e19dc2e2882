/**
 * The allocation failures a user is told about, as CNI errors (code 11:
 * the runtime tries again, and another pod's DEL or the controller may
 * have made room by then).
 *
 * @module
 */

import { CniError, ErrorCode } from "../../cni/errors.ts";
import { formatIpAddr, type IpAddr } from "../../ipaddr/ip.ts";
import type { PoolRange } from "./config.ts";
import type { Allocation } from "./objects.ts";

/** No address is left for a request in its pool. */
export class PoolExhaustedError extends CniError {
  readonly pool: string;
  constructor(range: PoolRange, detail = "") {
    super(
      ErrorCode.TryAgainLater,
      `address pool ${range.name} (${range.spec.cidr}, ${range.spec.rangeStart}-${range.spec.rangeEnd}` +
        `${range.spec.network ? `, network ${range.spec.network}` : ""}) is exhausted: ` +
        `no free address left on any node${detail}`,
    );
    this.name = "PoolExhaustedError";
    this.pool = range.name;
  }
}

/** A static address asked for is held by another pod. */
export class AddressInUseError extends CniError {
  constructor(ip: IpAddr, range: PoolRange, holder: Allocation) {
    const who = holder.source === "whereabouts"
      ? `whereabouts (pod ${holder.pod ?? "?"})`
      : holder.releasedAt
      ? `StatefulSet pod ${holder.pod ?? "?"} (held for its next start)`
      : `pod ${holder.pod ?? "?"}`;
    super(
      ErrorCode.TryAgainLater,
      `static address ${formatIpAddr(ip)} of pool ${range.name} is in use by ${who}`,
    );
    this.name = "AddressInUseError";
  }
}
