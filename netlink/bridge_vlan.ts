/**
 * VLANs on bridge ports (`bridge vlan add/del/show`), for bridges with VLAN
 * filtering. Kernels built without bridge VLAN filtering answer EOPNOTSUPP.
 *
 * @module
 */

import { AF, IFLA, RTEXT_FILTER_BRVLAN, RTM } from "./constants.ts";
import { linkLabel, type LinkRef, writeIfinfo } from "./link_kinds.ts";
import { linkIndex } from "./link.ts";
import { getI32, getU16, parseAttrList, parseAttrs } from "./message.ts";
import { beginDump, beginRequest, execute, executeDump, type Handle } from "./socket.ts";

const IFLA_AF_SPEC = 26;
const IFLA_BRIDGE_FLAGS = 0;
const IFLA_BRIDGE_VLAN_INFO = 2;
const BRIDGE_FLAGS_SELF = 2;
const BRIDGE_VLAN_INFO_PVID = 2;
const BRIDGE_VLAN_INFO_UNTAGGED = 4;

/** A VLAN on a bridge port. */
export interface BridgeVlan {
  /** VLAN id, 1–4094. */
  vid: number;
  /** Untagged frames arriving on the port belong to this VLAN. */
  pvid?: boolean;
  /** Frames of this VLAN leave the port untagged. */
  untagged?: boolean;
  /** The VLAN is on the bridge device itself (`self`), not on a port. */
  self?: boolean;
}

function write(h: Handle, link: LinkRef, vlan: BridgeVlan, type: number, verb: string): void {
  if (!Number.isInteger(vlan.vid) || vlan.vid < 1 || vlan.vid > 4094) {
    throw new RangeError(`VLAN id ${vlan.vid} is outside 1-4094`);
  }
  const index = linkIndex(h, link);
  const w = beginRequest(h, type);
  writeIfinfo(w, AF.BRIDGE, index);
  const spec = w.nestStart(IFLA_AF_SPEC);
  if (vlan.self) w.attrU16(IFLA_BRIDGE_FLAGS, BRIDGE_FLAGS_SELF);
  const info = new Uint8Array(4);
  const dv = new DataView(info.buffer);
  dv.setUint16(
    0,
    (vlan.pvid ? BRIDGE_VLAN_INFO_PVID : 0) | (vlan.untagged ? BRIDGE_VLAN_INFO_UNTAGGED : 0),
    true,
  );
  dv.setUint16(2, vlan.vid, true);
  w.attrBytes(IFLA_BRIDGE_VLAN_INFO, info);
  w.nestEnd(spec);
  execute(h, `${verb} vlan ${vlan.vid} on ${linkLabel(link)}`);
}

/** Adds VLAN `vlan.vid` to bridge port `link` (or to the bridge itself with `self`). */
export function addBridgeVlan(h: Handle, link: LinkRef, vlan: BridgeVlan): void {
  write(h, link, vlan, RTM.SETLINK, "add");
}

/** Removes VLAN `vlan.vid` from bridge port `link`. */
export function delBridgeVlan(h: Handle, link: LinkRef, vlan: BridgeVlan): void {
  write(h, link, vlan, RTM.DELLINK, "delete");
}

/**
 * The VLANs of bridge port `link` (or of the bridge itself), as `bridge vlan
 * show dev` lists them.
 */
export function listBridgeVlans(h: Handle, link: LinkRef): BridgeVlan[] {
  const index = linkIndex(h, link);
  const w = beginDump(h, RTM.GETLINK);
  writeIfinfo(w, AF.BRIDGE, 0);
  w.attrU32(IFLA.EXT_MASK, RTEXT_FILTER_BRVLAN);
  const perLink = executeDump(h, "list bridge vlans", (type, payload) => {
    if (type !== RTM.NEWLINK || getI32(payload, 4) !== index) return undefined;
    const spec = parseAttrs(payload, 16).get(IFLA_AF_SPEC);
    if (!spec) return [];
    const out: BridgeVlan[] = [];
    for (const [t, data] of parseAttrList(spec)) {
      if (t !== IFLA_BRIDGE_VLAN_INFO || data.length < 4) continue;
      const flags = getU16(data, 0);
      out.push({
        vid: getU16(data, 2),
        pvid: (flags & BRIDGE_VLAN_INFO_PVID) !== 0,
        untagged: (flags & BRIDGE_VLAN_INFO_UNTAGGED) !== 0,
      });
    }
    return out;
  });
  return perLink.flat();
}
