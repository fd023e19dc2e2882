/**
 * VLANs of bridge ports (VLAN filtering): list, add and delete the VLAN
 * entries of a port, as `bridge vlan` does. Built on the rtnetlink socket
 * layer of `netlink/` (AF_BRIDGE link requests carrying IFLA_AF_SPEC).
 *
 * @module
 */

import { AF, IFLA, RTM } from "../netlink/constants.ts";
import { writeIfinfo } from "../netlink/link_kinds.ts";
import { getI32, getU16, parseAttrList, parseAttrs } from "../netlink/message.ts";
import { beginDump, beginRequest, execute, executeDump, type Handle } from "../netlink/socket.ts";

const IFLA_AF_SPEC = 26;
const IFLA_BRIDGE_FLAGS = 0;
const IFLA_BRIDGE_VLAN_INFO = 2;
const BRIDGE_FLAGS_MASTER = 1;
const RTEXT_FILTER_BRVLAN = 2;

/** bridge_vlan_info flags. */
const VLAN_INFO = { MASTER: 1, PVID: 2, UNTAGGED: 4 } as const;

/** One VLAN entry of a bridge port. */
export interface PortVlan {
  vid: number;
  /** Untagged frames entering the port get this VLAN. */
  pvid: boolean;
  /** Frames of this VLAN leave the port untagged. */
  untagged: boolean;
}

function modify(h: Handle, type: number, index: number, v: PortVlan): void {
  const w = beginRequest(h, type);
  writeIfinfo(w, AF.BRIDGE, index);
  const spec = w.nestStart(IFLA_AF_SPEC);
  // Acting on the bridge's VLAN table for this port, not on the device itself.
  w.attrU16(IFLA_BRIDGE_FLAGS, BRIDGE_FLAGS_MASTER);
  const info = new Uint8Array(4);
  const view = new DataView(info.buffer);
  view.setUint16(0, (v.pvid ? VLAN_INFO.PVID : 0) | (v.untagged ? VLAN_INFO.UNTAGGED : 0), true);
  view.setUint16(2, v.vid, true);
  w.attrBytes(IFLA_BRIDGE_VLAN_INFO, info);
  w.nestEnd(spec);
  const verb = type === RTM.DELLINK ? "delete" : "add";
  execute(h, `${verb} vlan ${v.vid} on bridge port #${index}`);
}

/** Adds VLAN `v` to bridge port `index` (replacing its flags when present). */
export function addPortVlan(h: Handle, index: number, v: PortVlan): void {
  modify(h, RTM.SETLINK, index, v);
}

/** Removes VLAN `vid` from bridge port `index`. */
export function delPortVlan(h: Handle, index: number, vid: number): void {
  modify(h, RTM.DELLINK, index, { vid, pvid: false, untagged: false });
}

/** The VLAN entries of bridge port `index`, by VID. */
export function listPortVlans(h: Handle, index: number): PortVlan[] {
  const w = beginDump(h, RTM.GETLINK);
  writeIfinfo(w, AF.BRIDGE, 0);
  w.attrU32(IFLA.EXT_MASK, RTEXT_FILTER_BRVLAN);
  const perPort = executeDump(h, "list bridge vlans", (type, payload) => {
    if (type !== RTM.NEWLINK || getI32(payload, 4) !== index) return undefined;
    const spec = parseAttrs(payload, 16).get(IFLA_AF_SPEC);
    if (!spec) return [];
    const out: PortVlan[] = [];
    for (const [t, data] of parseAttrList(spec)) {
      if (t !== IFLA_BRIDGE_VLAN_INFO || data.length < 4) continue;
      const flags = getU16(data, 0);
      out.push({
        vid: getU16(data, 2),
        pvid: (flags & VLAN_INFO.PVID) !== 0,
        untagged: (flags & VLAN_INFO.UNTAGGED) !== 0,
      });
    }
    return out;
  });
  return perPort.flat();
}
