/**
 * Telling Kubernetes what the sandbox hook did, from `hydra dra serve`: it
 * watches the sandbox records (state.ts) and for each new or changed one
 * writes
 *
 * - each device's status in its claim (KEP-4817): a Ready condition and
 *   `networkData` (interface name, addresses, hardware address), or
 *   Ready=False with the reason when a running pod could not get it;
 * - the pod's `k8s.v1.cni.cncf.io/network-status` (merged with the other
 *   writers' entries) and hydra's per-network result annotation, exactly as
 *   the annotation path writes them; a Warning Event when devices are
 *   missing.
 *
 * The sandbox hook needs no API access for this, and a record written
 * while this process was down is reported when it is back (every record is
 * reported once per start). Failed writes are retried on the next pass.
 *
 * A watchdog covers the case of no sandbox hook at all (`hydra nri serve`
 * not running, or reading another state folder): a prepared claim whose
 * pod has been Running for a while with no device set up gets Ready=False
 * and the pod a Warning Event, so it is never silent.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import type { Result } from "../cni/types.ts";
import type { KubeClient } from "../kube/client.ts";
import { isNotFound } from "../kube/errors.ts";
import { createEvent } from "../kube/objects.ts";
import { type AttachmentReport, reportAttachments } from "../kube/report.ts";
import { applyDeviceStatuses, type DeviceStatusUpdate } from "./claim.ts";
import { getPod } from "../kube/objects.ts";
import {
  type DeviceReport,
  listClaims,
  listSandboxes,
  type PreparedClaim,
  type SandboxRecord,
  type StateDirs,
} from "../drasandbox/state.ts";

/** How long a prepared claim's pod may run without its devices before the watchdog tells. */
const SETUP_GRACE_MS = 30_000;

/** Settings of the reporter. */
export interface ReporterOptions {
  client: KubeClient;
  dirs: StateDirs;
  log: Logger;
  /** The node, named on Events. */
  nodeName: string;
  /** A full pass this often even without file events, ms (default 10 s). */
  intervalMs?: number;
  /** Deadline of each API call, ms. */
  apiTimeoutMs?: number;
  /** Told after each pass with the number of records written. */
  onPass?(written: number): void;
  /** The watchdog's grace, ms (default 30 s). */
  setupGraceMs?: number;
}

/** A running reporter. */
export interface Reporter {
  /** Runs a pass now (passes never overlap). */
  pass(): Promise<number>;
  stop(): Promise<void>;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The CNI-result shape of a NIC in the pod, for network-status. */
function nicResult(r: DeviceReport, netns: string): Result {
  const iface: { name: string; mac?: string; mtu?: number; sandbox: string } = {
    name: r.ifName,
    sandbox: netns,
  };
  if (r.mac) iface.mac = r.mac;
  if (r.mtu) iface.mtu = r.mtu;
  return {
    cniVersion: "1.1.0",
    interfaces: [iface],
    ips: r.ips.map((address) => ({ address, interface: 0 })),
  } as Result;
}

function byClaim<T extends { claim: { uid: string } }>(items: readonly T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const it of items) groups.set(it.claim.uid, [...(groups.get(it.claim.uid) ?? []), it]);
  return [...groups.values()];
}

