/**
 * Multus thick (multus-daemon and multus-shim, built from the same module version as the thin
 * peer) run the way its own DaemonSet (deployments/multus-daemonset-thick.yml) runs it on a node:
 *
 * - the shim is copied into the runtime's CNI bin folder as `multus-shim` (the DaemonSet's
 *   install_multus init container);
 * - the daemon reads a daemon-config.json like the DaemonSet's ConfigMap (`multusConfigFile:
 *   auto`), so it is the daemon that writes `00-multus.conf` (type `multus-shim`, the node's first
 *   other conf as its cluster network) into the runtime's conf folder, and removes it on exit;
 * - it talks to the API server as the `multus` ServiceAccount in kube-system with the upstream
 *   manifest's ClusterRole, through the in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT
 *   and a token and CA at /var/run/secrets/kubernetes.io/serviceaccount, bind-mounted in a mount
 *   namespace of its own (slave propagation, so pod network namespaces mounted later are seen, as
 *   through the DaemonSet's HostToContainer mounts);
 * - it runs in the node's network namespace (for a test node: containerd's), so the host side of
 *   what its delegates create lands there; it runs the delegates itself, without chroot, since it
 *   already sees the node's files.
 *
 * Everything else (socket folder, Multus' cache folder, logs) lives in an instance folder.
 *
 * @module
 */

import { join } from "node:path";
import type { ControlPlane } from "./cluster.ts";
import { createIfMissing } from "./kubeapi.ts";
import { makeInstanceDir, sweepOrphans, writeOwner } from "./owner.ts";
import { peerBin, referencePluginDir } from "./peers.ts";
import { type Daemon, removeAll, spawnDaemon, stopProcessGroup, waitUntil } from "./process.ts";

/** Options for {@link startMultusThick}. */
export interface MultusThickOptions {
  /**
   * The runtime's CNI conf folder: the daemon takes the first conf there as the cluster network
   * and writes `00-multus.conf` beside it. That conf must exist within about a minute.
   */
  cniConfDir: string;
  /** A folder on the runtime's CNI path: the shim is installed there as `multus-shim`. */
  shimBinDir: string;
  /** Where the daemon finds delegate plugins (Multus' `binDir`; default: the reference plugins). */
  binDir?: string;
  /**
   * Network namespace (a name under /var/run/netns) the daemon runs in, e.g. `ctd.netnsName`;
   * default: the caller's. The API server must be reachable from there at `server`.
   */
  netns?: string;
  /**
   * The API server's URL as seen from that namespace (default `cp.server`; inside a test
   * containerd's namespace that address works while a kubelet, whose API bridge it is, runs).
   */
  server?: string;
  /** MULTUS_NODE_NAME: the daemon then watches only this node's pods, as in the DaemonSet. */
  nodeName?: string;
  /** Daemon configuration keys merged over the defaults (e.g. `cniVersion`, `logLevel`). */
  config?: Record<string, unknown>;
  /** Keep running after this process exits. */
  detach?: boolean;
}

/** Everything needed to stop a Multus thick daemon, also from another process. */
export interface MultusThickRecord {
  dir: string;
  pid: number;
  /** Files installed outside `dir`: the shim copy and the daemon's 00-multus.conf. */
  shimPath: string;
  confPath: string;
}

/** A running Multus thick daemon with its shim installed. */
export interface MultusThick {
  /** Instance folder (daemon config, socket folder, cache, log). */
  dir: string;
  /** The daemon-config.json it runs with. */
  configPath: string;
  /** Folder of the daemon's socket (`multus.sock`); the shim's `daemonSocketDir`. */
  socketDir: string;
  /** The conf the daemon wrote for the runtime (`<cniConfDir>/00-multus.conf`). */
  confPath: string;
  /** The installed shim (`<shimBinDir>/multus-shim`). */
  shimPath: string;
  /** The daemon's process id (for CPU and memory measurements). */
  pid: number;
  logPath: string;
  record: MultusThickRecord;
  /** Stops the daemon (it removes 00-multus.conf), removes the shim and the folder. Idempotent. */
  stop(): Promise<void>;
}

