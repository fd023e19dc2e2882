/**
 * `hydra install`: the first pass (waiting for the default conf when hydra
 * is the meta-CNI), then, unless `--once`, a watch loop that re-applies
 * whenever the token, the default conf or an installed file changes, until
 * SIGTERM. Stopping never removes anything: a node without hydra's conf
 * would start pods without their extra networks.
 *
 * @module
 */

import { join } from "node:path";
import { ConfRefused, errorMessage, InstallError } from "./error.ts";
import { formatListenAddress, type HealthServer, startHealthEndpoint } from "../pkg/http.ts";
import { type InstallHealth, newInstallHealth } from "./health.ts";
import { delay } from "../pkg/async.ts";
import { createLogger, type Logger } from "../pkg/log.ts";
import { createRepeatFilter, type RepeatFilter } from "../pkg/log_repeat.ts";
import { installHelp, type InstallOptions, parseInstallArgs } from "./options.ts";
import { EXECUTABLE_NAME, reconcile, type ReconcileResult } from "./reconcile.ts";
import { uninstall } from "./uninstall.ts";

/** How often the first pass re-checks for the default conf, and logs that it waits. */
const WAIT_POLL_MS = 500;
const WAIT_LOG_MS = 30_000;

/** An abort signal raised by SIGTERM or SIGINT; `dispose` removes the listeners. */
function stopOnSignals(log: Logger): { signal: AbortSignal; dispose: () => void } {
  const ctl = new AbortController();
  const handlers: [Deno.Signal, () => void][] = (["SIGTERM", "SIGINT"] as const).map((sig) => {
    const h = () => {
      log.info(`${sig} received; stopping and leaving the installed files in place`);
      ctl.abort();
    };
    Deno.addSignalListener(sig, h);
    return [sig, h];
  });
  return {
    signal: ctl.signal,
    dispose: () => handlers.forEach(([sig, h]) => Deno.removeSignalListener(sig, h)),
  };
}

/** The manifest role a changed path belongs to (for logs and metrics). */
function roleOf(path: string, opts: InstallOptions): string {
  if (path === join(opts.binDir, EXECUTABLE_NAME)) return "binary";
  if (path === join(opts.confDir, opts.confName)) return "conf";
  if (path === opts.kubeconfig) return "kubeconfig";
  if (path === opts.manifest) return "manifest";
  if (path.startsWith(opts.binDir + "/")) return "symlink";
  if (opts.stateDir.startsWith(path) || opts.kubeconfig?.startsWith(path + "/")) return "dir";
  return "other";
}

/** Logs a pass's changes and warnings and counts them into `status`. */
function report(
  result: ReconcileResult,
  opts: InstallOptions,
  log: Logger,
  health: InstallHealth,
): void {
  let confChanged = false;
  for (const c of result.changes) {
    const role = roleOf(c.path, opts);
    confChanged ||= role === "conf";
    health.recordChange(role);
    log.info(`${c.action} ${c.path}`, { path: c.path, action: c.action, role });
  }
  if (confChanged) { for (const n of result.notes ?? []) log.info(n); }
  for (const w of result.warnings) log.warn(w);
}

/**
 * The first pass: in meta mode, waits (up to --default-conf-timeout) for
 * the default conf before writing anything. Returns false when stopped by
 * a signal while waiting.
 */
async function firstPass(
  opts: InstallOptions,
  log: Logger,
  signal: AbortSignal,
  health: InstallHealth,
): Promise<boolean> {
  const deadline = Date.now() + opts.defaultConfTimeoutMs;
  let nextWaitLog = 0;
  for (;;) {
    const result = await reconcile(opts, { requireDefaultConf: true }, log);
    if (!result.waitingFor) {
      report(result, opts, log, health);
      return true;
    }
    health.setWaiting(result.waitingFor);
    if (Date.now() >= deadline) {
      throw new InstallError(
        `no ${result.waitingFor.replace(/^a /, "")} after ${opts.defaultConfTimeoutMs / 1000}s ` +
          "(--default-conf-timeout); is the default network installed? Nothing was written",
        { confDir: opts.confDir },
      );
    }
    if (Date.now() >= nextWaitLog) {
      log.info(`waiting for ${result.waitingFor}`, { confDir: opts.confDir });
      nextWaitLog = Date.now() + WAIT_LOG_MS;
    }
    await delay(Math.min(WAIT_POLL_MS, Math.max(0, deadline - Date.now())), signal);
    if (signal.aborted) return false;
  }
}

const LOG_FIELDS = { component: "install" };

/**
 * Serves the health endpoint unless none is asked for. An address named by
 * a flag that is taken fails the run; the default one taken is a warning.
 */
