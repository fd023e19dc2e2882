/**
 * A link's packet and byte counters (IFLA_STATS64), read through rtnetlink
 * — the same numbers `ip -s link` prints, from any namespace a handle is
 * open in (sysfs shows only the namespace it was mounted in).
 *
 * @module
 */

import { AF, IFLA, RTM } from "./constants.ts";
import { NetlinkError } from "./errors.ts";
import { writeIfinfo } from "./link_kinds.ts";
import type { LinkRef } from "./link_kinds.ts";
import { parseAttrs } from "./message.ts";
import { beginRequest, execute, type Handle } from "./socket.ts";

const IFLA_STATS64 = 23;

/** The counters of one link. */
export interface LinkStats {
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
}

/** The counters of link `ref`; throws NetlinkError ENODEV when there is none. */
export function linkStats(h: Handle, ref: LinkRef): LinkStats {
  const w = beginRequest(h, RTM.GETLINK);
  writeIfinfo(w, AF.UNSPEC, typeof ref === "number" ? ref : 0);
  if (typeof ref === "string") w.attrString(IFLA.IFNAME, ref);
  let stats: LinkStats | undefined;
  execute(h, `get stats of link ${ref}`, (type, _flags, payload) => {
    if (type !== RTM.NEWLINK) return;
    const b = parseAttrs(payload, 16).get(IFLA_STATS64);
    if (!b || b.length < 32) return;
    const v = new DataView(b.buffer, b.byteOffset, b.length);
    const u64 = (off: number) => Number(v.getBigUint64(off, true));
    stats = { rxPackets: u64(0), txPackets: u64(8), rxBytes: u64(16), txBytes: u64(24) };
  });
  if (!stats) throw new NetlinkError(`get stats of link ${ref}`, 19);
  return stats;
}
