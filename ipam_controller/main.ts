/**
 * `hydra ipam`: the cluster-wide IPAM's commands.
 *
 * - `hydra ipam controller`: the reclaim controller (see controller.ts),
 *   leader-elected on a Lease so that several replicas can run; health
 *   and metrics on `--health-addr`; SIGTERM gives the lease up and exits.
 * - `hydra ipam pools`: prints every pool's size, allocated and free
 *   addresses (what `kubectl get addresspools` shows, counted afresh).
 *
 * @module
 */

import { parseFlags } from "../pkg/flags.ts";
import { createLogger, type LogFormat, type LogLevel } from "../pkg/log.ts";
import { formatListenAddress, type ListenAddress, serveHealth } from "../pkg/http.ts";
import { createRegistry, DURATION_BUCKETS } from "../pkg/metrics.ts";
import { defaultHealthAddr, operationHelp, parseRoleArgs } from "../pkg/operation_flags.ts";
import { addProcessMetrics } from "../pkg/process_metrics.ts";
import { createKubeClient, type KubeClient } from "../kube/client.ts";
import { resolveConnection } from "../kube/kubeconfig.ts";
import { type ControllerMetrics, startController } from "./controller.ts";
import { startLeaderElection } from "./leader.ts";
import { poolUsage, usageTable } from "./usage.ts";

/** Where health and metrics are served by default (the Deployment passes its own). */
export const DEFAULT_LISTEN = defaultHealthAddr("ipam-controller");

/** Help of `hydra ipam`. */
export const IPAM_HELP = `Usage: hydra ipam <command> [options]

Commands:
  controller   reclaim addresses of deleted pods and nodes, keep pool counts (leader-elected)
  pools        print every address pool's size, allocated and free addresses

Options of "controller":
  --kubeconfig PATH       API access (default: the in-cluster ServiceAccount)
  --namespace NS          the Lease's namespace (default: $POD_NAMESPACE, else hydra-system)
  --lease NAME            the Lease's name (default: hydra-ipam-controller)
  --identity ID           this replica's name in the Lease (default: host name + random)
  --interval SECONDS      between full scans (default 30; deletions trigger one sooner)
  --grace SECONDS         allocations younger than this are left alone (default 30)
  --sts-hold SECONDS      a StatefulSet pod's address is kept this long after the
                          StatefulSet stops wanting its ordinal (default 300)
  --api-timeout SECONDS   deadline of each API request (default 10)
${operationHelp(DEFAULT_LISTEN, 26)}

Options of "pools":
  --kubeconfig PATH       API access (default: the in-cluster ServiceAccount)
  --json                  print JSON instead of a table
`;

/** The controller's options. */
export interface ControllerOptions {
  kubeconfig?: string;
  namespace: string;
  lease: string;
  identity: string;
  intervalMs: number;
  graceMs: number;
  holdMs: number;
  apiTimeoutMs: number;
  listen?: ListenAddress;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logFile?: string;
}

/** A bad command line. */
export class IpamUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IpamUsageError";
  }
}

function seconds(name: string, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined) return fallback * 1000;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min || n > 86_400) {
    throw new IpamUsageError(
      `--${name} must be a number of seconds (${min}-86400), got "${value}"`,
    );
  }
  return n * 1000;
}

/** Parses the options of `hydra ipam controller`. */
export function parseControllerArgs(args: string[], env = Deno.env): ControllerOptions {
  const { values, ops } = parseRoleArgs(
    args,
    {
      kubeconfig: { type: "string" },
      namespace: { type: "string" },
      lease: { type: "string" },
      identity: { type: "string" },
      interval: { type: "string" },
      grace: { type: "string" },
      "sts-hold": { type: "string" },
      "api-timeout": { type: "string" },
    },
    DEFAULT_LISTEN,
    (message) => new IpamUsageError(message),
  );
  return {
    kubeconfig: values.kubeconfig,
    namespace: values.namespace || env.get("POD_NAMESPACE") || "hydra-system",
    lease: values.lease || "hydra-ipam-controller",
    identity: values.identity || `${Deno.hostname()}_${crypto.randomUUID().slice(0, 8)}`,
    intervalMs: seconds("interval", values.interval, 30, 1),
    graceMs: seconds("grace", values.grace, 30),
    holdMs: seconds("sts-hold", values["sts-hold"], 300),
    apiTimeoutMs: seconds("api-timeout", values["api-timeout"], 10, 1),
    listen: ops.healthAddr,
    logLevel: ops.logLevel,
    logFormat: ops.logFormat,
    logFile: ops.logFile,
  };
}

async function clientFor(kubeconfig: string | undefined, timeoutMs: number): Promise<KubeClient> {
  const conn = await resolveConnection(kubeconfig);
  if (!conn) throw new Error("no --kubeconfig and not running in a cluster");
  return createKubeClient(conn, { timeoutMs, userAgent: "hydra-ipam-controller" });
}

