/**
 * The sandbox side of hydra's DRA devices, run by `hydra nri serve`: at
 * RunPodSandbox the pod's prepared claims (written by `hydra dra serve`,
 * see state.ts) are carried out in the sandbox's network namespace — host
 * NICs moved in and set up, hydra networks attached through the meta-CNI —
 * and at Stop/RemovePodSandbox undone. This is where the namespace work
 * happens because the namespace exists only from RunPodSandbox on.
 *
 * Failures are never silent: a device that cannot be set up fails the
 * sandbox (whatever the annotation networks' policy), with everything
 * this call did undone, so the kubelet retries. A pod that started while
 * this plugin was away (the runtime skips a missing NRI plugin) is
 * attached when the plugin is back and Synchronize lists it, with retries;
 * what could not be done is recorded for the claim's status.
 *
 * Crash safety: a NIC's host state is recorded before it moves; a record
 * still "attaching" is undone and redone by the next run; sandboxes that
 * are gone have their NICs put back. Prepared claims are never pruned
 * here: a sandbox that does not exist yet is no reason to drop them.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Logger, LogLevel } from "../cni/log.ts";
import type { Result } from "../cni/types.ts";
import { type Attacher, createAttacher } from "../nri/attach.ts";
import { netnsPathOf, type PodSandbox } from "../nri/pod.ts";
import type { AttachPlan, NetworkSource } from "../nri/source.ts";
import { recordSandboxIds } from "../nri/state.ts";
import { closeHandle, type Handle, openHandle } from "../netlink/socket.ts";
import { findNic, globalAddresses, moveNicBack, moveNicIntoPod } from "./nic.ts";
import {
  claimsOfPod,
  type DeviceReport,
  listSandboxes,
  loadSandbox,
  type MovedNic,
  type PreparedClaim,
  removeSandbox,
  SANDBOX_KIND,
  type SandboxRecord,
  saveSandbox,
  type StateDirs,
  stateDirs,
} from "./state.ts";

/** Settings of the hook. */
export interface DraHookOptions {
  /** The DRA state folder shared with `hydra dra serve`. */
  stateDir: string;
  /** Where delegate plugins that are not built in are found. */
  cniPath: readonly string[];
  log: Logger;
  metaLogLevel?: LogLevel;
  metaLogFile?: string;
  /** The node's network namespace, where NICs live (default: this process's). */
  hostNetns?: string;
}

/** What a run did. */
export interface DraRunOutcome {
  status: "none" | "already" | "attached";
  devices: DeviceReport[];
}

