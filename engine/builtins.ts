/**
 * The built-in plugins, by the name they are invoked as (symlink name or
 * conf `type`). Loaded lazily so that an exec of one plugin pays only for
 * the modules it uses.
 *
 * @module
 */

import type { Builtins, Plugin } from "../cni/types.ts";

type PluginLoader = () => Promise<Plugin>;

const builtins: Record<string, PluginLoader> = {
  "hydra": async () => (await import("./meta.ts")).plugin,
  "hydra-ipam": async () => (await import("../ipam/host_local.ts")).plugin,
  "hydra-static": async () => (await import("../ipam/static.ts")).plugin,
  "kube-node": async () => (await import("../ipam/kube_node.ts")).plugin,
  "hydra-pool": async () => (await import("../ipam/pool/plugin.ts")).plugin,
  "hydra-bridge": async () => (await import("../plugins/bridge.ts")).plugin,
  "hydra-macvlan": async () => (await import("../plugins/macvlan.ts")).plugin,
  "hydra-host-device": async () => (await import("../plugins/host-device.ts")).plugin,
  "hydra-vxlan": async () => (await import("../plugins/vxlan.ts")).plugin,
  "hydra-loopback": async () => (await import("../plugins/loopback.ts")).plugin,
  "hydra-tuning": async () => (await import("../plugins/tuning.ts")).plugin,
  "hydra-hybrid": async () => (await import("../plugins/hybrid.ts")).plugin,
};

/** Names of all built-in plugins (the role symlinks the installer creates). */
export function builtinNames(): string[] {
  return Object.keys(builtins);
}

/** True when `type` names a plugin hydra runs in-process. */
export function isBuiltin(type: string): boolean {
  return Object.hasOwn(builtins, type);
}

/** Loads the built-in plugin named `type`, or undefined if there is none. */
export function loadBuiltin(type: string): Promise<Plugin> | undefined {
  const loader = Object.hasOwn(builtins, type) ? builtins[type] : undefined;
  return loader?.();
}

/**
 * hydra's built-ins as the invocation layer's seam: what a hydra process
 * hands to the skel and the list runner so that a plugin hydra has runs
 * in-process instead of being exec'd.
 */
export const BUILTINS: Builtins = { has: isBuiltin, load: loadBuiltin };
