/**
 * The node's macvlan "shim" of a hybrid network whose underlay pods are
 * macvlan devices (`underlayAttachment: macvlan`). A macvlan device never
 * talks to its master's own host, yet an underlay pod's way into the
 * overlay is its node; so the router keeps the node's own macvlan device
 * in bridge mode on the same master:
 *
 * - it holds the node's fabric address as a /32: the pods' next hop for
 *   the overlay subnets resolves to it, on the macvlan's internal bridge;
 * - routes `<each local underlay block> dev <shim> src <node address>`
 *   (main table, the network's protocol) carry the node's traffic — its
 *   own and the overlay's, vxlan decapsulated — to its local macvlan pods,
 *   which the uplink's connected route could not reach.
 *
 * Ownership: a macvlan device carrying the alias {@link SHIM_ALIAS} plus
 * the network's name, and the main-table routes of the network's protocol
 * out of it. Its MAC is a hash of the network and the node's address
 * ({@link shimMac}): stable across re-creation (the pods' neighbour entries
 * stay right), and the mark of a shim the router made but had no time to
 * name (killed between the two requests). A device of the shim's name not
 * made by the router, or made for another network, is never touched (an
 * error says so); a shim of a network that is gone, or that no longer uses
 * macvlan, is removed ({@link removeStaleShims}).
 *
 * @module
 */

import {
  addAddr,
  addLink,
  delAddr,
  delLink,
  delRoute,
  findLink,
  type Handle,
  hashedMac,
  isNotFound,
  type Link,
  linkIndex,
  listAddrs,
  listLinks,
  listRoutes,
  replaceRoute,
  setLink,
} from "../netlink/mod.ts";
import type { HybridNetwork } from "../hybridnet/model.ts";

/** The alias marking a shim the router made: `<SHIM_ALIAS><network>`. */
export const SHIM_ALIAS = "hydra-hybrid shim ";
const MAIN_TABLE = 254;
const SCOPE_LINK = 253;

/** What the shim of a network must be on this node. */
export interface DesiredShim {
  net: HybridNetwork;
  /** This node's fabric address. */
  address: string;
  /** This node's underlay blocks: routed out of the shim. */
  blocks: string[];
}

/** A device of the shim's name exists and is not the router's. */
export class ShimConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ShimConflictError";
  }
}

/** The shim's MAC on the node at `address`: locally administered, unicast. */
export function shimMac(network: string, address: string): string {
  return hashedMac(`hydra-hybrid-shim/${network}/${address}`);
}

function isShim(link: Link, uplink: number, mac: string): boolean {
  return link.kind === "macvlan" && link.macvlan?.mode === "bridge" && link.link === uplink &&
    link.mac === mac;
}

/** The shim device, created or repaired; returns its index and what changed. */
function ensureDevice(h: Handle, s: DesiredShim, changes: string[]): number {
  const { net } = s;
  const alias = SHIM_ALIAS + net.name;
  const mac = shimMac(net.name, s.address);
  const uplink = linkIndex(h, net.uplink);
  let link = findLink(h, net.shim);
  // Ours: our alias, or our MAC on a macvlan without an alias (created, not yet named).
  if (link && link.alias !== alias && !(link.alias === undefined && isShim(link, uplink, mac))) {
    throw new ShimConflictError(
      `device ${net.shim} exists and is not hydra's shim of network ${net.name}; ` +
        `rename it or pick another shim name`,
    );
  }
  if (link && !isShim(link, uplink, mac)) {
    delLink(h, link.index);
    changes.push(`shim ${net.shim} recreated`);
    link = undefined;
  }
  if (!link) {
    addLink(h, { kind: "macvlan", name: net.shim, parent: uplink, mode: "bridge", mac });
    changes.push(`shim ${net.shim} created`);
    link = findLink(h, net.shim)!;
  }
  if (link.alias !== alias || !link.up) {
    setLink(h, link.index, { alias, up: true });
    changes.push(`shim ${net.shim} named and up`);
  }
  return link.index;
}

/** Exactly the node's address as a /32 on the shim (no prefix route: the blocks are routed). */
function syncAddress(h: Handle, index: number, address: string, changes: string[]): void {
  const want = `${address}/32`;
  const have = listAddrs(h, { link: index, family: 4 });
  for (const a of have) {
    if (a.cidr === want) continue;
    try {
      delAddr(h, index, a.cidr);
      changes.push(`shim address ${a.cidr} removed`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  if (!have.some((a) => a.cidr === want)) {
    addAddr(h, index, want, { noprefixroute: true });
    changes.push(`shim address ${want} added`);
  }
}

/** The routes to the node's underlay blocks out of the shim; nothing else of the protocol there. */
function syncRoutes(h: Handle, index: number, s: DesiredShim, changes: string[]): void {
  const { protocol } = s.net;
  const want = new Set(s.blocks);
  for (const r of listRoutes(h, { family: 4, table: MAIN_TABLE, protocol })) {
    if (r.oif !== index) continue;
    if (want.has(r.dst) && r.prefsrc === s.address && !r.gateway) {
      want.delete(r.dst);
      continue;
    }
    if (want.has(r.dst)) continue; // replaced below
    try {
      delRoute(h, { dst: r.dst, table: MAIN_TABLE, protocol, oif: index });
      changes.push(`shim route ${r.dst} removed`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  for (const dst of want) {
    replaceRoute(h, {
      dst,
      oif: index,
      prefsrc: s.address,
      scope: SCOPE_LINK,
      table: MAIN_TABLE,
      protocol,
    });
    changes.push(`shim route ${dst}`);
  }
}

/** Makes the network's shim match `s`; returns what changed. Throws ShimConflictError, NetlinkError. */
export function ensureShim(h: Handle, s: DesiredShim): string[] {
  const changes: string[] = [];
  const index = ensureDevice(h, s, changes);
  syncAddress(h, index, s.address, changes);
  syncRoutes(h, index, s, changes);
  return changes;
}

/**
 * Removes the shims the router made for networks not in `keep` (network
 * name → its shim's device name): gone, renamed, or back on a bridge.
 * Returns the devices removed.
 */
export function removeStaleShims(h: Handle, keep: ReadonlyMap<string, string>): string[] {
  const removed: string[] = [];
  for (const link of listLinks(h)) {
    if (link.kind !== "macvlan" || !link.alias?.startsWith(SHIM_ALIAS)) continue;
    const network = link.alias.slice(SHIM_ALIAS.length);
    if (keep.get(network) === link.name) continue;
    try {
      delLink(h, link.index);
      removed.push(link.name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  return removed;
}
