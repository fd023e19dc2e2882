/**
 * CNI spec types: network configuration, results of every spec version, and
 * the arguments a plugin receives.
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
}
