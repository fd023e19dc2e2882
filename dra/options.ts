/**
 * Command-line options of `hydra dra serve`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { isLogLevel, type LogLevel } from "../pkg/log.ts";
import { type ListenAddress, parseListenAddress } from "../pkg/http.ts";
import { DEFAULT_EXCLUDE, DEFAULT_EXCLUDE_KINDS, type NicFilter } from "./inventory.ts";
import { DRIVER_NAME } from "../drasandbox/names.ts";

/** Where the kubelet keeps its plugin sockets. */
export const DEFAULT_KUBELET_DIR = "/var/lib/kubelet";
/** The state shared with `hydra nri serve`. */
export const DEFAULT_DRA_STATE_DIR = "/var/lib/hydra/dra";
/** Health and metrics endpoint. */
export const DEFAULT_DRA_HEALTH_ADDR = "127.0.0.1:9476";
/** Network slots per node. */
export const DEFAULT_NETWORK_SLOTS = 32;

/** Parsed options. */
export interface DraServeOptions {
  help: boolean;
  nodeName: string;
  kubeconfig?: string;
  kubeletDir: string;
  stateDir: string;
  confDir: string;
  cniBinDirs: string[];
  filter: NicFilter;
  networkSlots: number;
  rescanMs: number;
  /** How long a pod with prepared claims may run without its devices before it is reported. */
  setupGraceMs: number;
  sysfsRoot: string;
  healthAddr?: ListenAddress;
  logLevel: LogLevel;
  logFile?: string;
}

/** Bad usage (exit status 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The help text. */
export function draServeHelp(): string {
  return `Usage: hydra dra serve [options]

Runs hydra's DRA driver (${DRIVER_NAME}) on this node: registers with the
kubelet, publishes the node's devices in ResourceSlices — the host NICs of
the pool and network slots that carry hydra networks — and prepares the
ResourceClaims the scheduler allocated. The devices are set up in each pod
by "hydra nri serve" at RunPodSandbox, from the state both share.

Kubernetes:
  --node-name NAME       this node (default: $NODE_NAME, else the host name)
  --kubeconfig FILE      API access (default: the pod's ServiceAccount)
  --kubelet-dir DIR      the kubelet's root folder (default: ${DEFAULT_KUBELET_DIR})

Devices:
  --include GLOB         only host interfaces matching GLOB join the pool;
                         repeatable (default: all)
  --exclude GLOB         host interfaces never offered; repeatable; replaces
                         the default list (${DEFAULT_EXCLUDE.join(" ")})
  --exclude-kind KIND    link kinds never offered; repeatable; replaces the
                         default list (${DEFAULT_EXCLUDE_KINDS.join(" ")})
                         The uplink (links of default routes), loopback and
                         enslaved links are never offered.
  --network-slots N      attachments of hydra networks one node carries
                         (default: ${DEFAULT_NETWORK_SLOTS}; 0: none)
  --rescan SECONDS       how often host interfaces are looked at (default: 5)
  --sysfs DIR            where sysfs is mounted (default: /sys)

Networks and state:
  --conf-dir DIR         NADs with an empty config and plain network names are
                         looked up here (default: /etc/cni/multus/net.d)
  --cni-bin-dir DIR      where IPAM plugins that are not built in are found;
                         repeatable or ":"-separated (default: /opt/cni/bin)
  --state-dir DIR        prepared claims, shared with "hydra nri serve
                         --dra-state-dir" (default: ${DEFAULT_DRA_STATE_DIR})
  --setup-grace SECONDS  a pod running this long without the devices it claimed
                         (no "hydra nri serve" set them up) is reported on its
                         claims (Ready=False) and as a Warning Event (default: 30)

Operation:
  --health-addr ADDR     /healthz, /readyz, /metrics on [HOST]:PORT or unix:PATH
                         ("off": none; default: ${DEFAULT_DRA_HEALTH_ADDR})
  --log-level LEVEL      debug, info, warn or error (default: info)
  --log-file FILE        append JSON log lines there instead of stderr
  -h, --help             show this help

Exit status: 0 after SIGTERM/SIGINT, 1 failed, 2 bad usage.`;
}

