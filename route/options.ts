/**
 * Command-line options of `hydra route sync`.
 *
 * @module
 */

import { parseFlags } from "../pkg/flags.ts";
import type { ListenAddress } from "../pkg/http.ts";
import type { LogFormat, LogLevel } from "../pkg/log.ts";
import {
  defaultHealthAddr,
  OPERATION_FLAGS,
  operationHelp,
  readOperationFlags,
} from "../pkg/operation_flags.ts";
import { ConfigError, parseNetwork } from "./config.ts";
import type { NetworkConfig } from "./config.ts";

/** Where the health endpoint listens by default (the DaemonSet passes its own). */
export const DEFAULT_HEALTH_ADDR = defaultHealthAddr("route");

/** Parsed options of `hydra route sync`. */
export interface RouteOptions {
  help: boolean;
  /** Networks file; when absent, `flagNetwork` is the only network. */
  config?: string;
  flagNetwork?: NetworkConfig;
  nodesFile?: string;
  kubeconfig?: string;
  nodeName: string;
  once: boolean;
  /** --once: how long to wait for the node source, ms. */
  timeoutMs: number;
  /** Undefined: no endpoint. */
  healthAddr?: ListenAddress;
  debounceMs: number;
  resyncIntervalMs: number;
  pollIntervalMs: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logFile?: string;
  /** Where SIGUSR2 writes heap snapshots; none when unset. */
  heapSnapshotDir?: string;
}

/** The help text of `hydra route sync`. */
export function routeHelp(): string {
  return `Usage: hydra route sync [options]

Keeps every other node's pod CIDRs routed, for each configured network: a
route per remote CIDR via the node's address (mode routed), or through a
vxlan device with FDB and neighbour entries per remote node (mode vxlan).
Owns only routes carrying each network's protocol number; adopts what an
earlier run left; on SIGTERM it exits and leaves every route in place.

Node source (one of):
  --nodes-file FILE          static node list (YAML or JSON), re-read when it changes
  --kubeconfig FILE          Node objects from this API server
                             (default: the in-cluster ServiceAccount)

Networks:
  --config FILE              networks file (YAML or JSON, see the docs); without it
                             one network is built from the flags below
  --network NAME             network name (default: default)
  --allowed-cidrs LIST       comma-separated ranges the network's node CIDRs must lie in
                             (required: its cluster CIDR); a node claiming anything
                             else is refused, never routed
  --mode routed|vxlan        (default: routed)
  --protocol N               route protocol number, 5-255, unique per network (default: 202)
  --table N                  routing table (default: 254, main)
  --metric N                 route metric
  --mtu N                    routed: MTU on each route; vxlan: the device's MTU
  --cidr-annotation KEY      node annotation with the network's CIDRs
                             ("" = spec.podCIDRs; default for "default", else
                             hydra.clusternet.io/<network>.cidr)
  --address-annotation KEY   node annotation with the node's address on the network
                             ("" = InternalIP; default like --cidr-annotation, .address)
  --vxlan-owner router|plugin  who makes the vxlan device: the router (default), or the
                             hydra-vxlan plugin (then only its entries are programmed)
  --vxlan-device NAME        vxlan device (default: vx-<network>; hydravx<vni> for the plugin's)
  --vni N                    VXLAN network identifier (default: 1)
  --vxlan-port N             UDP port (default: 8472)
  --underlay-device NAME     device vxlan packets leave by
  --local-address IP         local underlay address (default: this node's address)

Running:
  --node-name NAME           this node (default: $NODE_NAME, else the hostname)
  --once                     sync once, print a JSON summary on stdout, exit
  --timeout S                --once: wait up to S seconds for the node source (default: 30)
  --debounce-ms N            batch changes arriving within N ms (default: 5)
  --resync-interval S        full resync against the kernel every S seconds (default: 60)
  --poll-interval S          node list file poll, besides file events (default: 1)
${operationHelp(DEFAULT_HEALTH_ADDR, 29)}
  --heap-snapshot-dir DIR    on SIGUSR2, write a V8 heap snapshot there (off by default)
  -h, --help                 show this help

Exit status: 0 synced, 1 failed (--once: a kernel change failed or the node
source never answered), 2 bad usage.`;
}

