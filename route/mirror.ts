/**
 * What the router remembers of one network between passes: the kernel
 * state its last pass left (the mirror an incremental pass compares with),
 * and the counts of what a pass changed. Types only; reconcile.ts fills
 * them, apply_routes.ts and router.ts read them.
 *
 * @module
 */

import type { NexthopTable } from "./nexthops.ts";

/** A route the router owns, as far as deleting and comparing it needs. */
export interface OwnedRoute {
  dst: string;
  table: number;
  metric: number;
  sig: string;
  /** The network's nexthop object the route uses (see nexthops.ts). */
  nh?: number;
}

/** What the last pass left in the kernel for one network. */
export interface NetworkMirror {
  routes: Map<string, OwnedRoute>;
  /** vxlan: device signature and index, FDB (MAC → dst) and neighbours (IP → MAC). */
  device?: { sig: string; index: number };
  fdb: Map<string, string>;
  neighs: Map<string, string>;
  /** The network's nexthop objects; read on first use when absent. */
  nexthops?: NexthopTable;
}

/** Counts of the changes one pass made. */
export interface ChangeCounts {
  routesAdded: number;
  routesReplaced: number;
  routesDeleted: number;
  fdbChanged: number;
  neighChanged: number;
}
