/**
 * Route sync between the demo's nodes. Until the router role exists this
 * reports that nothing was synced.
 *
 * @module
 */

import type { DemoWorld } from "./demo_world.ts";
import type { DemoNetwork } from "./demo_networks.ts";

/** Syncs routes on every node; returns how many, or undefined if no router ran. */
export function syncDemoRoutes(
  _world: DemoWorld,
  _networks: DemoNetwork[],
  _stateDir: string,
): Promise<number | undefined> {
  return Promise.resolve(undefined);
}
