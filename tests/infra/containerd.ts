/**
 * A private containerd for tests, with CRI and NRI on, running inside a network namespace made for
 * it so that what its CNI plugins create on the "host" side (bridges, veth ends, routes, iptables
 * rules) stays out of the real host namespace. Root, state, sockets, shim sockets, runc state, pod
 * network namespaces and the NRI socket all live under one temporary folder; pods go under a
 * private cgroup parent (cgroupfs driver). The offline pause image is imported at start and is the
 * sandbox image.
 *
 * Always stop it in `finally`; stop() is idempotent and removes pods, processes, mounts, cgroups,
 * the namespace and the folder.
 *
 * @module
 */

import { join } from "node:path";
import { cleanupContainerd, type ContainerdRecord } from "./containerd_cleanup.ts";
import { makeInstanceDir, sweepOrphans, writeOwner } from "./owner.ts";
import { pauseImageArchive, pauseImageName, peerBin, peerBinDir } from "./peers.ts";
import { type Daemon, runCommand, spawnDaemon, stopProcessGroup, waitUntil } from "./process.ts";

export type { ContainerdRecord } from "./containerd_cleanup.ts";
export { cleanupContainerd } from "./containerd_cleanup.ts";

/** Options for {@link startContainerd}. */
export interface ContainerdOptions {
  /** Folder containerd's CRI loads CNI network configurations from. */
  cniConfDir: string;
  /** Folders CNI plugins are looked up in, first match wins. */
  cniBinDirs: string[];
  /** Enable NRI with a socket for external plugins (default true). */
  nri?: boolean;
  /** NRI plugin_request_timeout (default "2s"). */
  nriRequestTimeout?: string;
  /** NRI plugin_registration_timeout (default "5s"). */
  nriRegistrationTimeout?: string;
  /** Keep running after this process exits (for `cluster up`). */
  detach?: boolean;
  /** OCI runtime binary (default /usr/sbin/runc from the distribution). */
  runc?: string;
}

/** Milliseconds spent starting. */
export interface ContainerdTimings {
  /** Until the CRI answered. */
  ready: number;
  /** Importing the pause image. */
  pauseImport: number;
  total: number;
}

/** A running containerd. */
export interface Containerd {
  /** Path of the gRPC unix socket (CRI and containerd API). */
  address: string;
  /** Path of the NRI socket external plugins connect to. */
  nriSocket: string;
  /** containerd's state folder (sockets, netns mounts, shim bundles). */
  stateDir: string;
  /** containerd's root folder (content, snapshots, metadata). */
  rootDir: string;
  /** The temporary folder holding everything. */
  dir: string;
  /** Name of the network namespace containerd (and thus its CNI plugins) runs in. */
  netnsName: string;
  /** Cgroup parent to put in pod sandbox configs (`linux.cgroup_parent`). */
  cgroupParent: string;
  /** The sandbox (pause) image name. */
  pauseImage: string;
  /** crictl configuration file pointing at this containerd. */
  crictlConfig: string;
  logPath: string;
  timings: ContainerdTimings;
  record: ContainerdRecord;
  /** Runs crictl against this containerd; returns stdout, throws with stderr on failure. */
  crictl(...args: string[]): Promise<string>;
  /** Runs ctr (namespace k8s.io) against this containerd. */
  ctr(...args: string[]): Promise<string>;
  /** Stops and starts containerd again; pods (shims) keep running. */
  restart(): Promise<void>;
  /** Removes all pods, stops everything and deletes all state. Idempotent. */
  stop(): Promise<void>;
}

function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** containerd configuration (format version 3) for a private instance. */
export function containerdConfig(
  dir: string,
  opts: ContainerdOptions & { pauseImage: string; runc: string },
): string {
  const nri = opts.nri ?? true;
  const s = tomlString;
  return `version = 3
root = ${s(join(dir, "root"))}
state = ${s(join(dir, "state"))}
temp = ${s(join(dir, "tmp"))}
imports = []
disabled_plugins = [
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = ${s(join(dir, "containerd.sock"))}
[ttrpc]
  address = ${s(join(dir, "containerd.sock.ttrpc"))}
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = ${s(join(dir, "opt"))}
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = ${s(join(dir, "s"))}
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = ${s(opts.pauseImage)}
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  disable_apparmor = true
  enable_criu = false
  netns_mounts_under_state_dir = true
  # Lowering oom_score_adj below our own needs CAP_SYS_RESOURCE, which this process may lack.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = ${s(opts.runc)}
        Root = ${s(join(dir, "runc"))}
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [${opts.cniBinDirs.map(s).join(", ")}]
    conf_dir = ${s(opts.cniConfDir)}
    max_conf_num = 1
[plugins."io.containerd.nri.v1.nri"]
  disable = ${!nri}
  disable_connections = false
  socket_path = ${s(join(dir, "nri", "nri.sock"))}
  plugin_path = ${s(join(dir, "nri", "plugins"))}
  plugin_config_path = ${s(join(dir, "nri", "conf.d"))}
  plugin_registration_timeout = ${s(opts.nriRegistrationTimeout ?? "5s")}
  plugin_request_timeout = ${s(opts.nriRequestTimeout ?? "2s")}
`;
}