async function serveEndpoint(
  opts: InstallOptions,
  health: InstallHealth,
  log: Logger,
): Promise<{ server?: HealthServer; failed?: true }> {
  if (!opts.healthAddr) return {};
  try {
    return { server: await startHealthEndpoint(opts.healthAddr, health.endpoint, log) };
  } catch (err) {
    const what = `cannot serve health on ${formatListenAddress(opts.healthAddr)}: ${
      errorMessage(err)
    }`;
    if (opts.healthAddrDefaulted) {
      log.warn(`${what}; running without the endpoint`, { hint: "choose --health-addr" });
      return {};
    }
    log.error(what, {
      hint: "another process holds the port (host network); choose --health-addr",
    });
    return { failed: true };
  }
}

/** Runs `hydra install` with `args`; returns the exit status. `log` replaces the flags' logger. */
export async function runInstall(args: string[], given?: Logger): Promise<number> {
  let opts: InstallOptions;
  try {
    opts = parseInstallArgs(args);
  } catch (err) {
    const log = given ?? createLogger({ level: "info", fields: LOG_FIELDS });
    log.error(errorMessage(err), { hint: 'run "hydra install --help" for usage' });
    return 2;
  }
  if (opts.help) {
    console.log(installHelp());
    return 0;
  }
  const log = given ?? createLogger({
    level: opts.logLevel,
    format: opts.logFormat,
    file: opts.logFile,
    fields: LOG_FIELDS,
  });
  if (opts.uninstall) return await runUninstall(opts, log);

  const health = newInstallHealth(opts.intervalMs);
  const stop = stopOnSignals(log);
  const repeats = createRepeatFilter();
  let server: HealthServer | undefined;
  try {
    const served = await serveEndpoint(opts, health, log);
    if (served.failed) return 1;
    server = served.server;
    log.info("installing", {
      mode: opts.mode,
      binDir: opts.binDir,
      confDir: opts.confDir,
      kubeconfig: opts.kubeconfig ?? null,
      manifest: opts.manifest,
    });
    try {
      if (!(await firstPass(opts, log, stop.signal, health))) return 0;
      health.setWaiting(undefined);
      health.recordPass(true);
      log.info("installed", { mode: opts.mode });
    } catch (err) {
      health.recordPass(false, errorMessage(err));
      // A refused conf is fixed outside this process (another conf, another
      // flag): stay up and not ready, so a rollout halts here, and retry.
      const stay = err instanceof ConfRefused && !opts.once;
      health.setWaiting(undefined);
      repeats.admit(errorMessage(err));
      logFailure(
        log,
        err,
        stay
          ? "hydra's conf refused; nothing was written, not ready, retrying"
          : "install failed; nothing was changed",
      );
      if (!stay) return 1;
    }
    if (opts.once) return 0;

    while (!stop.signal.aborted) {
      await delay(opts.intervalMs, stop.signal);
      if (stop.signal.aborted) break;
      try {
        const result = await reconcile(opts, { requireDefaultConf: false }, log);
        if (result.waitingFor && !health.status.waitingFor) {
          log.warn(`${result.waitingFor} is gone; keeping hydra's conf as it is`);
        }
        health.setWaiting(result.waitingFor);
        report(result, opts, log, health);
        health.recordPass(true);
        const failed = repeats.clear();
        if (failed) log.info("a pass succeeded again", { failedPasses: failed });
      } catch (err) {
        health.recordPass(false, errorMessage(err));
        logRepeatedFailure(log, repeats, err);
      }
    }
    return 0;
  } finally {
    stop.dispose();
    await server?.shutdown();
  }
}

/** A failed pass of the loop: logged when new, else once per slow interval with the count. */
function logRepeatedFailure(log: Logger, repeats: RepeatFilter, err: unknown): void {
  const held = repeats.admit(errorMessage(err));
  if (held === undefined) return;
  const outcome = "pass failed; this pass changed nothing, retrying";
  logFailure(log, err, held ? `${outcome} (the same failure ${held} times since)` : outcome);
}

function logFailure(log: Logger, err: unknown, what: string): void {
  if (err instanceof InstallError) {
    log.error(err.message, { ...err.details, outcome: what });
  } else {
    log.error(`unexpected failure: ${errorMessage(err)}`, {
      outcome: what,
      stack: err instanceof Error ? err.stack : undefined,
    });
  }
}

async function runUninstall(opts: InstallOptions, log: Logger): Promise<number> {
  try {
    const result = await uninstall(opts, log);
    for (const path of result.removed) log.info(`removed ${path}`, { path });
    for (const w of result.warnings) log.warn(w);
    log.info("uninstalled", { removed: result.removed.length });
    return 0;
  } catch (err) {
    logFailure(log, err, "uninstall failed; nothing was removed");
    return 1;
  }
}
