/**
 * The sandbox side of hydra's DRA devices, run by `hydra nri serve`: at
 * RunPodSandbox the pod's prepared claims (written by `hydra dra serve`,
 * see state.ts) are carried out in the sandbox's network namespace — host
 * NICs moved in and set up, hydra networks attached through the engine —
 * and at Stop/RemovePodSandbox undone (setup.ts). This is where the
 * namespace work happens because the namespace exists only from
 * RunPodSandbox on.
 *
 * Failures are never silent: a device that cannot be set up fails the
 * sandbox (whatever the annotation networks' policy), with everything
 * this call did undone, so the kubelet retries. A pod that started while
 * this plugin was away (the runtime skips a missing NRI plugin) is set up
 * when the plugin is back and Synchronize lists it, with retries; a
 * failure then is recorded for the claim's status.
 *
 * Crash safety: a NIC's host state is recorded before it moves; a record
 * still "attaching" is undone and redone by the next run; sandboxes that
 * are gone have their NICs put back. Prepared claims are never pruned
 * here: a sandbox that does not exist yet is no reason to drop them.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Logger, LogLevel } from "../pkg/log.ts";
import { closeHandle, openHandle } from "../netlink/socket.ts";
import {
  detachClaimNetworks,
  type EngineSettings,
  sandboxesWithNetworks,
  type SandboxRef,
} from "./networks.ts";
import {
  attachClaimedNetworks,
  claimedNics,
  moveClaimedNics,
  restoreNics,
  type SetupContext,
} from "./setup.ts";
import {
  claimsOfPod,
  type DeviceReport,
  listSandboxes,
  loadSandbox,
  type PreparedClaim,
  removeSandbox,
  SANDBOX_KIND,
  type SandboxRecord,
  saveSandbox,
  stateDirs,
} from "./state.ts";
import { createSandboxWork, type SandboxWork } from "./work.ts";

export type { SandboxRef } from "./networks.ts";

/** Settings of the hook. */
export interface DraHookOptions {
  /** The DRA state folder shared with `hydra dra serve`. */
  stateDir: string;
  /** Where delegate plugins that are not built in are found. */
  cniPath: readonly string[];
  log: Logger;
  /** The engine's own log level and file. */
  engineLogLevel?: LogLevel;
  engineLogFile?: string;
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
  /** Sets up the pod's devices; throws with everything undone. `keep` false at the end undoes. */
  run(sandbox: SandboxRef, keep?: () => boolean): Promise<DraRunOutcome>;
  /** Undoes what the sandbox got; idempotent. Failures are retried in the background. */
  release(sandboxId: string, netns?: string): Promise<void>;
  /** Sets up what running sandboxes miss and releases what gone ones hold. */
  synchronize(sandboxes: readonly SandboxRef[]): Promise<void>;
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

interface Hook extends SetupContext {
  work: SandboxWork;
}

/** Undoes everything of a sandbox: networks by the engine's records, NICs by ours. */
async function releaseNow(h: Hook, id: string, netns?: string): Promise<void> {
  const rec = loadSandbox(h.dirs, id);
  const path = [netns, rec?.netns].find((p) => p && exists(p)) ?? "";
  await detachClaimNetworks(h.engine, id, path);
  if (rec) restoreNics(h, rec, netns);
  removeSandbox(h.dirs, id);
}

/**
 * Frees a NIC an earlier sandbox of the same pod still holds (its stop was
 * missed); a NIC held by another pod's sandbox is an error: a NIC goes to
 * one pod at a time, even when a claim is shared.
 */
async function takeFromStale(h: Hook, s: SandboxRef, claims: PreparedClaim[]): Promise<void> {
  for (const { claim, dev } of claimedNics(claims)) {
    for (const other of listSandboxes(h.dirs)) {
      if (other.sandboxId === s.id) continue;
      if (!other.nics.some((n) => n.claimUid === claim.claim.uid && n.device === dev.device)) {
        continue;
      }
      if (other.pod.uid !== s.uid) {
        throw new CniError(
          ErrorCode.InvalidEnvironmentVariables,
          `NIC ${dev.device} is in use by pod ${other.pod.namespace}/${other.pod.name}`,
        );
      }
      h.log.warn("NIC still held by an earlier sandbox; releasing that one first", {
        sandbox: s.id,
        earlier: other.sandboxId,
        device: dev.device,
      });
      await h.work.serial(other.sandboxId, () => releaseNow(h, other.sandboxId, other.netns));
    }
  }
}

/** The sandbox's usable network namespace; throws when it has none. */
function sandboxNetns(s: SandboxRef): string {
  if (!s.netns) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `host-network pod ${s.namespace}/${s.name} cannot take hydra devices`,
    );
  }
  if (!exists(s.netns)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `the network namespace of sandbox ${s.id} (${s.netns}) is gone`,
    );
  }
  return s.netns;
}

function newRecord(s: SandboxRef, netns: string): SandboxRecord {
  return {
    kind: SANDBOX_KIND,
    sandboxId: s.id,
    pod: { namespace: s.namespace, name: s.name, uid: s.uid },
    netns,
    nics: [],
    reports: [],
    phase: "attaching",
    updatedAt: "",
  };
}