function controllerMetrics(reg: ReturnType<typeof createRegistry>): ControllerMetrics {
  const size = reg.gauge("hydra_ipam_pool_size", "Allocatable addresses of a pool.", ["pool"]);
  const allocated = reg.gauge("hydra_ipam_pool_allocated", "Addresses of a pool in use or held.", [
    "pool",
  ]);
  const free = reg.gauge("hydra_ipam_pool_free", "Free addresses of a pool.", ["pool"]);
  const blocks = reg.gauge("hydra_ipam_pool_blocks", "Blocks claimed in a pool's CIDR.", ["pool"]);
  const reclaimed = reg.counter(
    "hydra_ipam_reclaimed_total",
    "Addresses freed by the controller, by pool and reason.",
    ["pool", "reason"],
  );
  const scans = reg.counter("hydra_ipam_scans_total", "Controller scans by result.", ["result"]);
  const scanTime = reg.histogram("hydra_ipam_scan_duration_seconds", "Time of a scan.", [], [
    ...DURATION_BUCKETS,
    30,
    60,
  ]);
  const malformed = reg.gauge(
    "hydra_ipam_malformed_blocks",
    "Blocks left alone because they make no sense.",
  );
  const conflicts = reg.counter(
    "hydra_ipam_whereabouts_conflicts_total",
    "Addresses whereabouts holds that hydra had given to another pod.",
  );
  const gauges = [size, allocated, free, blocks];
  return {
    reclaimed: (pool, reason) => reclaimed.inc({ pool, reason }),
    pool(name, c) {
      size.set({ pool: name }, c.size);
      allocated.set({ pool: name }, c.allocated);
      free.set({ pool: name }, c.free);
      blocks.set({ pool: name }, c.blocks);
    },
    forgetPools(keep) {
      for (const g of gauges) {
        const values = [...keep].map((pool) => [pool, g.get({ pool })] as const);
        g.reset();
        for (const [pool, v] of values) g.set({ pool }, v);
      }
    },
    scan: (result, s) => {
      scans.inc({ result });
      scanTime.observe({}, s);
    },
    malformed: (n) => malformed.set({}, n),
    whereaboutsConflict: () => conflicts.inc(),
  };
}

/** Runs the controller until SIGTERM or SIGINT. */
async function runController(args: string[]): Promise<number> {
  let opts: ControllerOptions;
  try {
    opts = parseControllerArgs(args);
  } catch (err) {
    console.error(`hydra ipam controller: ${(err as Error).message}\n\n${IPAM_HELP}`);
    return 2;
  }
  const log = createLogger({
    level: opts.logLevel,
    format: opts.logFormat,
    file: opts.logFile,
  }).with({
    role: "ipam-controller",
  });
  let client: KubeClient;
  try {
    client = await clientFor(opts.kubeconfig, opts.apiTimeoutMs);
  } catch (err) {
    log.error("cannot load API access", { error: err });
    return 1;
  }
  const registry = createRegistry();
  addProcessMetrics(registry);
  const leaderGauge = registry.gauge("hydra_ipam_controller_leader", "1 while this replica leads.");
  /** The controller, once made (the election's callback may run before). */
  const started: { controller?: { scanNow(): Promise<void> } } = {};
  const election = startLeaderElection({
    client,
    namespace: opts.namespace,
    name: opts.lease,
    identity: opts.identity,
    log,
    onChange: (leading) => {
      leaderGauge.set({}, leading ? 1 : 0);
      if (leading) void started.controller?.scanNow();
    },
  });
  const controller = startController({
    client,
    log,
    metrics: controllerMetrics(registry),
    isLeader: election.isLeader,
    intervalMs: opts.intervalMs,
    graceMs: opts.graceMs,
    holdMs: opts.holdMs,
    apiTimeoutMs: opts.apiTimeoutMs,
  });
  started.controller = controller;
  const health = opts.listen
    ? await serveHealth(opts.listen, {
      registry,
      healthz: () => ({ ok: true }),
      readyz: () =>
        controller.hasSynced() ? { ok: true } : { ok: false, detail: "watch caches not synced" },
    }).catch((err) => {
      log.error("cannot serve health and metrics", { error: err });
      return undefined;
    })
    : undefined;
  if (opts.listen && !health) {
    await controller.stop();
    await election.stop();
    client.close();
    return 1;
  }
  log.info("started", {
    identity: opts.identity,
    lease: `${opts.namespace}/${opts.lease}`,
    listen: health ? formatListenAddress(health.address) : undefined,
  });
  const signal = await new Promise<string>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(sig, () => resolve(sig));
    }
  });
  log.info("stopping", { signal });
  await controller.stop();
  await election.stop();
  await health?.shutdown();
  client.close();
  return 0;
}

async function runPools(args: string[]): Promise<number> {
  let values;
  try {
    values = parseFlags(args, { kubeconfig: { type: "string" }, json: { type: "boolean" } });
  } catch (err) {
    console.error(`hydra ipam pools: ${(err as Error).message}`);
    return 2;
  }
  try {
    const client = await clientFor(values.kubeconfig, 10_000);
    try {
      const usage = await poolUsage(client);
      console.log(values.json ? JSON.stringify(usage) : usageTable(usage));
    } finally {
      client.close();
    }
    return 0;
  } catch (err) {
    console.error(`hydra ipam pools: ${(err as Error).message}`);
    return 1;
  }
}

/** `hydra ipam ...`; returns the exit status. */
export async function runIpam(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (
    sub === undefined || sub === "--help" || sub === "-h" || rest.includes("--help") ||
    rest.includes("-h")
  ) {
    console.log(IPAM_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === "controller") return await runController(rest);
  if (sub === "pools") return await runPools(rest);
  console.error(`hydra ipam: unknown command "${sub}"\n\n${IPAM_HELP}`);
  return 2;
}
