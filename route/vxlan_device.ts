/**
 * The vxlan device of an overlay network: created when missing, recreated
 * when its identity (VNI, port, local address, underlay device) is wrong,
 * and adjusted in place otherwise (MAC, MTU, up, its own addresses). Its
 * FDB and neighbour entries are kept by the reconciler.
 *
 * Learning is off: every remote MAC is programmed, so nothing floods.
 *
 * @module
 */

import {
  addAddr,
  addLink,
  delAddr,
  delLink,
  findLink,
  type Handle,
  isNotFound,
  linkIndex,
  listAddrs,
  setLink,
} from "../netlink/mod.ts";
import type { LinkChanges } from "../netlink/mod.ts";
import type { DesiredVxlan } from "./desired.ts";

/** What {@link ensureVxlanDevice} did. */
export interface DeviceOutcome {
  index: number;
  /** The device was (re)created: routes and entries through the old one are gone. */
  created: boolean;
  /** Human-readable changes made, for the log. */
  changes: string[];
}

/** The device exists under the name but is not a vxlan device hydra can take. */
export class DeviceConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeviceConflictError";
  }
}

/** A signature of the device's desired settings: equal signatures need no device work. */
export function deviceSignature(d: DesiredVxlan): string {
  return [
    d.device,
    d.vni,
    d.port,
    d.underlayDevice ?? "",
    d.local,
    d.mac,
    d.mtu ?? "",
    ...d.addresses,
  ]
    .join("|");
}

/** The hydra-vxlan plugin has not made its device on this node yet (no pod of the network). */
export class DeviceMissingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeviceMissingError";
  }
}

/**
 * Finds the device the hydra-vxlan plugin made; it is used as it is.
 * Throws DeviceMissingError while there is none, DeviceConflictError when
 * the name is taken by something else.
 */
export function pluginDevice(h: Handle, d: DesiredVxlan): DeviceOutcome {
  const link = findLink(h, d.device);
  if (!link) {
    throw new DeviceMissingError(
      `device ${d.device} does not exist yet (hydra-vxlan makes it with the network's first pod ` +
        `on this node); its entries follow once it does`,
    );
  }
  if (link.kind !== "vxlan" || link.vxlan?.vni !== d.vni) {
    throw new DeviceConflictError(
      `device ${d.device} is not the VNI ${d.vni} vxlan device hydra-vxlan makes`,
    );
  }
  return { index: link.index, created: false, changes: [] };
}

/** Makes the vxlan device match `d`; throws DeviceConflictError or NetlinkError. */
export function ensureVxlanDevice(h: Handle, d: DesiredVxlan): DeviceOutcome {
  if (d.owner === "plugin") return pluginDevice(h, d);
  const changes: string[] = [];
  let created = false;
  let link = findLink(h, d.device);
  if (link && link.kind !== "vxlan") {
    throw new DeviceConflictError(
      `device ${d.device} exists and is ${link.kind ? `a ${link.kind}` : "not a vxlan"} device; ` +
        `rename it or pick another vxlan.device`,
    );
  }
  const parent = d.underlayDevice === undefined ? undefined : linkIndex(h, d.underlayDevice);
  if (link) {
    const v = link.vxlan;
    const wrong: string[] = [];
    if (!v || v.vni !== d.vni) wrong.push(`vni ${v?.vni} → ${d.vni}`);
    if (v && v.port !== d.port) wrong.push(`port ${v.port} → ${d.port}`);
    if (v && v.local !== d.local) wrong.push(`local ${v.local ?? "none"} → ${d.local}`);
    if (v && parent !== undefined && v.parent !== parent) wrong.push("underlay device");
    if (v && v.learning) wrong.push("learning on");
    if (wrong.length) {
      delLink(h, d.device);
      changes.push(`recreated (${wrong.join(", ")})`);
      link = undefined;
    }
  }
  if (!link) {
    addLink(h, {
      kind: "vxlan",
      name: d.device,
      vni: d.vni,
      port: d.port,
      local: d.local,
      ...(d.underlayDevice !== undefined ? { parent: d.underlayDevice } : {}),
      learning: false,
      mac: d.mac,
      ...(d.mtu !== undefined ? { mtu: d.mtu } : {}),
      up: true,
    });
    created = true;
    if (!changes.length) changes.push("created");
    link = findLink(h, d.device)!;
  } else {
    const set: LinkChanges = {};
    if (link.mac !== d.mac) set.mac = d.mac;
    if (d.mtu !== undefined && link.mtu !== d.mtu) set.mtu = d.mtu;
    if (!link.up) set.up = true;
    if (Object.keys(set).length) {
      setLink(h, d.device, set);
      changes.push(`set ${Object.keys(set).join(", ")}`);
    }
  }
  // The device's own addresses: the first address of each local CIDR, nothing else global.
  const have = listAddrs(h, { link: link.index }).filter((a) => a.scope === 0);
  for (const a of have) {
    if (!d.addresses.includes(a.cidr)) {
      try {
        delAddr(h, link.index, a.cidr);
        changes.push(`address ${a.cidr} removed`);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }
  for (const cidr of d.addresses) {
    if (!have.some((a) => a.cidr === cidr)) {
      addAddr(h, link.index, cidr, { nodad: cidr.includes(":") });
      changes.push(`address ${cidr} added`);
    }
  }
  return { index: link.index, created, changes };
}
