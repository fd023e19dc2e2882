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
import { watchKubeNodes } from "../route/source_kube.ts";
import type { NodeInfo } from "../route/nodes.ts";
import { HybridConfigError, type HybridNetwork } from "../hybridnet/model.ts";
import { parseHybridConfig } from "../hybridnet/config_file.ts";
import { syncHybrid } from "./sync.ts";
import { createHybridMetrics, DEFAULT_HEALTH_ADDR } from "./metrics.ts";
import { type ListenAddress, parseListenAddress, startHealthEndpoint } from "../pkg/http.ts";
import { listPoolBlocks, withPoolBlocks } from "./pool.ts";
import { networksFromApi } from "../hybridnet/api.ts";
import type { KubeClient } from "../kube/client.ts";

/** The help text. */
export function hybridHelp(): string {
  return `Usage: hydra hybrid sync --config FILE --nodes-file FILE [options]
       hydra hybrid controller [--kubeconfig FILE] [--interval S] [--once]
                               [--health-addr ADDR]

Keeps this node's part of hybrid networks (overlay and underlay subnets on
the same nodes) programmed: vxlan device, FDB, neighbours, routes of the
network's table, policy rules and the masquerade/forward firewall table;
for underlayAttachment: macvlan, the node's macvlan shim on the uplink
(removed again when its network goes).

  --config FILE            hybrid networks (YAML or JSON; see docs/hybrid.md); without
                           it, the Network and Subnet objects of the API server
                           (--kubeconfig, else in-cluster), re-read on every pass
  --nodes-file FILE        node list (as for hydra route sync), re-read on change; without
                           it, the Node objects of the API server (watched)
  --node-name NAME         this node (default $NODE_NAME, else the hostname)
  --kubeconfig FILE        API server of the Network/Subnet objects (without --config) and of
                           the AddressBlocks of subnets with pool: true (default: in-cluster;
                           read every 5 s)
  --once                   sync once, print a JSON summary, exit (0 ok, 1 failures)
  --resync-interval S      full pass every S seconds (60)
  --health-addr ADDR       [HOST]:PORT or unix:PATH for /healthz, /readyz, /metrics
                           (default ${DEFAULT_HEALTH_ADDR}, "off" for none)
  --log-file FILE          JSON lines appended here (default stderr)
  --log-level LEVEL        debug, info, warn, error, off (info)

The controller keeps the status of Network and Subnet objects
(hydra.clusternet.io/v1alpha1): address counts, and Ready or Refused
(overlapping an older subnet, invalid), every --interval seconds (10);
/healthz, /readyz and /metrics on --health-addr (default :9478, "off").`;
}

interface Options {
  healthAddr?: ListenAddress;
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
    healthAddr: parseListenAddress(DEFAULT_HEALTH_ADDR),
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
    else if (a === "--health-addr") {
      const v = value();
      o.healthAddr = v === "off" ? undefined : parseListenAddress(v);
    } else if (a === "--nodes-file") o.nodesFile = value();
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
  return o;
}

function logSummary(log: Logger, s: ReturnType<typeof syncHybrid>): void {
  for (const dev of s.shimsRemoved) log.info("shim removed", { device: dev });
  for (const e of s.errors) log.error(e);
  for (const n of s.networks) {
    for (const p of n.problems) log.warn(p.message, { network: n.network, kind: p.kind });
    for (const e of n.errors) log.error(e, { network: n.network });
    log.info("synced", { network: n.network, nodes: n.nodesSynced, routes: n.routes, ms: s.ms });
  }
}

/** What one pass works on: the networks (from the file or the API) and the nodes with pool blocks. */
type PassInput = (nodes: NodeInfo[]) => Promise<{ networks: HybridNetwork[]; nodes: NodeInfo[] }>;

async function apiClient(o: Options, why: string): Promise<KubeClient> {
  const { resolveConnection } = await import("../kube/kubeconfig.ts");
  const { createKubeClient } = await import("../kube/client.ts");
  const conn = await resolveConnection(o.kubeconfig);
  if (!conn) throw new Error(`${why}: pass --kubeconfig (or run in a cluster)`);
  return createKubeClient(conn, { userAgent: "hydra-hybrid" });
}

/**
 * The input of every pass: the networks file read once (a bad file is an
 * error at start), or the Network and Subnet objects listed each pass;
 * then the pool's blocks added to the nodes when a subnet uses the pool.
 */
async function passInput(o: Options): Promise<PassInput> {
  let client: KubeClient | undefined;
  let fixed: HybridNetwork[] | undefined;
  if (o.config) fixed = await parseHybridConfig(await Deno.readTextFile(o.config), o.config);
  else client = await apiClient(o, "no --config, so the networks come from the API");
  const hasPool = (nets: HybridNetwork[]) => nets.some((n) => n.subnets.some((s) => s.pool));
  if (fixed && hasPool(fixed)) client = await apiClient(o, "a subnet has pool: true");
  return async (nodes) => {
    const networks = fixed ?? await networksFromApi(client!);
    if (client && hasPool(networks)) {
      for (const net of networks) {
        nodes = withPoolBlocks(nodes, net, await listPoolBlocks(client, net));
      }
    }
    return { networks, nodes };
  };
}

