/**
 * `hydra hybrid sync`: keeps this node's part of every hybrid network in
 * the kernel (see `plan.ts` for the data plane), from a node list file
 * re-read when it changes, and in full again every `--resync-interval`.
 *
 * @module
 */

import { createLogger, type Logger } from "../pkg/log.ts";
import { closeHandle, openHandle } from "../netlink/mod.ts";
import { readNodeFile, watchNodeFile } from "../route/source_file.ts";
import type { NodeInfo } from "../route/nodes.ts";
import { HybridConfigError, type HybridNetwork, parseHybridConfig } from "./model.ts";
import { syncHybrid } from "./sync.ts";
import { listPoolBlocks, withPoolBlocks } from "./pool.ts";

/** The help text. */
export function hybridHelp(): string {
  return `Usage: hydra hybrid sync --config FILE --nodes-file FILE [options]
       hydra hybrid controller [--kubeconfig FILE] [--interval S] [--once]

Keeps this node's part of hybrid networks (overlay and underlay subnets on
the same nodes) programmed: vxlan device, FDB, neighbours, routes of the
network's table, policy rules and the masquerade/forward firewall table.

  --config FILE            hybrid networks (YAML or JSON; see docs/hybrid.md)
  --nodes-file FILE        node list (as for hydra route sync), re-read on change
  --node-name NAME         this node (default $NODE_NAME, else the hostname)
  --kubeconfig FILE        API server of the AddressBlocks of subnets with pool: true
                           (default: in-cluster, when such a subnet exists; read every 5 s)
  --once                   sync once, print a JSON summary, exit (0 ok, 1 failures)
  --resync-interval S      full pass every S seconds (60)
  --log-file FILE          JSON lines appended here (default stderr)
  --log-level LEVEL        debug, info, warn, error, off (info)

The controller keeps the status of Network and Subnet objects
(hydra.clusternet.io/v1alpha1): address counts, and Ready or Refused
(overlapping an older subnet, invalid), every --interval seconds (10).`;
}

interface Options {
  kubeconfig?: string;
  config?: string;
  nodesFile?: string;
  nodeName: string;
  once: boolean;
  resyncMs: number;
  logFile?: string;
  logLevel: "debug" | "info" | "warn" | "error" | "off";
}

function parseArgs(args: string[]): Options {
  const o: Options = {
    nodeName: Deno.env.get("NODE_NAME") ?? Deno.hostname(),
    once: false,
    resyncMs: 60_000,
    logLevel: "info",
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === "--config") o.config = value();
    else if (a === "--kubeconfig") o.kubeconfig = value();
    else if (a === "--nodes-file") o.nodesFile = value();
    else if (a === "--node-name") o.nodeName = value();
    else if (a === "--once") o.once = true;
    else if (a === "--resync-interval") {
      const s = Number(value());
      if (!Number.isFinite(s) || s <= 0) throw new Error("--resync-interval must be positive");
      o.resyncMs = s * 1000;
    } else if (a === "--log-file") o.logFile = value();
    else if (a === "--log-level") {
      const l = value();
      if (!["debug", "info", "warn", "error", "off"].includes(l)) {
        throw new Error(`bad --log-level ${l}`);
      }
      o.logLevel = l as Options["logLevel"];
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!o.config) throw new Error("--config is required");
  if (!o.nodesFile) throw new Error("--nodes-file is required");
  return o;
}

function logSummary(log: Logger, s: ReturnType<typeof syncHybrid>): void {
  for (const n of s.networks) {
    for (const p of n.problems) log.warn(p.message, { network: n.network, kind: p.kind });
    for (const e of n.errors) log.error(e, { network: n.network });
    log.info("synced", { network: n.network, nodes: n.nodesSynced, routes: n.routes, ms: s.ms });
  }
}

/** Adds the pool's blocks to the nodes (a no-op without pool-backed subnets). */
type PoolSource = (nodes: NodeInfo[]) => Promise<NodeInfo[]>;

