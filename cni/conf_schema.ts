/**
 * The keys the CNI spec gives every network configuration: those of a
 * configuration list and those every plugin object may carry (spec section
 * 1 and the runtime-supplied keys of section 3), as {@link Shape}s that the
 * plugins' own shapes extend.
 *
 * @module
 */

import type { KeySpec, Shape } from "../pkg/schema.ts";

/** A `dns` block (result and config). */
export const DNS_SHAPE: Shape = {
  name: "dns block",
  keys: {
    nameservers: { type: "strings" },
    domain: { type: "string" },
    search: { type: "strings" },
    options: { type: "strings" },
  },
};

/** A route of a result or an IPAM config. */
export const ROUTE_SHAPE: Shape = {
  name: "route",
  keys: {
    dst: { type: "string" },
    gw: { type: "string" },
    mtu: { type: "integer" },
    advmss: { type: "integer" },
    priority: { type: "integer" },
    table: { type: "integer" },
    scope: { type: "integer" },
  },
};

/** A list of routes. */
export const ROUTES: KeySpec = { type: "list", items: { type: "object", shape: ROUTE_SHAPE } };

/** Free-form objects: `args`, `runtimeConfig` (their keys belong to conventions, not plugins). */
const OPEN: Shape = { name: "object", keys: {}, open: true };

/** Keys any plugin object may carry. */
export const PLUGIN_KEYS: Readonly<Record<string, KeySpec>> = {
  type: { type: "string", nullIsWrong: true },
  name: { type: "string", nullIsWrong: true },
  cniVersion: { type: "string", nullIsWrong: true },
  capabilities: { type: "object", shape: { name: "capabilities", keys: {}, open: true } },
  // Its keys depend on its own `type`: checked by that IPAM's shape.
  ipam: { type: "object", shape: OPEN },
  dns: { type: "object", shape: DNS_SHAPE },
  args: { type: "object", shape: OPEN },
  runtimeConfig: { type: "object", shape: OPEN },
  prevResult: { type: "any" },
  "cni.dev/valid-attachments": { type: "list" },
  "cni.dev/attachments": { type: "list" },
};

/** A plugin object whose plugin hydra has no shape for: the spec's keys, anything else allowed. */
export const ANY_PLUGIN_SHAPE: Shape = { name: "plugin config", keys: PLUGIN_KEYS, open: true };

/** A boolean the spec lets be written as "true"/"false" (libcni reads both). */
const BOOL_OR_TEXT: KeySpec = { type: ["boolean", "string"] };

/** The top level of a configuration list (`.conflist`, a NAD holding `plugins`). */
export const CONFLIST_SHAPE: Shape = {
  name: "configuration list",
  keys: {
    cniVersion: { type: "string", nullIsWrong: true },
    cniVersions: { type: "strings" },
    name: { type: "string" },
    disableCheck: BOOL_OR_TEXT,
    disableGC: BOOL_OR_TEXT,
    loadOnlyInlinedPlugins: BOOL_OR_TEXT,
    // Each item is checked by its plugin's shape.
    plugins: { type: "list", items: { type: "object", shape: OPEN } },
  },
};

/** A shape with more keys: `base`'s keys and `keys`, named `name`. */
export function extendShape(
  base: Readonly<Record<string, KeySpec>>,
  name: string,
  keys: Readonly<Record<string, KeySpec>>,
): Shape {
  return { name, keys: { ...base, ...keys } };
}