const DIR_PREFIX = "mt-";
const NAMESPACE = "kube-system";
const SERVICE_ACCOUNT = "multus";
/** Where client-go's in-cluster configuration reads the token and CA. */
const TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The ClusterRole of Multus' thick DaemonSet manifest, bound to its ServiceAccount. */
async function grantMultusRole(cp: ControlPlane): Promise<void> {
  const rbac = "/apis/rbac.authorization.k8s.io/v1";
  await createIfMissing(cp.api, `${rbac}/clusterroles`, {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRole",
    metadata: { name: "multus" },
    rules: [
      { apiGroups: ["k8s.cni.cncf.io"], resources: ["*"], verbs: ["*"] },
      {
        apiGroups: [""],
        resources: ["pods", "pods/status"],
        verbs: ["get", "list", "update", "watch"],
      },
      {
        apiGroups: ["", "events.k8s.io"],
        resources: ["events"],
        verbs: ["create", "patch", "update"],
      },
    ],
  });
  await createIfMissing(cp.api, `${rbac}/clusterrolebindings`, {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: "multus" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "multus" },
    subjects: [{ kind: "ServiceAccount", name: SERVICE_ACCOUNT, namespace: NAMESPACE }],
  });
}

/** Writes the ServiceAccount volume's files (token, ca.crt, namespace) into `dir`. */
async function writeServiceAccountFiles(cp: ControlPlane, dir: string): Promise<void> {
  await Deno.mkdir(dir, { mode: 0o700 });
  const token = await cp.mintServiceAccountToken(NAMESPACE, SERVICE_ACCOUNT);
  await Deno.writeTextFile(join(dir, "token"), token, { mode: 0o600 });
  await Deno.copyFile(cp.caPath, join(dir, "ca.crt"));
  await Deno.writeTextFile(join(dir, "namespace"), NAMESPACE);
}

/** Copies the shim into place under a temporary name and renames it, as install_multus does. */
async function installShim(shimBinDir: string): Promise<string> {
  const target = join(shimBinDir, "multus-shim");
  const temp = join(shimBinDir, `.multus-shim.${crypto.randomUUID()}`);
  await Deno.copyFile(peerBin("multus-shim"), temp);
  await Deno.chmod(temp, 0o755);
  await Deno.rename(temp, target);
  return target;
}

/** daemon-config.json: the DaemonSet's ConfigMap with this node's folders. */
function daemonConfig(dir: string, opts: MultusThickOptions): Record<string, unknown> {
  const socketDir = join(dir, "run");
  return {
    cniVersion: "0.3.1",
    logLevel: "verbose",
    logToStderr: true,
    cniConfigDir: opts.cniConfDir,
    multusAutoconfigDir: opts.cniConfDir,
    multusConfigFile: "auto",
    socketDir,
    // Carried into 00-multus.conf: where the shim finds the socket (default /run/multus).
    daemonSocketDir: socketDir,
    binDir: opts.binDir ?? referencePluginDir(),
    cniDir: join(dir, "cache"),
    ...opts.config,
  };
}

/**
 * Mounts the ServiceAccount files where client-go looks for them, in a mount namespace private to
 * the daemon, then execs the daemon (args: account folder, mount point, program, its args...).
 */
const MOUNT_AND_EXEC = 'mount --bind "$1" "$2" && shift 2 && exec "$@"';

