/**
 * CNI spec types: network configuration, results of every spec version, the
 * arguments a plugin receives, the shape of a plugin implemented in hydra,
 * and the seam through which a process offers plugins to run in-process.
 *
 * hydra works internally with the 1.1.0 result shape ({@link Result}); the
 * conversions in `convert.ts` turn it into whatever version a caller speaks.
 *
 * @module
 */

/** Every CNI spec version hydra speaks, oldest first. */
export const SUPPORTED_VERSIONS = [
  "0.1.0",
  "0.2.0",
  "0.3.0",
  "0.3.1",
  "0.4.0",
  "1.0.0",
  "1.1.0",
] as const;

/** The newest spec version hydra speaks. */
export const CURRENT_VERSION = "1.1.0";

/** DNS settings as carried in configs and results. */
export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** An interface entry of a 1.x / 0.3+ result. */
export interface Interface {
  name: string;
  mac?: string;
  /** 1.1.0 */
  mtu?: number;
  /** Network namespace path; absent means the host. */
  sandbox?: string;
  /** 1.1.0 */
  socketPath?: string;
  /** 1.1.0 */
  pciID?: string;
}

/** An address entry of a 1.x result. `version` exists only in 0.3.x/0.4.0. */
export interface IpConfig {
  /** CIDR notation: "10.1.0.5/16". */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
  /** "4" or "6": required in 0.3.0-0.4.0, absent in 1.x. */
  version?: "4" | "6";
}

/** A route of a result or an IPAM config. */
export interface Route {
  dst: string;
  gw?: string;
  /** 1.1.0 */
  mtu?: number;
  /** 1.1.0 */
  advmss?: number;
  /** 1.1.0 */
  priority?: number;
  /** 1.1.0 */
  table?: number;
  /** 1.1.0: 0 universe, 253 link, 254 host. */
  scope?: number;
}

/** A result in the 0.3.0-1.1.0 shape; hydra's internal form is 1.1.0. */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IpConfig[];
  routes?: Route[];
  dns?: Dns;
}

/** The per-family block of a 0.1.0/0.2.0 result. */
export interface LegacyIpBlock {
  ip: string;
  gateway?: string;
  routes?: { dst: string; gw?: string }[];
}

/** A result in the 0.1.0/0.2.0 shape. */
export interface LegacyResult {
  cniVersion: string;
  ip4?: LegacyIpBlock;
  ip6?: LegacyIpBlock;
  dns?: Dns;
}

/** Any result a plugin may print, whatever its version. */
export type AnyResult = Result | LegacyResult;

/** The IPAM section of a plugin config. Plugin-specific keys pass through. */
export interface IpamConfig {
  type: string;
  [key: string]: unknown;
}

/** A single plugin's network configuration (stdin of a plugin). */
export interface NetConf {
  cniVersion?: string;
  name?: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: IpamConfig;
  dns?: Dns;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  prevResult?: AnyResult;
  [key: string]: unknown;
}

/** A network configuration list (a `.conflist`). */
export interface NetConfList {
  cniVersion?: string;
  cniVersions?: string[];
  name: string;
  disableCheck?: boolean;
  disableGC?: boolean;
  loadOnlyInlinedPlugins?: boolean;
  plugins: NetConf[];
  [key: string]: unknown;
}

/** One attachment named in a GC request's `cni.dev/valid-attachments`. */
export interface Attachment {
  containerID: string;
  ifname: string;
}

/** The verbs of the CNI protocol. */
export type Command = "ADD" | "DEL" | "CHECK" | "VERSION" | "STATUS" | "GC";

/**
 * What a plugin is invoked with: the CNI_* environment, parsed and
 * validated, plus the raw and decoded stdin config.
 */
export interface CmdArgs {
  command: Command;
  containerId: string;
  /** Path of the container's network namespace; "" when not given (DEL, GC). */
  netns: string;
  ifName: string;
  /** CNI_ARGS as given ("K=V;K2=V2"). */
  args: string;
  /** CNI_PATH split into directories. */
  path: string[];
  /** stdin exactly as received. */
  stdinData: Uint8Array;
  /** stdin decoded as a plugin config. */
  config: NetConf;
  /** CNI_NETNS_OVERRIDE was 1 or true (the own-namespace check was skipped). */
  netnsOverride?: boolean;
  /**
   * The plugins this process runs in-process: a plugin that invokes another
   * (an interface plugin its IPAM, the meta-CNI its delegates) passes them
   * on, so a built-in it calls runs here instead of being exec'd. Unset:
   * every plugin it invokes is exec'd from CNI_PATH.
   */
  builtins?: Builtins;
  /**
   * Aborted when whoever asked for this invocation gave up (the node daemon
   * sets it when the exec'd side went away). A plugin stops at its next safe
   * point and fails; what it already did is undone like any failed ADD.
   * Unset in an exec'd plugin process: the runtime stops it by signal.
   */
  signal?: AbortSignal;
  /**
   * Where a plugin reports what it accepts but does not use (an unknown
   * config key). An exec'd plugin logs it on stderr; unset in-process,
   * where the caller has checked the whole config already.
   */
  warn?: (message: string) => void;
}

/**
 * A CNI plugin implemented in hydra. Every built-in plugin and IPAM module
 * exports one; the skel (`skel.ts`) drives it from a process invocation,
 * and the meta-CNI drives it in-process with the same inputs.
 */
export interface Plugin {
  /** The reference `type` this plugin mirrors, e.g. "bridge", "host-local". */
  readonly kind: string;
  /** Spec versions this plugin accepts. */
  readonly supportedVersions: readonly string[];
  /** ADD: returns the result in the config's cniVersion (see convert.ts). */
  add(args: CmdArgs): Promise<AnyResult>;
  /** DEL: must succeed when what it would remove is already gone. */
  del(args: CmdArgs): Promise<void>;
  /** CHECK: throws a CniError when the attachment is not as ADD left it. */
  check(args: CmdArgs): Promise<void>;
  /** STATUS: throws CniError 50/51 when the plugin cannot serve ADD. */
  status?(args: CmdArgs): Promise<void>;
  /** GC: releases resources of attachments not listed as valid. */
  gc?(args: CmdArgs): Promise<void>;
}

/**
 * The plugins a process can run in-process instead of exec'ing them: the
 * seam of the invocation layer (libcni's `invoke.Exec`). This layer knows
 * no plugin; whoever starts the process (an entry point, the node daemon,
 * the NRI plugin) hands in hydra's table of built-ins. Where none is given,
 * {@link EXEC_ONLY} applies: every plugin is a file on CNI_PATH.
 */
export interface Builtins {
  /** True when `type` runs in-process. */
  has(type: string): boolean;
  /** Loads the plugin `type`; undefined when it is not one of these. */
  load(type: string): Promise<Plugin> | undefined;
  /**
   * How the plugins that are not built in are exec'd: a command that gets
   * the plugin file's path as its last argument and runs it in its place
   * (same stdin, stdout, environment), e.g. chrooted into the host's root.
   * Unset: the plugin file is exec'd directly.
   */
  execVia?: readonly string[];
}

/** No plugin runs in-process: every invocation is an exec. */
export const EXEC_ONLY: Builtins = {
  has: () => false,
  load: () => undefined,
};
