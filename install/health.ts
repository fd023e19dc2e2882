/**
 * The installer's health endpoint: `/healthz` (the watch loop is alive),
 * `/readyz` (the last pass succeeded and nothing is awaited) and
 * `/metrics` (Prometheus text format).
 *
 * @module
 */

import type { ListenAddr } from "./options.ts";

/** What the watch loop reports to the endpoint. */
export interface InstallStatus {
  /** When the last pass finished (ms since epoch); 0 before the first. */
  lastPassAt: number;
  /** When a pass last succeeded (ms since epoch); 0 if none yet. */
  lastSuccessAt: number;
  /** Whether the last pass succeeded. */
  lastPassOk: boolean;
  /** Set while something is awaited (the default conf). */
  waitingFor?: string;
  /** The last error's message. */
  lastError?: string;
  passes: { ok: number; error: number };
  /** Writes and removals by manifest role. */
  changes: Record<string, number>;
  /** The loop's period: /healthz fails when no pass finished for several periods. */
  intervalMs: number;
}

/** A fresh status. */
export function newStatus(intervalMs: number): InstallStatus {
  return {
    lastPassAt: 0,
    lastSuccessAt: 0,
    lastPassOk: false,
    passes: { ok: 0, error: 0 },
    changes: {},
    intervalMs,
  };
}

/** True while the loop has finished a pass recently (liveness). */
export function isAlive(s: InstallStatus, now = Date.now()): boolean {
  // A pass hashing a large executable on a slow disk may take a while.
  return s.lastPassAt === 0 || now - s.lastPassAt < Math.max(5 * s.intervalMs, 60_000);
}

/** True when the node holds a complete install (readiness). */
export function isReady(s: InstallStatus): boolean {
  return s.lastPassOk && s.waitingFor === undefined;
}

/** The metrics in Prometheus text exposition format. */
export function renderMetrics(s: InstallStatus): string {
  const lines = [
    "# HELP hydra_install_passes_total Install passes by result.",
    "# TYPE hydra_install_passes_total counter",
    `hydra_install_passes_total{result="ok"} ${s.passes.ok}`,
    `hydra_install_passes_total{result="error"} ${s.passes.error}`,
    "# HELP hydra_install_changes_total Paths written or removed, by role.",
    "# TYPE hydra_install_changes_total counter",
    ...Object.entries(s.changes).sort().map(([role, n]) =>
      `hydra_install_changes_total{role="${role}"} ${n}`
    ),
    "# HELP hydra_install_last_success_timestamp_seconds When a pass last succeeded.",
    "# TYPE hydra_install_last_success_timestamp_seconds gauge",
    `hydra_install_last_success_timestamp_seconds ${s.lastSuccessAt / 1000}`,
    "# HELP hydra_install_ready Whether the node holds a complete install.",
    "# TYPE hydra_install_ready gauge",
    `hydra_install_ready ${isReady(s) ? 1 : 0}`,
  ];
  return lines.join("\n") + "\n";
}

/** Answers one request of the endpoint. */
export function handleHealth(req: Request, s: InstallStatus): Response {
  const path = new URL(req.url).pathname;
  const text = (body: string, status = 200) =>
    new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
  if (path === "/healthz") return isAlive(s) ? text("ok\n") : text("install loop stalled\n", 503);
  if (path === "/readyz") {
    if (isReady(s)) return text("ok\n");
    return text(`not ready: ${s.waitingFor ? `waiting for ${s.waitingFor}` : s.lastError}\n`, 503);
  }
  if (path === "/metrics") {
    return new Response(renderMetrics(s), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  }
  return text("not found\n", 404);
}

/** Serves the endpoint until `signal` aborts. */
export function serveHealth(
  addr: ListenAddr,
  status: InstallStatus,
  signal: AbortSignal,
  onListen: (addr: Deno.NetAddr) => void,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: addr.hostname, port: addr.port, signal, onListen },
    (req) => handleHealth(req, status),
  );
}
