/**
 * Command-line options of `hydra nri serve`.
 *
 * @module
 */

import { type NadPathRoots, nadPathRootsFlag } from "../kube/nad_paths.ts";
import type { LogFormat, LogLevel } from "../pkg/log.ts";
import type { ListenAddress } from "../pkg/http.ts";
import { defaultHealthAddr, operationHelp, parseRoleArgs } from "../pkg/operation_flags.ts";
import { DEFAULT_PLUGIN_INDEX, DEFAULT_PLUGIN_NAME, DEFAULT_SOCKET_PATH } from "./stub.ts";
import { type NamespacePolicy, parseGlobalNamespaces } from "../kube/namespaces.ts";

/** Where the health endpoint listens by default (the DaemonSet passes its own). */
export const DEFAULT_HEALTH_ADDR = defaultHealthAddr("nri");
/** Where the plugin keeps its records, results and pod state. */
export const DEFAULT_NRI_CACHE_DIR = "/var/lib/cni/hydra-nri";
/** Conf-file mode: where networks named by pods are found (Multus's folder for them). */
export const DEFAULT_NRI_CONF_DIR = "/etc/cni/multus/net.d";
/** Where delegate plugins that are not built in are found. */
export const DEFAULT_CNI_BIN_DIR = "/opt/cni/bin";
/** The DRA driver's state (prepared claims), shared with `hydra dra serve`. */
export const DEFAULT_DRA_STATE_DIR = "/var/lib/hydra/dra";

/** What to do when a pod's extra networks cannot be attached during RunPodSandbox. */
export type FailurePolicy = "fail" | "log";

/** Parsed options of `hydra nri serve`. */
export interface NriServeOptions {
  help: boolean;
  socketPath: string;
  pluginName: string;
  pluginIndex: string;
  confDir: string;
  /** Kubernetes mode through this kubeconfig. */
  kubeconfig?: string;
  /** Kubernetes mode through the pod's ServiceAccount. */
  inCluster: boolean;
  /** Kubernetes mode: networks every pod gets (not kube-system pods). */
  defaultNetworks: string[];
  /** Which namespaces' networks a pod may select (the meta-CNI's namespaceIsolation rules). */
  namespaces: NamespacePolicy;
  /** Kubernetes mode: where path keys of NADs may point (`--nad-path-roots`). */
  nadPathRoots?: NadPathRoots;
  cacheDir: string;
  cniBinDirs: string[];
  /** The host's root as mounted in the container: exec'd delegates run chrooted into it. */
  chrootDir?: string;
  onFailure: FailurePolicy;
  /** Undefined: no endpoint. */
  healthAddr?: ListenAddress;
  /** Background attach/release steps at once. */
  concurrency: number;
  /** Attach and detach networks of running pods as their selection changes (Kubernetes mode). */
  hotplug: boolean;
  /** This node (hot plug watches its pods). */
  nodeName: string;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logFile?: string;
  /** The DRA state folder; undefined: no DRA devices. */
  draStateDir?: string;
  /** Kubernetes mode: the kubelet's pod-resources socket; its default when unset. */
  podResourcesSocket?: string;
}