const RUNC = "/usr/sbin/runc";
const DIR_PREFIX = "ctd-";

/**
 * Makes the instance folder a shared mount, as every mount is on a systemd host, so pod network
 * namespaces (bind mounts below the state folder) show up in mount namespaces made later with
 * slave propagation: a node agent that runs in a mount namespace of its own, as a DaemonSet's
 * container does (the Multus thick daemon here), can then open the paths the runtime hands it.
 * Cleanup unmounts it with everything else below the folder.
 */
async function shareMounts(dir: string): Promise<void> {
  await runCommand("mount", ["--bind", dir, dir]);
  await runCommand("mount", ["--make-rshared", dir]);
}

/**
 * Starts containerd in a fresh network namespace, waits for the CRI and imports the pause image.
 */
export async function startContainerd(opts: ContainerdOptions): Promise<Containerd> {
  const containerdBin = peerBin("containerd");
  peerBin("containerd-shim-runc-v2");
  const crictlBin = peerBin("crictl");
  const ctrBin = peerBin("ctr");
  const archive = pauseImageArchive();
  const pauseImage = pauseImageName();
  await sweepOrphans(DIR_PREFIX, cleanupContainerd);
  const t0 = performance.now();
  const dir = await makeInstanceDir(DIR_PREFIX);
  const id = dir.slice(dir.lastIndexOf("-") + 1);
  const netnsName = `hydra-ctd-${id}`;
  const record: ContainerdRecord = {
    dir,
    pid: 0,
    netnsName,
    cgroupParent: `/hydra-test-${id}`,
    address: join(dir, "containerd.sock"),
    crictl: crictlBin,
  };
  const detached = opts.detach ?? false;
  let daemon: Daemon | undefined;
  try {
    await writeOwner(dir, record, detached);
    await shareMounts(dir);
    for (const sub of ["nri/plugins", "nri/conf.d", "tmp"]) {
      await Deno.mkdir(join(dir, sub), { recursive: true });
    }
    const configPath = join(dir, "config.toml");
    await Deno.writeTextFile(
      configPath,
      containerdConfig(dir, { ...opts, pauseImage, runc: opts.runc ?? RUNC }),
    );
    const crictlConfig = join(dir, "crictl.yaml");
    await Deno.writeTextFile(
      crictlConfig,
      `runtime-endpoint: unix://${record.address}\nimage-endpoint: unix://${record.address}\n` +
        `timeout: 60\n`,
    );
    await runCommand("ip", ["netns", "add", netnsName]);
    await runCommand("ip", ["-n", netnsName, "link", "set", "lo", "up"]);
    const logPath = join(dir, "containerd.log");

    const crictl = async (...args: string[]) =>
      (await runCommand(crictlBin, ["--config", crictlConfig, ...args])).stdout;
    const ctr = async (...args: string[]) =>
      (await runCommand(ctrBin, ["--address", record.address, "--namespace", "k8s.io", ...args]))
        .stdout;

    const launch = async (): Promise<Daemon> => {
      // Only the network namespace is switched (not the mount namespace, as `ip netns exec`
      // would), so the pod netns bind mounts stay visible to tests and NRI plugins.
      const started = spawnDaemon("containerd", "nsenter", {
        logPath,
        detach: opts.detach,
        args: [`--net=/var/run/netns/${netnsName}`, "--", containerdBin, "--config", configPath],
        env: { PATH: `${peerBinDir()}:${Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin"}` },
      });
      record.pid = started.pid;
      await writeOwner(dir, record, detached);
      try {
        await waitUntil(
          "containerd CRI",
          async () => {
            try {
              await Deno.stat(record.address);
            } catch {
              return false;
            }
            const out = await runCommand(crictlBin, ["--config", crictlConfig, "version"], {
              allowFailure: true,
            });
            return out.code === 0;
          },
          30_000,
          started,
        );
      } catch (err) {
        await stopProcessGroup(started.pid).catch(() => {});
        await started.status;
        throw err;
      }
      return started;
    };

    daemon = await launch();
    const tReady = performance.now();
    await ctr("images", "import", "--local", archive);
    const images = await ctr("images", "ls", "-q");
    if (!images.split("\n").includes(pauseImage)) {
      throw new Error(`pause image ${pauseImage} not found after import: ${images}`);
    }
    const tImported = performance.now();

    let stopping: Promise<void> | undefined;
    let current: Daemon = daemon;
    return {
      address: record.address,
      nriSocket: join(dir, "nri", "nri.sock"),
      stateDir: join(dir, "state"),
      rootDir: join(dir, "root"),
      dir,
      netnsName,
      cgroupParent: record.cgroupParent,
      pauseImage,
      crictlConfig,
      logPath,
      timings: { ready: tReady - t0, pauseImport: tImported - tReady, total: tImported - t0 },
      record,
      crictl,
      ctr,
      async restart() {
        if (stopping) throw new Error("containerd was stopped");
        await stopProcessGroup(current.pid);
        await current.status;
        current = await launch();
      },
      stop() {
        stopping ??= (async () => {
          await cleanupContainerd(record);
          await current.status;
        })();
        return stopping;
      },
    };
  } catch (err) {
    await cleanupContainerd(record).catch(() => {});
    await daemon?.status;
    throw err;
  }
}