/** Bad usage (exit status 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function num(flag: string, text: string | undefined, fallback: number, scale = 1): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0) {
    throw new UsageError(`--${flag} ${JSON.stringify(text)} is not a non-negative number`);
  }
  return Math.round(n * scale);
}

function defaultNodeName(): string {
  const env = Deno.env.get("NODE_NAME");
  if (env) return env;
  try {
    return Deno.hostname();
  } catch {
    return "";
  }
}

const NETWORK_FLAGS = [
  "network",
  "allowed-cidrs",
  "mode",
  "protocol",
  "table",
  "metric",
  "mtu",
  "cidr-annotation",
  "address-annotation",
  "vxlan-device",
  "vxlan-owner",
  "vni",
  "vxlan-port",
  "underlay-device",
  "local-address",
] as const;

/** Parses `hydra route sync` arguments (after "sync"); throws UsageError. */
export function parseRouteArgs(args: string[]): RouteOptions {
  const strings = Object.fromEntries(
    [
      ...NETWORK_FLAGS,
      "config",
      "nodes-file",
      "kubeconfig",
      "node-name",
      "timeout",
      "debounce-ms",
      "resync-interval",
      "poll-interval",
      "heap-snapshot-dir",
    ].map((k) => [k, { type: "string" as const }]),
  );
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseFlags(args, {
      ...strings,
      ...OPERATION_FLAGS,
      once: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const s = (k: string) => values[k] as string | undefined;
  if (values.help) {
    return {
      help: true,
      nodeName: "",
      once: false,
      timeoutMs: 0,
      debounceMs: 0,
      resyncIntervalMs: 0,
      pollIntervalMs: 0,
      logLevel: "info",
      logFormat: "json",
    };
  }
  if (s("nodes-file") !== undefined && s("kubeconfig") !== undefined) {
    throw new UsageError("--nodes-file and --kubeconfig name two node sources; pick one");
  }
  let ops;
  try {
    ops = readOperationFlags(values, DEFAULT_HEALTH_ADDR);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const opts: RouteOptions = {
    help: false,
    nodeName: s("node-name") ?? defaultNodeName(),
    once: values.once === true,
    timeoutMs: num("timeout", s("timeout"), 30_000, 1000),
    healthAddr: ops.healthAddr,
    debounceMs: num("debounce-ms", s("debounce-ms"), 5),
    resyncIntervalMs: num("resync-interval", s("resync-interval"), 60_000, 1000),
    pollIntervalMs: Math.max(50, num("poll-interval", s("poll-interval"), 1000, 1000)),
    logLevel: ops.logLevel,
    logFormat: ops.logFormat,
  };
  if (!opts.nodeName) throw new UsageError("cannot tell this node's name: pass --node-name");
  if (s("config") !== undefined) {
    const given = NETWORK_FLAGS.filter((f) => s(f) !== undefined);
    if (given.length) {
      throw new UsageError(`--config and --${given[0]} conflict: put the network in the file`);
    }
    opts.config = s("config");
  } else {
    opts.flagNetwork = networkFromFlags(s);
  }
  if (s("nodes-file") !== undefined) opts.nodesFile = s("nodes-file");
  if (s("kubeconfig") !== undefined) opts.kubeconfig = s("kubeconfig");
  if (ops.logFile !== undefined) opts.logFile = ops.logFile;
  if (s("heap-snapshot-dir")) opts.heapSnapshotDir = s("heap-snapshot-dir");
  return opts;
}

function networkFromFlags(s: (k: string) => string | undefined): NetworkConfig {
  const name = s("network") ?? "default";
  const raw: Record<string, unknown> = { name, mode: s("mode") ?? "routed" };
  const copy = (flag: string, key: string) => {
    if (s(flag) !== undefined) raw[key] = s(flag);
  };
  copy("allowed-cidrs", "allowedCIDRs");
  copy("protocol", "protocol");
  copy("table", "table");
  copy("metric", "metric");
  copy("mtu", "mtu");
  copy("cidr-annotation", "cidrAnnotation");
  copy("address-annotation", "addressAnnotation");
  const vxlanFlags = [
    "vxlan-owner",
    "vxlan-device",
    "vni",
    "vxlan-port",
    "underlay-device",
    "local-address",
  ];
  if (raw.mode === "vxlan") {
    const vx: Record<string, unknown> = { vni: s("vni") ?? "1" };
    if (s("vxlan-owner") !== undefined) vx.owner = s("vxlan-owner");
    if (s("vxlan-device") !== undefined) vx.device = s("vxlan-device");
    if (s("vxlan-port") !== undefined) vx.port = s("vxlan-port");
    if (s("underlay-device") !== undefined) vx.underlayDevice = s("underlay-device");
    if (s("local-address") !== undefined) vx.local = s("local-address");
    raw.vxlan = vx;
  } else {
    const stray = vxlanFlags.find((f) => s(f) !== undefined);
    if (stray) throw new UsageError(`--${stray} needs --mode vxlan`);
  }
  try {
    return parseNetwork(raw, 0);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (raw.allowedCIDRs === undefined && /allowedCIDRs is missing/.test(err.message)) {
      throw new UsageError(
        "--allowed-cidrs is missing: name the ranges the network's node CIDRs lie in (its " +
          "cluster CIDR, e.g. 10.244.0.0/16); nodes claiming anything else are not routed",
      );
    }
    throw new UsageError(err.message);
  }
}
