/**
 * `hydra policy sync`: the policy role's process. Loads libnftables,
 * connects to the API server, starts the agent (see agent.ts), serves
 * health, readiness (after the first pass) and metrics, and stops on
 * SIGTERM/SIGINT leaving every table in place.
 *
 * @module
 */

import { createLogger, type Logger } from "../pkg/log.ts";
import { formatListenAddress, type HealthServer, serveHealth } from "../pkg/http.ts";
import { createKubeClient } from "../kube/client.ts";
import { resolveConnection } from "../kube/kubeconfig.ts";
import { nftSymbols } from "../nft/libnftables.ts";
import { startPolicyAgent } from "./agent.ts";
import { recordAttachmentSource, type RecordFolder } from "./attachments_records.ts";
import { openPolicyBook } from "./book.ts";
import { createEventSink } from "./events.ts";
import { createPolicyMetrics } from "./metrics.ts";
import { parsePolicyArgs, POLICY_HELP, type PolicySyncOptions } from "./options.ts";

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function folders(opts: PolicySyncOptions): RecordFolder[] {
  const out: RecordFolder[] = [];
  if (opts.metaCacheDir) out.push({ cacheDir: opts.metaCacheDir, kind: "meta" });
  if (opts.nriCacheDir) out.push({ cacheDir: opts.nriCacheDir, kind: "nri" });
  return out;
}

async function sync(opts: PolicySyncOptions, log: Logger): Promise<number> {
  try {
    nftSymbols();
  } catch (err) {
    log.error("cannot load libnftables", { error: message(err) });
    return 1;
  }
  const conn = await resolveConnection(opts.kubeconfig).catch((err) => {
    log.error("cannot load API access", { error: message(err) });
    return null;
  });
  if (!conn) {
    if (conn === undefined) log.error("no --kubeconfig and not running in a cluster");
    return 1;
  }
  const client = createKubeClient(conn, {
    timeoutMs: opts.apiTimeoutMs,
    userAgent: "hydra-policy",
  });
  const metrics = createPolicyMetrics();
  const book = await openPolicyBook({
    stateDir: opts.stateDir,
    onError: (err) => log.warn("cannot save last valid policies", { error: message(err) }),
  });
  const agent = startPolicyAgent({
    client,
    nodeName: opts.nodeName,
    source: recordAttachmentSource({
      folders: folders(opts),
      onError: (path, err) =>
        log.warn("unreadable attachment record", { path, error: message(err) }),
    }),
    book,
    log,
    metrics,
    events: createEventSink(client, {
      host: opts.nodeName,
      onError: (err) => log.debug("cannot record an Event", { error: message(err) }),
    }),
    maxParallel: opts.maxParallel,
    resyncMs: opts.resyncMs,
  });
  let health: HealthServer | undefined;
  try {
    if (opts.listen) {
      health = await serveHealth(opts.listen, {
        registry: metrics.registry,
        healthz: () => ({ ok: true }),
        readyz: () =>
          agent.isReady()
            ? { ok: true }
            : { ok: false, detail: "first pass over this node's pods not done yet" },
      });
    }
    log.info("started", {
      listen: health ? formatListenAddress(health.address) : undefined,
      records: folders(opts).map((f) => `${f.kind}:${f.cacheDir}`),
    });
    agent.ready.then(() => log.info("ready"), () => {});
    const signal = await new Promise<string>((resolve) => {
      for (const sig of ["SIGTERM", "SIGINT"] as const) {
        Deno.addSignalListener(sig, () => resolve(sig));
      }
    });
    log.info("stopping; every pod's table stays in place", { signal });
    return 0;
  } catch (err) {
    log.error("cannot serve", { error: message(err) });
    return 1;
  } finally {
    await agent.stop();
    await health?.shutdown();
    client.close();
  }
}

/** Runs `hydra policy <subcommand> …`; returns the exit status. */
export async function runPolicy(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help" || sub === "help") {
    console.log(POLICY_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== "sync") {
    console.error(`hydra policy: unknown subcommand "${sub}"\n\n${POLICY_HELP}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(POLICY_HELP);
    return 0;
  }
  let opts: PolicySyncOptions;
  try {
    opts = parsePolicyArgs(rest);
  } catch (err) {
    console.error(`hydra policy sync: ${message(err)}\n\n${POLICY_HELP}`);
    return 2;
  }
  const log = createLogger({
    level: opts.logLevel,
    format: opts.logFormat,
    file: opts.logFile,
  }).with({
    role: "policy",
    node: opts.nodeName,
  });
  return await sync(opts, log);
}
