/**
 * A real kubelet joined to a test control plane, with a test containerd as its runtime, so a Pod
 * object becomes a pod sandbox networked by whatever CNI configuration containerd loads.
 *
 * The kubelet runs in containerd's network namespace, so everything it touches on the network side
 * stays there. It reaches the API server on the host's loopback through a unix-socket bridge (see
 * tcp_bridge.ts) and uses the same https://127.0.0.1:<port> address, so the serving certificate
 * fits. Its node IP sits on a bridge link of its own inside that namespace (a kubelet refuses a
 * loopback node IP). Pods go under containerd's private cgroup parent (cgroupfs).
 *
 * Stop it before the containerd and control plane it uses.
 *
 * @module
 */

import { join } from "node:path";
import { stringify } from "yaml";
import type { ControlPlane } from "./cluster.ts";
import type { Containerd } from "./containerd.ts";
import { createCgroups, unmountUnder } from "./host.ts";
import { makeInstanceDir, sweepOrphans, writeOwner } from "./owner.ts";
import { infraDir, peerBin } from "./peers.ts";
import {
  type Daemon,
  poll,
  removeAll,
  runCommand,
  spawnDaemon,
  stopProcessGroup,
  waitUntil,
} from "./process.ts";

/** Everything needed to stop a kubelet, also from another process. */
export interface KubeletRecord {
  dir: string;
  /** kubelet and the two bridge halves. */
  pids: number[];
}

/** Options for {@link startKubelet}. */
export interface KubeletOptions {
  /** Node name (default: a unique one). */
  nodeName?: string;
  /** Node IP inside containerd's network namespace (default 10.254.254.2). */
  nodeIp?: string;
  /** Extra KubeletConfiguration fields, merged over the defaults. */
  config?: Record<string, unknown>;
  /** Keep running after this process exits (for `cluster up`). */
  detach?: boolean;
}