/** The hook. */
export interface DraHook {
  /** Sets up the pod's devices; throws with everything undone. `keep` false afterwards undoes. */
  run(pod: PodSandbox, keep?: () => boolean): Promise<DraRunOutcome>;
  /** Undoes what the sandbox got; idempotent. Failures are retried in the background. */
  release(sandboxId: string, netns?: string): Promise<void>;
  /** Attaches what running sandboxes miss and releases what gone ones hold. */
  synchronize(pods: readonly PodSandbox[]): Promise<void>;
  /** Waits for running work; stops retries. */
  close(): Promise<void>;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The network devices of the pod's claims, in a stable order. */
function networkDevices(claims: readonly PreparedClaim[]) {
  return claims.flatMap((c) =>
    c.devices.filter((d) => d.network).map((d) => ({ claim: c, dev: d, net: d.network! }))
  );
}

function nicDevices(claims: readonly PreparedClaim[]) {
  return claims.flatMap((c) =>
    c.devices.filter((d) => d.nic).map((d) => ({ claim: c, dev: d, nic: d.nic! }))
  );
}

/** The meta-CNI plan of the pod's network claims. */
function claimSource(dirs: StateDirs): NetworkSource {
  return {
    kind: "dra",
    plan(pod) {
      const nets = networkDevices(claimsOfPod(dirs, pod.uid));
      if (!nets.length) return Promise.resolve(undefined);
      const delegates = nets.map(({ net }, i) =>
        i === 0 ? net.delegate : { ...net.delegate, ifname: net.ifName }
      );
      const plan: AttachPlan = {
        ifName: nets[0].net.ifName,
        conf: { cniVersion: "1.1.0", name: "hydra-dra", type: "hydra", delegates },
        // The conf's name: the engine finds each network's cached result under it.
        networks: nets.map(({ net }) => ({ name: String(net.delegate.name), ifName: net.ifName })),
      };
      return Promise.resolve(plan);
    },
  };
}

/** The pod-side interface of a network's CNI result: MAC and addresses. */
function resultIface(
  result: Result | undefined,
  ifName: string,
): { mac?: string; mtu?: number; ips: string[] } {
  const ifaces = result?.interfaces ?? [];
  const idx = ifaces.findIndex((i) => i.name === ifName && i.sandbox);
  const ips = (result?.ips ?? [])
    .filter((ip) => ip.interface === undefined || ip.interface === idx)
    .map((ip) => ip.address);
  return { mac: ifaces[idx]?.mac, mtu: ifaces[idx]?.mtu, ips };
}

/** Creates the hook. */
export function createDraHook(opts: DraHookOptions): DraHook {
  const dirs = stateDirs(opts.stateDir);
  const { log } = opts;
  const host: Handle = openHandle(opts.hostNetns ? { netnsPath: opts.hostNetns } : {});
  const attacher: Attacher = createAttacher({
    cacheDir: dirs.cni,
    cniPath: opts.cniPath,
    source: claimSource(dirs),
    log,
    metaLogLevel: opts.metaLogLevel,
    metaLogFile: opts.metaLogFile,
  });
  const tails = new Map<string, Promise<unknown>>();
  const retries = new Map<string, ReturnType<typeof setTimeout>>();
  let closed = false;

  /** Runs `task` after the sandbox's earlier work settled. */
  function serialized<T>(id: string, task: () => Promise<T>): Promise<T> {
    const run = (tails.get(id) ?? Promise.resolve()).then(task, task);
    const tail = run.then(() => {}, () => {});
    tails.set(id, tail);
    tail.then(() => tails.get(id) === tail && tails.delete(id));
    return run;
  }

  function retryLater(id: string, what: string, attempt: number, task: () => Promise<void>): void {
    if (closed || retries.has(id)) return;
    const delay = Math.min(30_000, 1000 * 2 ** Math.min(attempt, 5));
    retries.set(
      id,
      setTimeout(() => {
        retries.delete(id);
        task().catch((err) => {
          log.warn(`${what} failed again; retrying`, { sandbox: id, error: message(err), attempt });
          retryLater(id, what, attempt + 1, task);
        });
      }, delay),
    );
  }

  /** Puts back every NIC the record holds; the record goes when all are back. */
  function restoreNics(rec: SandboxRecord, netns: string | undefined): void {
    while (rec.nics.length) {
      const nic = rec.nics[rec.nics.length - 1];
      const outcome = moveNicBack(host, netns ?? rec.netns, nic);
      if (outcome === "gone") {
        log.warn("NIC not found to put back (a virtual link dies with the pod's namespace)", {
          sandbox: rec.sandboxId,
          nic: nic.hostName,
          mac: nic.mac,
        });
      } else {
        log.info("NIC back on the host", { sandbox: rec.sandboxId, nic: nic.hostName });
      }
      rec.nics.pop();
      if (rec.nics.length) saveSandbox(dirs, rec);
    }
  }

  async function releaseNow(id: string, netns: string | undefined): Promise<void> {
    const rec = loadSandbox(dirs, id);
    await attacher.release(id, netns ?? rec?.netns);
    if (rec) restoreNics(rec, netns);
    removeSandbox(dirs, id);
  }

  /**
   * Frees a NIC an earlier sandbox of the same pod still holds (its stop
   * was missed); a NIC held by another pod's sandbox is an error: a NIC goes
   * to one pod at a time, even when a claim is shared.
   */
  async function takeFromStale(pod: PodSandbox, claimUid: string, device: string): Promise<void> {
    const id = pod.id;
    for (const other of listSandboxes(dirs)) {
      if (other.sandboxId === id) continue;
      if (!other.nics.some((n) => n.claimUid === claimUid && n.device === device)) continue;
      if (other.pod.uid !== pod.uid) {
        throw new CniError(
          ErrorCode.InvalidEnvironmentVariables,
          `NIC ${device} is in use by pod ${other.pod.namespace}/${other.pod.name}`,
        );
      }
      log.warn("NIC still held by an earlier sandbox; releasing that one first", {
        sandbox: id,
        earlier: other.sandboxId,
        device,
      });
      await serialized(other.sandboxId, () => releaseNow(other.sandboxId, other.netns));
    }
  }

  function moveNics(
    rec: SandboxRecord,
    claims: readonly PreparedClaim[],
    netns: string,
  ): DeviceReport[] {
    const reports: DeviceReport[] = [];
    for (const { claim, dev, nic } of nicDevices(claims)) {
      const link = findNic(host, nic.hostName, nic.mac);
      if (!link) {
        throw new CniError(
          ErrorCode.InvalidEnvironmentVariables,
          `claim ${claim.claim.namespace}/${claim.claim.name}: NIC ${dev.device} (${nic.hostName}, ${nic.mac}) is no longer on the host`,
        );
      }
      const hostAddresses = globalAddresses(host, link.index);
      const moved: MovedNic = {
        claimUid: claim.claim.uid,
        device: dev.device,
        hostName: link.name,
        mac: nic.mac,
        hostMtu: link.mtu,
        hostAddresses,
        hostUp: link.up,
        ifName: nic.ifName,
        phase: "moving",
      };
      rec.nics.push(moved);
      saveSandbox(dirs, rec);
      const inPod = moveNicIntoPod(host, link.index, netns, nic, hostAddresses);
      moved.phase = "attached";
      saveSandbox(dirs, rec);
      reports.push({
        claim: claim.claim,
        request: dev.request,
        pool: dev.pool,
        device: dev.device,
        kind: "nic",
        networkName: `${claim.claim.namespace}/${claim.claim.name}`,
        ifName: inPod.ifName,
        ips: inPod.addresses,
        mac: inPod.mac,
        mtu: inPod.mtu,
      });
    }
    return reports;
  }

  async function attachNetworks(
    pod: PodSandbox,
    claims: readonly PreparedClaim[],
    keep: () => boolean,
  ): Promise<DeviceReport[]> {
    const nets = networkDevices(claims);
    if (!nets.length) return [];
    const out = await attacher.attach(pod, keep);
    return nets.map(({ claim, dev, net }) => {
      const got = out.networks.find((n) => n.ifName === net.ifName);
      const r = resultIface(got?.result, net.ifName);
      const report: DeviceReport = {
        claim: claim.claim,
        request: dev.request,
        pool: dev.pool,
        device: dev.device,
        kind: "network",
        networkName: net.name,
        ifName: net.ifName,
        ips: r.ips,
      };
      if (r.mac) report.mac = r.mac;
      if (r.mtu) report.mtu = r.mtu;
      if (got?.result) report.result = got.result;
      return report;
    });
  }

  async function runNow(pod: PodSandbox, keep: () => boolean): Promise<DraRunOutcome> {
    const earlier = loadSandbox(dirs, pod.id);
    if (earlier?.phase === "attached") return { status: "already", devices: earlier.reports };
    const claims = claimsOfPod(dirs, pod.uid);
    if (earlier) {
      log.warn("undoing a device setup that did not finish", { sandbox: pod.id });
      await releaseNow(pod.id, netnsPathOf(pod));
    }
    if (!claims.length) return { status: "none", devices: [] };
    const podRef = { namespace: pod.namespace, name: pod.name, uid: pod.uid };
    const netns = netnsPathOf(pod);
    if (!netns) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `host-network pod ${pod.namespace}/${pod.name} cannot take hydra devices`,
      );
    }
    if (!exists(netns)) {
      throw new CniError(
        ErrorCode.InvalidEnvironmentVariables,
        `the network namespace of sandbox ${pod.id} (${netns}) is gone`,
      );
    }
    for (const { claim, dev } of nicDevices(claims)) {
      await takeFromStale(pod, claim.claim.uid, dev.device);
    }
    const rec: SandboxRecord = {
      kind: SANDBOX_KIND,
      sandboxId: pod.id,
      pod: podRef,
      netns,
      nics: [],
      reports: [],
      phase: "attaching",
      updatedAt: "",
    };
    saveSandbox(dirs, rec);
    try {
      const reports = moveNics(rec, claims, netns);
      reports.push(...await attachNetworks(pod, claims, keep));
      if (!keep()) {
        throw new CniError(
          ErrorCode.TryAgainLater,
          "device setup finished after its caller gave up",
        );
      }
      rec.reports = reports;
      rec.phase = "attached";
      saveSandbox(dirs, rec);
      return { status: "attached", devices: reports };
    } catch (err) {
      await releaseNow(pod.id, netns).catch((e) =>
        log.error("cannot undo a failed device setup; retrying in the background", {
          sandbox: pod.id,
          error: message(e),
        })
      );
      if (loadSandbox(dirs, pod.id)) {
        retryLater(pod.id, "undo", 0, () => serialized(pod.id, () => releaseNow(pod.id, netns)));
      }
      if (err instanceof CniError) throw err;
      throw new CniError(ErrorCode.Internal, message(err));
    }
  }

  function release(id: string, netns?: string): Promise<void> {
    return serialized(id, () => releaseNow(id, netns)).catch((err) => {
      log.error("cannot release a sandbox's devices; retrying in the background", {
        sandbox: id,
        error: message(err),
      });
      retryLater(id, "release", 0, () => serialized(id, () => releaseNow(id, netns)));
    });
  }

  /** A late attach for a pod that started without its devices. */
  function lateAttach(pod: PodSandbox, attempt: number): Promise<void> {
    return serialized(pod.id, () => runNow(pod, () => true)).then((out) => {
      if (out.status === "attached") {
        log.warn("devices attached to a pod that started without them", {
          sandbox: pod.id,
          pod: `${pod.namespace}/${pod.name}`,
          devices: out.devices.map((d) => `${d.device}@${d.ifName}`),
        });
      }
    }, (err) => {
      log.error("pod runs without its devices; retrying", {
        sandbox: pod.id,
        pod: `${pod.namespace}/${pod.name}`,
        error: message(err),
      });
      saveFailure(pod, message(err));
      retryLater(pod.id, "late attach", attempt, () => lateAttach(pod, attempt + 1));
    });
  }

  /** Records that a running pod lacks its devices, for the claim status. */
  function saveFailure(pod: PodSandbox, error: string): void {
    if (loadSandbox(dirs, pod.id)) return;
    const claims = claimsOfPod(dirs, pod.uid);
    try {
      saveSandbox(dirs, {
        kind: SANDBOX_KIND,
        sandboxId: pod.id,
        pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid },
        netns: netnsPathOf(pod) ?? "",
        nics: [],
        reports: [],
        phase: "failed",
        error,
        failedClaims: claims.map((c) => ({
          ...c.claim,
          devices: c.devices.map((d) => ({ pool: d.pool, device: d.device })),
        })),
        updatedAt: "",
      });
    } catch (err) {
      log.warn("cannot record the failure", { sandbox: pod.id, error: message(err) });
    }
  }

  return {
    run: (pod, keep = () => true) => serialized(pod.id, () => runNow(pod, keep)),
    release,
    async synchronize(pods) {
      const live = new Map(pods.map((p) => [p.id, p]));
      const gone = new Set([
        ...listSandboxes(dirs).map((r) => r.sandboxId),
        ...recordSandboxIds(dirs.cni),
      ]);
      for (const id of gone) {
        if (!live.has(id)) await release(id, loadSandbox(dirs, id)?.netns);
      }
      for (const pod of pods) {
        if (loadSandbox(dirs, pod.id)?.phase === "attached") continue;
        if (!claimsOfPod(dirs, pod.uid).length || !netnsPathOf(pod)) continue;
        await lateAttach(pod, 0);
      }
    },
    async close() {
      closed = true;
      for (const t of retries.values()) clearTimeout(t);
      retries.clear();
      while (tails.size) await Promise.all([...tails.values()]);
      await attacher.idle();
      closeHandle(host);
    },
  };
}