/** Bad usage (exit status 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The help text of `hydra nri serve`. */
export function nriServeHelp(): string {
  return `Usage: hydra nri serve [options]

Runs hydra as a containerd NRI plugin beside the cluster's default CNI:
while a pod sandbox is created it attaches the extra networks the pod asks
for (annotation k8s.v1.cni.cncf.io/networks, "name[@ifname],..." or the JSON
form) inside the sandbox's network namespace, and releases them when the
sandbox stops. On (re)connecting it attaches what is missing for existing
sandboxes and releases what belongs to sandboxes that are gone.

Runtime:
  --socket PATH          NRI socket of the runtime (default: ${DEFAULT_SOCKET_PATH})
  --plugin-name NAME     plugin name (default: $NRI_PLUGIN_NAME, else ${DEFAULT_PLUGIN_NAME})
  --plugin-index NN      two-digit plugin index (default: $NRI_PLUGIN_IDX, else ${DEFAULT_PLUGIN_INDEX})

Networks:
  --conf-dir DIR         conf-file mode: a selected name is the "name" of a
                         .conflist/.conf/.json in DIR (default: ${DEFAULT_NRI_CONF_DIR})
  --kubeconfig FILE      Kubernetes mode: selections name NetworkAttachmentDefinitions
                         (as with Multus), each attached network is recorded on the
                         pod (network-status merged with the default CNI's entries,
                         hydra.clusternet.io.<network>); API calls of one pod take
                         at most 1 s. Empty NADs and plain names come from --conf-dir
  --in-cluster           Kubernetes mode with the pod's ServiceAccount. Only these
                         two flags switch modes: KUBERNETES_SERVICE_HOST alone
                         keeps conf-file mode
  --default-network NAME Kubernetes mode: a NAD (or conf path) every pod outside
                         kube-system gets as net1, … before its own; repeatable
  --pod-resources-socket PATH
                         Kubernetes mode: the kubelet's pod-resources API, asked for
                         the device a NAD's k8s.v1.cni.cncf.io/resourceName names
                         (default: /var/lib/kubelet/pod-resources/kubelet.sock)
  --namespace-isolation  a pod may select only networks of its own namespace and
                         of --global-namespaces (the meta-CNI's namespaceIsolation);
                         both modes
  --global-namespaces NS,...
                         namespaces whose networks every pod may select under
                         isolation (default: default)
  --nad-path-roots JSON  Kubernetes mode: where path keys of NADs (dataDir,
                         logFile, kubeconfig, ...) may point, e.g.
                         {"state":["/var/lib/cni"],"logs":["/var/log"]}; kinds
                         left out keep their defaults (docs/reliability.md)
  --cni-bin-dir DIR      where non-built-in plugins are found; repeat or
                         separate with ":" (default: ${DEFAULT_CNI_BIN_DIR})
  --chroot-dir DIR       the node's root as mounted in this container: delegates
                         that are not built in run chrooted into it, so they find
                         the node's tools (iptables for portmap, firewall); their
                         paths must be the same in the container and on the node
  --cache-dir DIR        records of what was attached, kept across restarts
                         (default: ${DEFAULT_NRI_CACHE_DIR})
  --on-failure fail|log  fail: a pod whose networks cannot be attached fails to
                         start (the kubelet retries it); log: it starts without
                         them and the failure is logged (default: fail)
  --concurrency N        background attach/release steps at once (default: 4)
  --hotplug on|off       Kubernetes mode: attach and detach networks of running pods
                         that accept it (annotation hydra.clusternet.io/hotplug: "true")
                         when their networks annotation changes (default:
                         $HYDRA_HOTPLUG, else off)
  --node-name NAME       this node, whose pods and Node are watched in Kubernetes mode
                         (default: $NODE_NAME, else the host name)
  --dra-state-dir DIR    claims "hydra dra serve" prepared: their host NICs and
                         networks are set up in the pod here, and a pod whose
                         devices cannot be set up fails to start whatever
                         --on-failure says ("off": none; default:
                         ${DEFAULT_DRA_STATE_DIR})

Operation:
${operationHelp(DEFAULT_HEALTH_ADDR)}
  -h, --help             show this help

Exit status: 0 after SIGTERM/SIGINT, 1 failed, 2 bad usage.`;
}

