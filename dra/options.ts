/**
 * Command-line options of `hydra dra serve`.
 *
 * @module
 */

import { type NadPathRoots, nadPathRootsFlag } from "../kube/nad_paths.ts";
import type { LogFormat, LogLevel } from "../pkg/log.ts";
import type { ListenAddress } from "../pkg/http.ts";
import { defaultHealthAddr, operationHelp, parseRoleArgs } from "../pkg/operation_flags.ts";
import { DEFAULT_EXCLUDE, DEFAULT_EXCLUDE_KINDS, type NicFilter } from "./inventory.ts";
import { DRIVER_NAME } from "../drasandbox/names.ts";

/** Where the kubelet keeps its plugin sockets. */
export const DEFAULT_KUBELET_DIR = "/var/lib/kubelet";
/** The state shared with `hydra nri serve`. */
export const DEFAULT_DRA_STATE_DIR = "/var/lib/hydra/dra";
/** Health and metrics endpoint. */
export const DEFAULT_DRA_HEALTH_ADDR = defaultHealthAddr("dra");
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
  logFormat: LogFormat;
  logFile?: string;
  /** Where path keys of NADs may point (`--nad-path-roots`); the defaults when undefined. */
  nadPathRoots?: NadPathRoots;
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
  --nad-path-roots JSON  where path keys of NADs (dataDir, logFile, kubeconfig,
                         ...) may point, e.g. {"state":["/var/lib/cni"]}; kinds
                         left out keep their defaults (docs/reliability.md)
  --cni-bin-dir DIR      where IPAM plugins that are not built in are found;
                         repeatable or ":"-separated (default: /opt/cni/bin)
  --state-dir DIR        prepared claims, shared with "hydra nri serve
                         --dra-state-dir" (default: ${DEFAULT_DRA_STATE_DIR})
  --setup-grace SECONDS  a pod running this long without the devices it claimed
                         (no "hydra nri serve" set them up) is reported on its
                         claims (Ready=False) and as a Warning Event (default: 30)

Operation:
${operationHelp(DEFAULT_DRA_HEALTH_ADDR)}
  -h, --help             show this help

Exit status: 0 after SIGTERM/SIGINT, 1 failed, 2 bad usage.`;
}

function absolute(flag: string, path: string): string {
  if (!path.startsWith("/")) throw new UsageError(`--${flag} must be an absolute path: "${path}"`);
  return path.replace(/\/+$/, "") || "/";
}

/** Parses the arguments after "serve"; throws UsageError. */
export function parseDraServeArgs(args: string[]): DraServeOptions {
  const { values, ops } = parseRoleArgs(
    args,
    {
      "node-name": { type: "string" },
      kubeconfig: { type: "string" },
      "kubelet-dir": { type: "string" },
      "state-dir": { type: "string" },
      "conf-dir": { type: "string" },
      "nad-path-roots": { type: "string" },
      "cni-bin-dir": { type: "string", multiple: true },
      include: { type: "string", multiple: true },
      exclude: { type: "string", multiple: true },
      "exclude-kind": { type: "string", multiple: true },
      "network-slots": { type: "string" },
      rescan: { type: "string" },
      "setup-grace": { type: "string" },
      sysfs: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    DEFAULT_DRA_HEALTH_ADDR,
    (message) => new UsageError(message),
  );
  const slots = Number(values["network-slots"] ?? DEFAULT_NETWORK_SLOTS);
  if (!Number.isInteger(slots) || slots < 0 || slots > 1024) {
    throw new UsageError("--network-slots must be a whole number from 0 to 1024");
  }
  const rescan = Number(values.rescan ?? 5);
  if (!(rescan > 0)) throw new UsageError("--rescan must be a number of seconds above 0");
  const grace = Number(values["setup-grace"] ?? 30);
  if (!(grace > 0)) throw new UsageError("--setup-grace must be a number of seconds above 0");
  const nodeName = values["node-name"] ?? Deno.env.get("NODE_NAME") ?? Deno.hostname();
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(nodeName) || nodeName.length > 253) {
    throw new UsageError(`--node-name must be a node name (DNS subdomain), got "${nodeName}"`);
  }
  const opts: DraServeOptions = {
    help: values.help === true,
    nodeName,
    kubeletDir: absolute("kubelet-dir", values["kubelet-dir"] ?? DEFAULT_KUBELET_DIR),
    stateDir: absolute("state-dir", values["state-dir"] ?? DEFAULT_DRA_STATE_DIR),
    confDir: absolute("conf-dir", values["conf-dir"] ?? "/etc/cni/multus/net.d"),
    cniBinDirs: (values["cni-bin-dir"] ?? ["/opt/cni/bin"]).flatMap((v) => v.split(":"))
      .filter((v) => v !== "").map((v) => absolute("cni-bin-dir", v)),
    filter: {
      include: values.include ?? [],
      exclude: values.exclude ?? DEFAULT_EXCLUDE,
      excludeKinds: values["exclude-kind"] ?? DEFAULT_EXCLUDE_KINDS,
    },
    networkSlots: slots,
    rescanMs: rescan * 1000,
    setupGraceMs: grace * 1000,
    sysfsRoot: absolute("sysfs", values.sysfs ?? "/sys"),
    healthAddr: ops.healthAddr,
    logLevel: ops.logLevel,
    logFormat: ops.logFormat,
  };
  if (values.kubeconfig !== undefined) opts.kubeconfig = absolute("kubeconfig", values.kubeconfig);
  if (ops.logFile !== undefined) opts.logFile = ops.logFile;
  if (values["nad-path-roots"] !== undefined) {
    try {
      opts.nadPathRoots = nadPathRootsFlag(values["nad-path-roots"]);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  return opts;
}
