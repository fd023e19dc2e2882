/**
 * Bridge-port settings (hairpin, learning, flooding, isolation, STP state):
 * their wire form in IFLA_PROTINFO / IFLA_INFO_SLAVE_DATA.
 *
 * @module
 */

import { attr, type Attrs, type Writer } from "./message.ts";

/** Settings of a link enslaved to a bridge. */
export interface BridgePortInfo {
  /** Hairpin mode: frames may go back out the port they came in on. */
  hairpin?: boolean;
  learning?: boolean;
  unicastFlood?: boolean;
  isolated?: boolean;
  /** STP state number (0 disabled … 3 forwarding, 4 blocking). */
  state?: number;
  cost?: number;
  priority?: number;
}

/** IFLA_BRPORT_* numbers used here. */
export const IFLA_BRPORT = {
  STATE: 1,
  PRIORITY: 2,
  COST: 3,
  MODE: 4,
  LEARNING: 8,
  UNICAST_FLOOD: 9,
  ISOLATED: 33,
} as const;

/** Parses bridge-port attributes (IFLA_INFO_SLAVE_DATA or IFLA_PROTINFO). */
export function parseBridgePort(data: Attrs): BridgePortInfo {
  const flag = (t: number) => {
    const v = attr.u8(data, t);
    return v === undefined ? undefined : v === 1;
  };
  const out: BridgePortInfo = {};
  const set = <K extends keyof BridgePortInfo>(k: K, v: BridgePortInfo[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set("hairpin", flag(IFLA_BRPORT.MODE));
  set("learning", flag(IFLA_BRPORT.LEARNING));
  set("unicastFlood", flag(IFLA_BRPORT.UNICAST_FLOOD));
  set("isolated", flag(IFLA_BRPORT.ISOLATED));
  set("state", attr.u8(data, IFLA_BRPORT.STATE));
  set("cost", attr.u32(data, IFLA_BRPORT.COST));
  set("priority", attr.u16(data, IFLA_BRPORT.PRIORITY));
  return out;
}

/** Writes bridge-port attributes for the keys set in `port`. */
export function writeBridgePort(w: Writer, port: BridgePortInfo): void {
  if (port.hairpin !== undefined) w.attrU8(IFLA_BRPORT.MODE, port.hairpin ? 1 : 0);
  if (port.learning !== undefined) w.attrU8(IFLA_BRPORT.LEARNING, port.learning ? 1 : 0);
  if (port.unicastFlood !== undefined) {
    w.attrU8(IFLA_BRPORT.UNICAST_FLOOD, port.unicastFlood ? 1 : 0);
  }
  if (port.isolated !== undefined) w.attrU8(IFLA_BRPORT.ISOLATED, port.isolated ? 1 : 0);
  if (port.state !== undefined) w.attrU8(IFLA_BRPORT.STATE, port.state);
  if (port.cost !== undefined) w.attrU32(IFLA_BRPORT.COST, port.cost);
  if (port.priority !== undefined) w.attrU16(IFLA_BRPORT.PRIORITY, port.priority);
}
