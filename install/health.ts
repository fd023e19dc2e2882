/**
 * What the installer reports on the shared health endpoint of hydra's
 * daemons: `/healthz` (the watch loop is alive), `/readyz` (the last pass
 * succeeded and nothing is awaited) and `/metrics`.
 *
 * @module
 */

import type { CheckResult, HealthEndpoint } from "../pkg/http.ts";
import { createRegistry } from "../pkg/metrics.ts";
import { addProcessMetrics } from "../pkg/process_metrics.ts";

/** The watch loop's state as the endpoint sees it. */
export interface InstallStatus {
  /** When the last pass finished (ms since epoch); 0 before the first. */
  lastPassAt: number;
  /** Whether the last pass succeeded. */
  lastPassOk: boolean;
  /** Set while something is awaited (the default conf). */
  waitingFor?: string;
  /** The last error's message. */
  lastError?: string;
  /** The loop's period: liveness fails when no pass finished for several periods. */
  intervalMs: number;
}

/** The installer's health: its status, the endpoint over it, and how to update both. */
export interface InstallHealth {
  status: InstallStatus;
  endpoint: HealthEndpoint;
  /** Records a finished pass. */
  recordPass(ok: boolean, error?: string): void;
  /** Records what is awaited (undefined: nothing). */
  setWaiting(what: string | undefined): void;
  /** Counts a path written or removed, by manifest role. */
  recordChange(role: string): void;
}

/** True while the loop finishes passes (liveness). */
export function isAlive(s: InstallStatus, now = Date.now()): boolean {
  // Before the first pass the loop may be waiting for the default conf; a
  // pass hashing a large executable on a slow disk may take a while.
  return s.lastPassAt === 0 || now - s.lastPassAt < Math.max(5 * s.intervalMs, 60_000);
}

/** True when the node holds a complete install (readiness). */
export function isReady(s: InstallStatus): boolean {
  return s.lastPassOk && s.waitingFor === undefined;
}

function readiness(s: InstallStatus): CheckResult {
  if (isReady(s)) return { ok: true };
  if (s.waitingFor) return { ok: false, detail: `not ready: waiting for ${s.waitingFor}` };
  return { ok: false, detail: `not ready: ${s.lastError ?? "not installed yet"}` };
}

/** A fresh health state for a loop of period `intervalMs`. */
export function newInstallHealth(intervalMs: number): InstallHealth {
  const status: InstallStatus = { lastPassAt: 0, lastPassOk: false, intervalMs };
  const registry = createRegistry();
  addProcessMetrics(registry);
  const passes = registry.counter(
    "hydra_install_passes_total",
    "Install passes by result.",
    ["result"],
  );
  const changes = registry.counter(
    "hydra_install_changes_total",
    "Paths written or removed, by role (a kubeconfig rewrite is a token rotation).",
    ["role"],
  );
  const lastSuccess = registry.gauge(
    "hydra_install_last_success_timestamp_seconds",
    "When a pass last succeeded.",
  );
  const ready = registry.gauge("hydra_install_ready", "Whether the node holds a complete install.");
  const refresh = () => ready.set({}, isReady(status) ? 1 : 0);
  return {
    status,
    endpoint: {
      healthz: () => isAlive(status) ? { ok: true } : { ok: false, detail: "install loop stalled" },
      readyz: () => readiness(status),
      registry,
    },
    recordPass(ok, error) {
      status.lastPassAt = Date.now();
      status.lastPassOk = ok;
      status.lastError = ok ? undefined : error;
      passes.inc({ result: ok ? "ok" : "error" });
      if (ok) lastSuccess.set({}, status.lastPassAt / 1000);
      refresh();
    },
    setWaiting(what) {
      status.waitingFor = what;
      refresh();
    },
    recordChange(role) {
      changes.inc({ role });
    },
  };
}