function absolute(flag: string, path: string): string {
  if (!path.startsWith("/")) throw new UsageError(`--${flag} must be an absolute path: "${path}"`);
  return path.replace(/\/+$/, "") || "/";
}

/** Parses the arguments after "serve"; throws UsageError. */
export function parseDraServeArgs(args: string[]): DraServeOptions {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        "node-name": { type: "string" },
        kubeconfig: { type: "string" },
        "kubelet-dir": { type: "string" },
        "state-dir": { type: "string" },
        "conf-dir": { type: "string" },
        "cni-bin-dir": { type: "string", multiple: true },
        include: { type: "string", multiple: true },
        exclude: { type: "string", multiple: true },
        "exclude-kind": { type: "string", multiple: true },
        "network-slots": { type: "string" },
        rescan: { type: "string" },
        "setup-grace": { type: "string" },
        sysfs: { type: "string" },
        "health-addr": { type: "string" },
        "log-level": { type: "string" },
        "log-file": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const s = (k: string) => values[k] as string | undefined;
  const list = (k: string) => values[k] as string[] | undefined;
  const logLevel = s("log-level") ?? "info";
  if (!isLogLevel(logLevel) || logLevel === "off") {
    throw new UsageError(`--log-level must be debug, info, warn or error, got "${logLevel}"`);
  }
  const slots = Number(s("network-slots") ?? DEFAULT_NETWORK_SLOTS);
  if (!Number.isInteger(slots) || slots < 0 || slots > 1024) {
    throw new UsageError("--network-slots must be a whole number from 0 to 1024");
  }
  const rescan = Number(s("rescan") ?? 5);
  if (!(rescan > 0)) throw new UsageError("--rescan must be a number of seconds above 0");
  const grace = Number(s("setup-grace") ?? 30);
  if (!(grace > 0)) throw new UsageError("--setup-grace must be a number of seconds above 0");
  const nodeName = s("node-name") ?? Deno.env.get("NODE_NAME") ?? Deno.hostname();
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(nodeName) || nodeName.length > 253) {
    throw new UsageError(`--node-name must be a node name (DNS subdomain), got "${nodeName}"`);
  }
  const health = s("health-addr") ?? DEFAULT_DRA_HEALTH_ADDR;
  let healthAddr: ListenAddress | undefined;
  if (health !== "off" && health !== "") {
    try {
      healthAddr = parseListenAddress(health);
    } catch (err) {
      throw new UsageError(`--health-addr: ${(err as Error).message}`);
    }
  }
  const opts: DraServeOptions = {
    help: values.help === true,
    nodeName,
    kubeletDir: absolute("kubelet-dir", s("kubelet-dir") ?? DEFAULT_KUBELET_DIR),
    stateDir: absolute("state-dir", s("state-dir") ?? DEFAULT_DRA_STATE_DIR),
    confDir: absolute("conf-dir", s("conf-dir") ?? "/etc/cni/multus/net.d"),
    cniBinDirs: (list("cni-bin-dir") ?? ["/opt/cni/bin"]).flatMap((v) => v.split(":"))
      .filter((v) => v !== "").map((v) => absolute("cni-bin-dir", v)),
    filter: {
      include: list("include") ?? [],
      exclude: list("exclude") ?? DEFAULT_EXCLUDE,
      excludeKinds: list("exclude-kind") ?? DEFAULT_EXCLUDE_KINDS,
    },
    networkSlots: slots,
    rescanMs: rescan * 1000,
    setupGraceMs: grace * 1000,
    sysfsRoot: absolute("sysfs", s("sysfs") ?? "/sys"),
    healthAddr,
    logLevel,
  };
  if (s("kubeconfig") !== undefined) opts.kubeconfig = absolute("kubeconfig", s("kubeconfig")!);
  if (s("log-file") !== undefined) opts.logFile = s("log-file");
  return opts;
}