/** A running kubelet. */
export interface Kubelet {
  nodeName: string;
  nodeIp: string;
  dir: string;
  logPath: string;
  /** Milliseconds until the Node was registered and reporting status. */
  startupMs: number;
  record: KubeletRecord;
  /**
   * Kills the kubelet process (SIGKILL, as a crash would) and starts it again with the same
   * configuration and folders; resolves once the new process reports the Node's status again.
   */
  restart(): Promise<void>;
  /** Stops the kubelet and its bridge, deletes the Node object and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

const DIR_PREFIX = "kl-";

/**
 * Starts a kubelet and waits until its Node is registered and reporting status. The Node turns
 * Ready once containerd has a CNI configuration.
 */
export async function startKubelet(
  cp: ControlPlane,
  ctd: Containerd,
  opts: KubeletOptions = {},
): Promise<Kubelet> {
  const kubeletBin = peerBin("kubelet");
  await sweepOrphans(DIR_PREFIX, stopKubeletRecord);
  const t0 = performance.now();
  const dir = await makeInstanceDir(DIR_PREFIX);
  const id = dir.slice(dir.lastIndexOf("-") + 1);
  const nodeName = opts.nodeName ?? `hydra-node-${id.slice(0, 8)}`;
  const nodeIp = opts.nodeIp ?? "10.254.254.2";
  const detached = opts.detach ?? false;
  const record: KubeletRecord = { dir, pids: [] };
  const daemons: Daemon[] = [];
  const netnsArg = `--net=/var/run/netns/${ctd.netnsName}`;
  const start = (name: string, program: string, args: string[]) => {
    const daemon = spawnDaemon(name, program, {
      args,
      logPath: join(dir, `${name}.log`),
      detach: detached,
    });
    daemons.push(daemon);
    record.pids.push(daemon.pid);
    return writeOwner(dir, record, detached).then(() => daemon);
  };
  try {
    await writeOwner(dir, record, detached);
    // The node IP's link; it lives and dies with containerd's namespace.
    const link = `hykl${id.slice(0, 8)}`;
    await runCommand("ip", ["-n", ctd.netnsName, "link", "add", link, "type", "bridge"]);
    await runCommand("ip", ["-n", ctd.netnsName, "addr", "add", `${nodeIp}/32`, "dev", link]);
    await runCommand("ip", ["-n", ctd.netnsName, "link", "set", link, "up"]);

    const apiSocket = join(dir, "api.sock");
    const apiAddress = new URL(cp.server).host;
    const bridgeScript = join(infraDir, "tcp_bridge.ts");
    const deno = Deno.execPath();
    await start("bridge-host", deno, [
      "run",
      "-A",
      bridgeScript,
      "unix-to-tcp",
      apiSocket,
      apiAddress,
    ]);
    await waitUntil(
      "API bridge socket",
      async () => {
        try {
          return (await Deno.stat(apiSocket)).isSocket === true;
        } catch {
          return false;
        }
      },
      10_000,
      daemons[0],
    );
    await start("bridge-netns", "nsenter", [
      netnsArg,
      "--",
      deno,
      "run",
      "-A",
      bridgeScript,
      "tcp-to-unix",
      apiAddress,
      apiSocket,
    ]);

    await createCgroups(ctd.cgroupParent);
    const kubeconfig = await cp.mintClientKubeconfig(`system:node:${nodeName}`, ["system:nodes"]);
    const configPath = join(dir, "config.yaml");
    await Deno.writeTextFile(configPath, stringify(kubeletConfig(dir, ctd, opts.config)));
    const kubeletArgs = [
      netnsArg,
      "--",
      kubeletBin,
      `--config=${configPath}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${join(dir, "root")}`,
      `--cert-dir=${join(dir, "pki")}`,
      `--hostname-override=${nodeName}`,
      `--node-ip=${nodeIp}`,
      "--v=2",
    ];
    let kubelet = await start("kubelet", "nsenter", kubeletArgs);
    // Registered and reporting status. Ready also needs a CNI configuration in containerd's conf
    // dir, which may be the test's (or the installer's) job, so it is not awaited here.
    await waitUntil(
      `node ${nodeName} to register`,
      async () => {
        const res = await cp.api.request("GET", `/api/v1/nodes/${nodeName}`);
        const conditions =
          (res.body as { status?: { conditions?: { type: string }[] } }).status?.conditions ?? [];
        return conditions.some((c) => c.type === "Ready");
      },
      60_000,
      kubelet,
    );

    let stopping: Promise<void> | undefined;
    return {
      nodeName,
      nodeIp,
      dir,
      logPath: kubelet.logPath,
      startupMs: performance.now() - t0,
      record,
      async restart() {
        const old = kubelet;
        Deno.kill(old.pid, "SIGKILL");
        await old.status;
        record.pids = record.pids.filter((p) => p !== old.pid);
        daemons.splice(daemons.indexOf(old), 1);
        // Heartbeats carry whole seconds: one from the next second on is the new process's.
        const since = new Date(Math.ceil(Date.now() / 1000) * 1000);
        kubelet = await start("kubelet", "nsenter", kubeletArgs);
        // The new process reports through its Node's status or its node Lease: a kubelet posts
        // an unchanged status only every few minutes, but renews its Lease every 10 s.
        await waitUntil(
          `node ${nodeName} to report again after a restart`,
          async () => {
            const res = await cp.api.request("GET", `/api/v1/nodes/${nodeName}`);
            const conditions = (res.body as {
              status?: { conditions?: { type: string; lastHeartbeatTime?: string }[] };
            }).status?.conditions ?? [];
            const ready = conditions.find((c) => c.type === "Ready");
            if (ready?.lastHeartbeatTime && new Date(ready.lastHeartbeatTime) >= since) return true;
            const lease = await cp.api.request(
              "GET",
              `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${nodeName}`,
            );
            const renewed = (lease.body as { spec?: { renewTime?: string } }).spec?.renewTime;
            return renewed !== undefined && new Date(renewed) >= since;
          },
          60_000,
          kubelet,
        );
      },
      stop() {
        stopping ??= (async () => {
          await stopKubeletRecord(record);
          for (const daemon of daemons) await daemon.status;
          // Without a controller manager nobody else removes the Node.
          await cp.api.request("DELETE", `/api/v1/nodes/${nodeName}`).catch(() => {});
        })();
        return stopping;
      },
    };
  } catch (err) {
    await stopKubeletRecord(record).catch(() => {});
    for (const daemon of daemons) await daemon.status;
    throw err;
  }
}

function kubeletConfig(
  dir: string,
  ctd: Containerd,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    containerRuntimeEndpoint: `unix://${ctd.address}`,
    cgroupDriver: "cgroupfs",
    // Pods (and the QoS cgroups) under containerd's private parent.
    cgroupRoot: ctd.cgroupParent,
    cgroupsPerQOS: true,
    enforceNodeAllocatable: [],
    failSwapOn: false,
    address: "127.0.0.1",
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
    authorization: { mode: "AlwaysAllow" },
    // The disk is shared with everything else on the machine: never evict or collect images.
    evictionHard: {
      "memory.available": "1Mi",
      "nodefs.available": "0%",
      "nodefs.inodesFree": "0%",
      "imagefs.available": "0%",
      "imagefs.inodesFree": "0%",
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    localStorageCapacityIsolation: false,
    resolvConf: "/etc/resolv.conf",
    staticPodPath: join(dir, "manifests"),
    // Not the host's /var/log/pods: every kubelet removes the log folders there of pods it does
    // not know, which would be other test kubelets' pods.
    podLogsDir: join(dir, "pod-logs"),
    ...extra,
  };
}

/** Stops a kubelet from its record and removes its folder. */
export async function stopKubeletRecord(record: KubeletRecord): Promise<void> {
  const errors: unknown[] = [];
  // Kubelet first: it must not see its API connection drop and retry forever meanwhile.
  for (const pid of [...record.pids].reverse()) {
    await stopProcessGroup(pid).catch((err) => errors.push(err));
  }
  // The kubelet turns its root folder into a shared bind mount and mounts volumes below it.
  await poll(
    async () => {
      try {
        await unmountUnder(record.dir);
        return true;
      } catch {
        return false;
      }
    },
    5000,
    200,
  );
  await unmountUnder(record.dir).catch((err) => errors.push(err));
  await removeAll(record.dir).catch((err) => errors.push(err));
  if (errors.length > 0) throw new AggregateError(errors, "stopping the kubelet failed");
}