async function poolSource(o: Options, networks: HybridNetwork[]): Promise<PoolSource> {
  if (!networks.some((n) => n.subnets.some((s) => s.pool))) {
    return (nodes) => Promise.resolve(nodes);
  }
  const { resolveConnection } = await import("../kube/kubeconfig.ts");
  const { createKubeClient } = await import("../kube/client.ts");
  const conn = await resolveConnection(o.kubeconfig);
  if (!conn) throw new Error("a subnet has pool: true: pass --kubeconfig (or run in a cluster)");
  const client = createKubeClient(conn, { userAgent: "hydra-hybrid" });
  return async (nodes) => {
    for (const net of networks) {
      nodes = withPoolBlocks(nodes, net, await listPoolBlocks(client, net));
    }
    return nodes;
  };
}

async function daemon(o: Options, networks: HybridNetwork[], log: Logger): Promise<number> {
  const h = openHandle();
  const withPool = await poolSource(o, networks);
  let nodes: NodeInfo[] | undefined;
  let running = false;
  const pass = async () => {
    if (!nodes || running) return;
    running = true;
    try {
      logSummary(log, syncHybrid(h, networks, await withPool(nodes), o.nodeName));
    } catch (err) {
      // The API server is away: the kernel keeps what the last pass made.
      log.error("pass failed", { error: (err as Error).message });
    } finally {
      running = false;
    }
  };
  const src = watchNodeFile(o.nodesFile!, {
    onNodes(list) {
      nodes = list;
      void pass();
    },
    onError(err) {
      log.error("node list unreadable; keeping the previous one", { error: err.message });
    },
  });
  const timer = setInterval(pass, o.resyncMs);
  // Blocks the pool's nodes claim show up within a few seconds (the list is one request).
  const hasPool = networks.some((n) => n.subnets.some((s) => s.pool));
  const poolTimer = hasPool ? setInterval(pass, 5_000) : undefined;
  const stopped = new Promise<void>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, () => resolve());
  });
  await stopped;
  clearInterval(timer);
  clearInterval(poolTimer);
  await src.stop();
  closeHandle(h);
  return 0;
}

/** Runs `hydra hybrid <subcommand> …`; returns the exit status. */
export async function runHybrid(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help" || sub === "help") {
    console.log(hybridHelp());
    return sub === undefined ? 2 : 0;
  }
  if (sub === "controller") {
    return await (await import("./controller.ts")).runHybridController(rest);
  }
  if (sub !== "sync") {
    console.error(`hydra hybrid: unknown subcommand "${sub}"\n\n${hybridHelp()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(hybridHelp());
    return 0;
  }
  let o: Options;
  try {
    o = parseArgs(rest);
  } catch (err) {
    console.error(`hydra hybrid sync: ${(err as Error).message}\n\nRun "hydra hybrid --help".`);
    return 2;
  }
  const log = createLogger({
    level: o.logLevel,
    file: o.logFile,
    fields: { role: "hybrid", node: o.nodeName },
  });
  let networks: HybridNetwork[];
  try {
    networks = parseHybridConfig(await Deno.readTextFile(o.config!), o.config);
  } catch (err) {
    const msg = err instanceof HybridConfigError
      ? err.message
      : `cannot read ${o.config}: ${(err as Error).message}`;
    console.error(`hydra hybrid sync: ${msg}`);
    return 1;
  }
  if (!o.once) return await daemon(o, networks, log);
  let nodes: NodeInfo[];
  try {
    nodes = await (await poolSource(o, networks))(await readNodeFile(o.nodesFile!));
  } catch (err) {
    console.error(`hydra hybrid sync: ${(err as Error).message}`);
    return 1;
  }
  const h = openHandle();
  try {
    const s = syncHybrid(h, networks, nodes, o.nodeName);
    logSummary(log, s);
    console.log(JSON.stringify(s));
    return s.ok ? 0 : 1;
  } finally {
    closeHandle(h);
  }
}