/** Creates and starts a reporter. */
export function startReporter(opts: ReporterOptions): Reporter {
  const { client, dirs, log } = opts;
  const timeoutMs = opts.apiTimeoutMs ?? 5000;
  const reported = new Map<string, string>();
  let running: Promise<number> | undefined;
  let again = false;
  let stopped = false;

  async function claimStatus(
    claim: { namespace: string; name: string },
    updates: DeviceStatusUpdate[],
  ) {
    try {
      await applyDeviceStatuses(client, claim, updates, new Date(), { timeoutMs });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async function reportAttached(rec: SandboxRecord): Promise<void> {
    for (const group of byClaim(rec.reports)) {
      await claimStatus(
        group[0].claim,
        group.map((r) => ({
          pool: r.pool,
          device: r.device,
          ready: true,
          reason: r.kind === "nic" ? "NICAttached" : "NetworkAttached",
          message: `${r.ifName} in pod ${rec.pod.namespace}/${rec.pod.name}`,
          networkData: { interfaceName: r.ifName, ips: r.ips, hardwareAddress: r.mac },
        })),
      );
    }
    const reports: AttachmentReport[] = rec.reports.map((r) => ({
      name: r.networkName,
      isDefault: false,
      result: r.result ?? nicResult(r, rec.netns),
    }));
    if (!reports.length) return;
    await reportAttachments(
      client,
      {
        namespace: rec.pod.namespace,
        name: rec.pod.name,
        uid: rec.pod.uid,
        infraContainerId: rec.sandboxId,
      },
      reports,
      { timeoutMs },
    );
  }

  async function reportFailed(rec: SandboxRecord): Promise<void> {
    const why = rec.error ?? "unknown error";
    for (const c of rec.failedClaims ?? []) {
      await claimStatus(
        c,
        c.devices.map((d) => ({
          pool: d.pool,
          device: d.device,
          ready: false,
          reason: "DeviceNotAttached",
          message: why,
        })),
      );
    }
    try {
      await createEvent(client, { metadata: { ...rec.pod } }, {
        type: "Warning",
        reason: "DeviceNotAttached",
        message: `hydra: the pod runs without its claimed devices (retrying): ${why}`,
        host: opts.nodeName,
      }, { timeoutMs });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  const told = new Set<string>();

  /** Pods running past the grace without a sandbox record of their devices. */
  async function watchdog(records: readonly SandboxRecord[]): Promise<void> {
    const covered = new Set(records.map((r) => r.pod.uid));
    const grace = opts.setupGraceMs ?? SETUP_GRACE_MS;
    for (const claim of listClaims(dirs)) {
      if (Date.now() - Date.parse(claim.preparedAt) < grace) continue;
      for (const pod of claim.pods) {
        const key = `${claim.claim.uid}/${pod.uid}`;
        if (covered.has(pod.uid) || told.has(key)) continue;
        try {
          const p = await getPod(client, pod.namespace, pod.name, { timeoutMs });
          const since = (p.status as { startTime?: string } | undefined)?.startTime;
          const running = (p.status as { phase?: string } | undefined)?.phase === "Running";
          if (p.metadata.uid !== pod.uid || !running || !since) continue;
          if (Date.now() - Date.parse(since) < grace) continue;
          await notSetUp(claim, pod);
          told.add(key);
        } catch (err) {
          if (!isNotFound(err)) {
            log.warn("cannot check a prepared claim's pod", { pod: pod.name, error: message(err) });
          }
        }
      }
    }
  }

  async function notSetUp(
    claim: PreparedClaim,
    pod: { namespace: string; name: string; uid: string },
  ) {
    const why =
      "no device was set up in the pod's sandbox: is hydra nri serve running on this node " +
      "with the same --dra-state-dir?";
    log.error("a pod runs without its claimed devices", {
      pod: `${pod.namespace}/${pod.name}`,
      claim: claim.claim.name,
    });
    await reportFailed({
      kind: "hydraDraSandboxV1",
      sandboxId: "",
      pod,
      netns: "",
      nics: [],
      reports: [],
      phase: "failed",
      error: why,
      failedClaims: [{
        ...claim.claim,
        devices: claim.devices.map((d) => ({ pool: d.pool, device: d.device })),
      }],
      updatedAt: "",
    });
  }

  async function passNow(): Promise<number> {
    let written = 0;
    const records = listSandboxes(dirs);
    const present = new Set(records.map((r) => r.sandboxId));
    // Failures of sandboxes whose record comes and goes between retries are kept (a bounded
    // number), so each is told once.
    const bound = reported.size > 4096;
    for (const id of reported.keys()) {
      if (present.has(id)) continue;
      if (bound || !reported.get(id)!.startsWith("failed: ")) reported.delete(id);
    }
    for (const rec of records) {
      // A failure is told once per error, however often the retries rewrite it.
      const key = rec.phase === "failed" ? `failed: ${rec.error}` : rec.updatedAt;
      if (rec.phase === "attaching" || reported.get(rec.sandboxId) === key) continue;
      try {
        if (rec.phase === "attached") await reportAttached(rec);
        else await reportFailed(rec);
        reported.set(rec.sandboxId, key);
        written++;
      } catch (err) {
        log.warn("cannot report a sandbox's devices; retrying", {
          sandbox: rec.sandboxId,
          pod: `${rec.pod.namespace}/${rec.pod.name}`,
          error: message(err),
        });
      }
    }
    await watchdog(records).catch((err) =>
      log.warn("watchdog pass failed", { error: message(err) })
    );
    opts.onPass?.(written);
    return written;
  }

  function pass(): Promise<number> {
    if (running) {
      again = true;
      return running;
    }
    running = passNow().finally(() => {
      running = undefined;
      if (again && !stopped) {
        again = false;
        pass();
      }
    });
    return running;
  }

  const watcher = Deno.watchFs(dirs.sandboxes, { recursive: false });
  let debounce: ReturnType<typeof setTimeout> | undefined;
  (async () => {
    try {
      for await (const _ of watcher) {
        clearTimeout(debounce);
        debounce = setTimeout(() => pass(), 10);
      }
    } catch (err) {
      if (!stopped) log.warn("sandbox folder watch ended", { error: message(err) });
    }
  })();
  const ticker = setInterval(() => pass(), opts.intervalMs ?? 10_000);
  pass();

  return {
    pass,
    async stop() {
      stopped = true;
      clearInterval(ticker);
      clearTimeout(debounce);
      watcher.close();
      await running;
    },
  };
}
