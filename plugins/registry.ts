/**
 * The built-in plugins, by the name they are invoked as (symlink name or
 * conf `type`). Loaded lazily so that an exec of one plugin pays only for
 * the modules it uses.
 *
 * @module
 */

import type { Plugin } from "../cni/plugin.ts";

type PluginLoader = () => Promise<Plugin>;

const builtins: Record<string, PluginLoader> = {
  "hydra": async () => (await import("./meta.ts")).plugin,
  "hydra-ipam": async () => (await import("../ipam/host_local.ts")).plugin,
  "hydra-static": async () => (await import("../ipam/static.ts")).plugin,
  "kube-node": async () => (await import("../ipam/kube_node.ts")).plugin,
  "hydra-pool": async () => (await import("../ipam/pool/plugin.ts")).plugin,
  "hydra-bridge": async () => (await import("./bridge.ts")).plugin,
  "hydra-macvlan": async () => (await import("./macvlan.ts")).plugin,
  "hydra-host-device": async () => (await import("./host-device.ts")).plugin,
  "hydra-vxlan": async () => (await import("./vxlan.ts")).plugin,
  "hydra-loopback": async () => (await import("./loopback.ts")).plugin,
  "hydra-tuning": async () => (await import("./tuning.ts")).plugin,
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