/** Sets the devices up; on any failure undoes what was done (retrying in the background). */
async function setUp(
  h: Hook,
  s: SandboxRef,
  claims: PreparedClaim[],
  keep: () => boolean,
): Promise<DeviceReport[]> {
  const rec = newRecord(s, sandboxNetns(s));
  saveSandbox(h.dirs, rec);
  try {
    const reports = moveClaimedNics(h, rec, claims);
    reports.push(...await attachClaimedNetworks(h, s, rec.netns, claims));
    if (!keep()) {
      throw new CniError(ErrorCode.TryAgainLater, "device setup finished after its caller gave up");
    }
    rec.reports = reports;
    rec.phase = "attached";
    saveSandbox(h.dirs, rec);
    return reports;
  } catch (err) {
    await releaseNow(h, s.id, rec.netns).catch((e) =>
      h.log.error("cannot undo a failed device setup; retrying in the background", {
        sandbox: s.id,
        error: message(e),
      })
    );
    if (loadSandbox(h.dirs, s.id)) {
      h.work.retry(s.id, "undo", () => h.work.serial(s.id, () => releaseNow(h, s.id, rec.netns)));
    }
    throw err instanceof CniError ? err : new CniError(ErrorCode.Internal, message(err));
  }
}

async function runNow(h: Hook, s: SandboxRef, keep: () => boolean): Promise<DraRunOutcome> {
  const earlier = loadSandbox(h.dirs, s.id);
  if (earlier?.phase === "attached") return { status: "already", devices: earlier.reports };
  if (earlier) {
    if (earlier.phase === "attaching") {
      h.log.warn("undoing a device setup that did not finish", { sandbox: s.id });
    }
    await releaseNow(h, s.id, s.netns);
  }
  const claims = claimsOfPod(h.dirs, s.uid);
  if (!claims.length) return { status: "none", devices: [] };
  await takeFromStale(h, s, claims);
  return { status: "attached", devices: await setUp(h, s, claims, keep) };
}

/** Records that a running pod lacks its devices, for the claim status. */
function saveFailure(h: Hook, s: SandboxRef, error: string): void {
  if (loadSandbox(h.dirs, s.id)) return;
  const rec: SandboxRecord = {
    ...newRecord(s, s.netns ?? ""),
    phase: "failed",
    error,
    failedClaims: claimsOfPod(h.dirs, s.uid).map((c) => ({
      ...c.claim,
      devices: c.devices.map((d) => ({ pool: d.pool, device: d.device })),
    })),
  };
  try {
    saveSandbox(h.dirs, rec);
  } catch (err) {
    h.log.warn("cannot record the failure", { sandbox: s.id, error: message(err) });
  }
}

/** Sets up a pod that started without its devices; retried until it works. */
function lateSetUp(h: Hook, s: SandboxRef, attempt = 0): Promise<void> {
  const pod = `${s.namespace}/${s.name}`;
  return h.work.serial(s.id, () => runNow(h, s, () => true)).then((out) => {
    if (out.status !== "attached") return;
    h.log.warn("devices attached to a pod that started without them", {
      sandbox: s.id,
      pod,
      devices: out.devices.map((d) => `${d.device}@${d.ifName}`),
    });
  }, (err) => {
    h.log.error("pod runs without its devices; retrying", {
      sandbox: s.id,
      pod,
      error: message(err),
    });
    saveFailure(h, s, message(err));
    h.work.retry(s.id, "late setup", () => lateSetUp(h, s, attempt + 1), attempt);
  });
}

function release(h: Hook, id: string, netns?: string): Promise<void> {
  return h.work.serial(id, () => releaseNow(h, id, netns)).catch((err) => {
    h.log.error("cannot release a sandbox's devices; retrying in the background", {
      sandbox: id,
      error: message(err),
    });
    h.work.retry(id, "release", () => h.work.serial(id, () => releaseNow(h, id, netns)));
  });
}

async function synchronize(h: Hook, sandboxes: readonly SandboxRef[]): Promise<void> {
  const live = new Set(sandboxes.map((s) => s.id));
  const known = new Set([
    ...listSandboxes(h.dirs).map((r) => r.sandboxId),
    ...sandboxesWithNetworks(h.dirs.cni),
  ]);
  for (const id of known) {
    if (!live.has(id)) await release(h, id, loadSandbox(h.dirs, id)?.netns);
  }
  for (const s of sandboxes) {
    if (loadSandbox(h.dirs, s.id)?.phase === "attached") continue;
    if (!s.netns || !claimsOfPod(h.dirs, s.uid).length) continue;
    await lateSetUp(h, s);
  }
}

/** Creates the hook. */
export function createDraHook(opts: DraHookOptions): DraHook {
  const dirs = stateDirs(opts.stateDir);
  const engine: EngineSettings = {
    cacheDir: dirs.cni,
    cniPath: opts.cniPath,
    logLevel: opts.engineLogLevel,
    logFile: opts.engineLogFile,
  };
  const host = openHandle(opts.hostNetns ? { netnsPath: opts.hostNetns } : {});
  const h: Hook = { dirs, host, engine, log: opts.log, work: createSandboxWork(opts.log) };
  return {
    run: (s, keep = () => true) => h.work.serial(s.id, () => runNow(h, s, keep)),
    release: (id, netns) => release(h, id, netns),
    synchronize: (sandboxes) => synchronize(h, sandboxes),
    async close() {
      await h.work.close();
      closeHandle(host);
    },
  };
}
