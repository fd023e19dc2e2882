/**
 * Interface groups (IFLA_GROUP): a number every link carries (0 unless
 * set). Deleting by group removes every link of the group in one request,
 * and the kernel unregisters them as one batch: one round of RCU grace
 * periods for all of them instead of one per link, which is most of what a
 * link deletion costs (≈ 18 ms each on a typical node, ≈ 20 ms for three
 * in a batch).
 *
 * @module
 */

import { AF, IFLA, RTM } from "./constants.ts";
import { NetlinkError } from "./errors.ts";
import { writeIfinfo } from "./link_kinds.ts";
import type { LinkRef } from "./link_kinds.ts";
import { linkIndex } from "./link.ts";
import { beginRequest, execute, executeOffThread, type Handle } from "./socket.ts";

const EINVAL = 22;

function checkGroup(group: number, op: string): void {
  if (!Number.isInteger(group) || group < 0 || group > 0xffffffff) {
    throw new NetlinkError(`${op}: group must be a 32-bit unsigned integer`, EINVAL);
  }
}

/** Puts link `ref` into interface group `group`. */
export function setLinkGroup(h: Handle, ref: LinkRef, group: number): void {
  const op = `set group of link ${typeof ref === "number" ? `#${ref}` : JSON.stringify(ref)}`;
  checkGroup(group, op);
  const index = linkIndex(h, ref);
  const w = beginRequest(h, RTM.NEWLINK);
  writeIfinfo(w, AF.UNSPEC, index);
  w.attrU32(IFLA.GROUP, group);
  execute(h, op);
}

/**
 * Deletes every link of group `group` in the handle's namespace in one
 * batch. Group 0, every link's default, is refused. ENODEV when the group
 * has no links.
 */
export function delLinkGroup(h: Handle, group: number): void {
  execute(h, beginGroupDeletion(h, group));
}

/**
 * {@link delLinkGroup} with the kernel's work off the JavaScript thread
 * (see executeOffThread): for a process that goes on serving meanwhile.
 */
export async function delLinkGroupOffThread(h: Handle, group: number): Promise<void> {
  await executeOffThread(h, beginGroupDeletion(h, group));
}

/** Builds the request deleting group `group`; returns its description. */
function beginGroupDeletion(h: Handle, group: number): string {
  const op = `delete link group ${group}`;
  checkGroup(group, op);
  if (group === 0) throw new NetlinkError(`${op}: refusing the default group`, EINVAL);
  const w = beginRequest(h, RTM.DELLINK);
  writeIfinfo(w, AF.UNSPEC, 0);
  w.attrU32(IFLA.GROUP, group);
  return op;
}