async function daemon(o: Options, input: PassInput, log: Logger): Promise<number> {
  const m = createHybridMetrics();
  const server = o.healthAddr
    ? await startHealthEndpoint(o.healthAddr, {
      registry: m.registry,
      healthz: () => ({ ok: true }),
      readyz: () =>
        !m.last
          ? { ok: false, detail: "first sync pending" }
          : m.last.ok
          ? { ok: true, detail: `${m.last.networks.length} networks` }
          : { ok: false, detail: "last sync had kernel errors" },
    }, log)
    : undefined;
  const h = openHandle();
  let nodes: NodeInfo[] | undefined;
  let running = false;
  const pass = async () => {
    if (!nodes || running) return;
    running = true;
    try {
      const now = await input(nodes);
      const summary = syncHybrid(h, now.networks, now.nodes, o.nodeName);
      m.record(summary);
      logSummary(log, summary);
    } catch (err) {
      // The API server is away: the kernel keeps what the last pass made.
      log.error("pass failed", { error: (err as Error).message });
    } finally {
      running = false;
    }
  };
  const src = await nodeSource(o, {
    onNodes(list) {
      nodes = list;
      void pass();
    },
    onError(err) {
      log.error("node source failed; keeping the previous nodes", { error: err.message });
    },
  });
  const timer = setInterval(pass, o.resyncMs);
  // Objects and pool blocks from the API show up within a few seconds (a list or two per pass).
  const apiTimer = !o.config || o.kubeconfig ? setInterval(pass, 5_000) : undefined;
  const stopped = new Promise<void>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(sig, () => resolve());
  });
  await stopped;
  clearInterval(timer);
  clearInterval(apiTimer);
  await src.stop();
  await server?.shutdown();
  closeHandle(h);
  return 0;
}

/** The node set once: the file, or the API's first complete list (30 s at most). */
async function onceNodes(o: Options): Promise<NodeInfo[]> {
  if (o.nodesFile) return await readNodeFile(o.nodesFile);
  let got: NodeInfo[] | undefined;
  let failure: Error | undefined;
  const src = await nodeSource(o, {
    onNodes: (n) => (got ??= n),
    onError: (e) => (failure = e),
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(failure ?? new Error("the API server did not list the nodes within 30 s")),
        30_000,
      );
    });
    await Promise.race([src.ready, timeout]);
    return got ?? [];
  } finally {
    clearTimeout(timer);
    await src.stop();
  }
}

/** A running node source: the node list file, or the Node objects of the API server. */
interface NodeSource {
  /** Resolves once the first complete node set was handed over. */
  ready: Promise<void>;
  stop(): Promise<void>;
}

async function nodeSource(
  o: Options,
  handlers: { onNodes(nodes: NodeInfo[]): void; onError(err: Error): void },
): Promise<NodeSource> {
  if (o.nodesFile) {
    const src = watchNodeFile(o.nodesFile, handlers);
    return { ready: src.ready, stop: () => src.stop() };
  }
  const client = await apiClient(o, "no --nodes-file, so the nodes come from the API");
  const nodes = new Map<string, NodeInfo>();
  let synced = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  // Changes arriving together go into one pass.
  const changed = () => {
    if (!synced || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      handlers.onNodes([...nodes.values()]);
    }, 20);
  };
  const src = watchKubeNodes(client, {
    upsert(n) {
      nodes.set(n.name, n);
      changed();
    },
    remove(name) {
      nodes.delete(name);
      changed();
    },
    synced() {
      synced = true;
      handlers.onNodes([...nodes.values()]);
    },
    onError: (err) => handlers.onError(err instanceof Error ? err : new Error(String(err))),
    onRecovered() {},
  });
  return {
    ready: src.synced,
    async stop() {
      clearTimeout(timer);
      await src.stop();
      client.close();
    },
  };
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
  let input: PassInput;
  try {
    input = await passInput(o);
  } catch (err) {
    const msg = err instanceof HybridConfigError || !o.config
      ? (err as Error).message
      : `cannot read ${o.config}: ${(err as Error).message}`;
    console.error(`hydra hybrid sync: ${msg}`);
    return 1;
  }
  if (!o.once) return await daemon(o, input, log);
  let now: Awaited<ReturnType<PassInput>>;
  try {
    now = await input(await onceNodes(o));
  } catch (err) {
    console.error(`hydra hybrid sync: ${(err as Error).message}`);
    return 1;
  }
  const h = openHandle();
  try {
    const s = syncHybrid(h, now.networks, now.nodes, o.nodeName);
    logSummary(log, s);
    console.log(JSON.stringify(s));
    return s.ok ? 0 : 1;
  } finally {
    closeHandle(h);
  }
}