function spawnMultusDaemon(
  dir: string,
  configPath: string,
  accountDir: string,
  server: URL,
  opts: MultusThickOptions,
): Daemon {
  const inNamespace = ["unshare", "--mount", "--propagation", "slave", "--"];
  const mountAndExec = ["/bin/sh", "-c", MOUNT_AND_EXEC, "sh", accountDir, TOKEN_MOUNT];
  const daemon = [peerBin("multus-daemon"), `-config=${configPath}`];
  const command = opts.netns ? ["nsenter", `--net=/var/run/netns/${opts.netns}`, "--"] : [];
  const [program, ...args] = [...command, ...inNamespace, ...mountAndExec, ...daemon];
  return spawnDaemon("multus-daemon", program, {
    args,
    logPath: join(dir, "multus-daemon.log"),
    detach: opts.detach,
    env: {
      KUBERNETES_SERVICE_HOST: server.hostname.replace(/^\[(.*)\]$/, "$1"),
      KUBERNETES_SERVICE_PORT: server.port || "443",
      ...(opts.nodeName ? { MULTUS_NODE_NAME: opts.nodeName } : {}),
    },
  });
}

/** True once the daemon listens and has written a multus-shim conf. */
async function daemonReady(socketDir: string, confPath: string): Promise<boolean> {
  try {
    if (!(await Deno.stat(join(socketDir, "multus.sock"))).isSocket) return false;
    const conf = JSON.parse(await Deno.readTextFile(confPath)) as { type?: string };
    return conf.type === "multus-shim";
  } catch {
    return false; // not there yet, or being written
  }
}

/**
 * Installs the shim, starts the daemon and waits until it serves its socket and has written
 * 00-multus.conf. Stop it before the control plane (and, for a test node, before the kubelet and
 * containerd). The daemon owns `<cniConfDir>/00-multus.conf`: stop() removes whatever is there.
 */
export async function startMultusThick(
  cp: ControlPlane,
  opts: MultusThickOptions,
): Promise<MultusThick> {
  const detach = opts.detach ?? false;
  peerBin("multus-daemon");
  await sweepOrphans(DIR_PREFIX, stopMultusThickRecord);
  const dir = await makeInstanceDir(DIR_PREFIX);
  const record: MultusThickRecord = {
    dir,
    pid: 0,
    shimPath: join(opts.shimBinDir, "multus-shim"),
    confPath: join(opts.cniConfDir, "00-multus.conf"),
  };
  let daemon: Daemon | undefined;
  try {
    await writeOwner(dir, record, detach);
    await grantMultusRole(cp);
    const accountDir = join(dir, "serviceaccount");
    await writeServiceAccountFiles(cp, accountDir);
    // The mount point, as on a node; the mount itself stays inside the daemon's namespace.
    await Deno.mkdir(TOKEN_MOUNT, { recursive: true });
    await installShim(opts.shimBinDir);
    const config = daemonConfig(dir, opts);
    const configPath = join(dir, "daemon-config.json");
    await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2));
    const server = new URL(opts.server ?? cp.server);
    daemon = spawnMultusDaemon(dir, configPath, accountDir, server, opts);
    record.pid = daemon.pid;
    await writeOwner(dir, record, detach);
    const socketDir = String(config.socketDir);
    await waitUntil(
      "multus-daemon socket and 00-multus.conf",
      () => daemonReady(socketDir, record.confPath),
      90_000,
      daemon,
    );
    let stopping: Promise<void> | undefined;
    const started = daemon;
    return {
      dir,
      configPath,
      socketDir,
      confPath: record.confPath,
      shimPath: record.shimPath,
      pid: started.pid,
      logPath: started.logPath,
      record,
      stop() {
        stopping ??= (async () => {
          await stopMultusThickRecord(record);
          await started.status;
        })();
        return stopping;
      },
    };
  } catch (err) {
    await stopMultusThickRecord(record).catch(() => {});
    await daemon?.status;
    throw err;
  }
}

/** Stops the daemon from its record, removes the shim, a conf left behind and the folder. */
export async function stopMultusThickRecord(record: MultusThickRecord): Promise<void> {
  const errors: unknown[] = [];
  if (record.pid > 1) await stopProcessGroup(record.pid).catch((err) => errors.push(err));
  // The daemon removes its conf when it exits cleanly; not after SIGKILL.
  for (const path of [record.confPath, record.shimPath, record.dir]) {
    await removeAll(path).catch((err) => errors.push(err));
  }
  if (errors.length > 0) throw new AggregateError(errors, "stopping multus-daemon failed");
}