/** The flags of `hydra nri serve` besides the operation flags, as parseArgs options. */
const SERVE_OPTIONS = {
  socket: { type: "string" },
  "plugin-name": { type: "string" },
  "plugin-index": { type: "string" },
  "conf-dir": { type: "string" },
  kubeconfig: { type: "string" },
  "cache-dir": { type: "string" },
  "chroot-dir": { type: "string" },
  "on-failure": { type: "string" },
  concurrency: { type: "string" },
  hotplug: { type: "string" },
  "node-name": { type: "string" },
  "dra-state-dir": { type: "string" },
  "pod-resources-socket": { type: "string" },
  "global-namespaces": { type: "string" },
  "nad-path-roots": { type: "string" },
  "cni-bin-dir": { type: "string", multiple: true },
  "default-network": { type: "string", multiple: true },
  "in-cluster": { type: "boolean" },
  "namespace-isolation": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function absolute(flag: string, path: string): string {
  if (!path.startsWith("/")) throw new UsageError(`--${flag} must be an absolute path: "${path}"`);
  return path.replace(/\/+$/, "") || "/";
}

/** Parses `hydra nri serve` arguments (after "serve"); throws UsageError. */
export function parseNriServeArgs(args: string[]): NriServeOptions {
  const { values, ops } = parseRoleArgs(
    args,
    SERVE_OPTIONS,
    DEFAULT_HEALTH_ADDR,
    (message) => new UsageError(message),
  );
  const onFailure = values["on-failure"] ?? "fail";
  if (onFailure !== "fail" && onFailure !== "log") {
    throw new UsageError(`--on-failure must be fail or log, got "${onFailure}"`);
  }
  const pluginIndex = values["plugin-index"] ?? Deno.env.get("NRI_PLUGIN_IDX") ??
    DEFAULT_PLUGIN_INDEX;
  if (!/^[0-9]{2}$/.test(pluginIndex)) {
    throw new UsageError(`--plugin-index must be two digits, got "${pluginIndex}"`);
  }
  const pluginName = values["plugin-name"] ?? Deno.env.get("NRI_PLUGIN_NAME") ??
    DEFAULT_PLUGIN_NAME;
  if (!/^[A-Za-z0-9_.+-]+$/.test(pluginName)) {
    throw new UsageError(`--plugin-name may hold only A-Z a-z 0-9 _ . + -, got "${pluginName}"`);
  }
  const concurrencyText = values.concurrency ?? "4";
  const concurrency = Number(concurrencyText);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new UsageError(`--concurrency must be a whole number of at least 1`);
  }
  const hotplug = values.hotplug ?? Deno.env.get("HYDRA_HOTPLUG") ?? "off";
  if (!["on", "off", "true", "false"].includes(hotplug)) {
    throw new UsageError(`--hotplug must be on or off, got "${hotplug}"`);
  }
  const binDirs = (values["cni-bin-dir"] ?? [DEFAULT_CNI_BIN_DIR])
    .flatMap((v) => v.split(":"))
    .filter((v) => v !== "")
    .map((v) => absolute("cni-bin-dir", v));
  const opts: NriServeOptions = {
    help: values.help === true,
    socketPath: values.socket ?? DEFAULT_SOCKET_PATH,
    pluginName,
    pluginIndex,
    confDir: absolute("conf-dir", values["conf-dir"] ?? DEFAULT_NRI_CONF_DIR),
    cacheDir: absolute("cache-dir", values["cache-dir"] ?? DEFAULT_NRI_CACHE_DIR),
    cniBinDirs: binDirs,
    inCluster: values["in-cluster"] === true,
    defaultNetworks: values["default-network"] ?? [],
    namespaces: {
      namespaceIsolation: values["namespace-isolation"] === true,
      globalNamespaces: parseGlobalNamespaces(values["global-namespaces"]),
    },
    onFailure,
    healthAddr: ops.healthAddr,
    concurrency,
    hotplug: hotplug === "on" || hotplug === "true",
    nodeName: (values["node-name"] || Deno.env.get("NODE_NAME") || Deno.hostname()).toLowerCase(),
    logLevel: ops.logLevel,
    logFormat: ops.logFormat,
  };
  if (values.kubeconfig !== undefined) {
    if (opts.inCluster) throw new UsageError("--kubeconfig and --in-cluster exclude each other");
    opts.kubeconfig = absolute("kubeconfig", values.kubeconfig);
  }
  if (opts.hotplug && !opts.kubeconfig && !opts.inCluster) {
    throw new UsageError("--hotplug needs Kubernetes mode (--kubeconfig or --in-cluster)");
  }
  if (values["pod-resources-socket"] !== undefined) {
    opts.podResourcesSocket = absolute("pod-resources-socket", values["pod-resources-socket"]);
  }
  if (opts.defaultNetworks.length && !opts.kubeconfig && !opts.inCluster) {
    throw new UsageError("--default-network needs Kubernetes mode (--kubeconfig or --in-cluster)");
  }
  if (values["global-namespaces"] !== undefined && !opts.namespaces.namespaceIsolation) {
    throw new UsageError("--global-namespaces needs --namespace-isolation");
  }
  if (values["nad-path-roots"] !== undefined) {
    if (!opts.kubeconfig && !opts.inCluster) {
      throw new UsageError("--nad-path-roots needs Kubernetes mode (--kubeconfig or --in-cluster)");
    }
    try {
      opts.nadPathRoots = nadPathRootsFlag(values["nad-path-roots"]);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (ops.logFile !== undefined) opts.logFile = ops.logFile;
  if (values["chroot-dir"] !== undefined) {
    opts.chrootDir = absolute("chroot-dir", values["chroot-dir"]);
  }
  const dra = values["dra-state-dir"] ?? DEFAULT_DRA_STATE_DIR;
  if (dra !== "off" && dra !== "") opts.draStateDir = absolute("dra-state-dir", dra);
  return opts;
}
