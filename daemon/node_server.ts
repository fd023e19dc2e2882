/**
 * The node daemon's socket server: reads requests (see daemonclient/protocol.ts)
 * from each connection, answers them in order from the caches, queues
 * status reports and Events. At most `maxInFlight` requests are worked on
 * at once across all connections (the rest wait their turn, so a burst of
 * pods cannot make the daemon grow without bound), and at most
 * `maxConnections` connections are open; more are closed at once, and the
 * meta-CNI then asks the API server itself.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import type { KubeClient } from "../kube/client.ts";
import { KubeApiError, KubeTransportError } from "../kube/errors.ts";
import { DURATION_BUCKETS, type Registry } from "../pkg/metrics.ts";
import type { NodeCache } from "./node_cache.ts";
import {
  type DaemonRequest,
  type DaemonResponse,
  encodeLine,
  lineSplitter,
} from "../daemonclient/protocol.ts";
import type { ReportQueue } from "./node_reports.ts";
import { type DaemonConnection, DaemonUnavailableError } from "../daemonclient/client.ts";

/** Options of {@link serveNodeSocket}. */
export interface NodeServerOptions {
  socketPath: string;
  cache: NodeCache;
  reports: ReportQueue;
  /** For Events handed over by the meta-CNI. */
  client: KubeClient;
  log: Logger;
  registry: Registry;
  nodeName: string;
  /** Requests worked on at once; 64. */
  maxInFlight?: number;
  /** Open connections at most; 1024. */
  maxConnections?: number;
  /** Longest a read may take when the caller names no deadline; 5 s. */
  defaultTimeoutMs?: number;
  /** Runs a whole meta-CNI invocation (`cni` requests); absent: such requests are refused. */
  executeCni?: (
    env: Record<string, string>,
    stdin: string,
    plugin?: string,
  ) => Promise<{ stdout: string; code: number }>;
  /** `cni` requests worked on at once; 8. They do not take the read slots they wait on. */
  maxCniInFlight?: number;
}

/** The running server. */
export interface NodeServer {
  connections(): number;
  /**
   * A connection served by direct calls, for code in the daemon's own
   * process (a meta-CNI run under `daemonExec`): the same requests, slots
   * and metrics as over the socket, without the socket, the JSON lines or
   * a round through the event loop per line. Objects read come as copies,
   * as they would over the socket; closing it does nothing.
   */
  inProcessConnection(): DaemonConnection;
  /** Stops accepting, lets requests in progress finish, closes every connection. */
  shutdown(): Promise<void>;
}

const EVENT_PATH = /^\/api\/v1\/namespaces\/[^/]+\/events$/;

function failure(err: unknown): DaemonResponse {
  if (err instanceof KubeApiError) {
    return { ok: false, status: err.status, reason: err.reason, message: err.message };
  }
  if (err instanceof KubeTransportError) {
    return { ok: false, transport: err.failure, message: err.message };
  }
  return { ok: false, status: 500, reason: "InternalError", message: String(err) };
}

/** Starts serving on the unix socket (a stale socket file is replaced). */
export async function serveNodeSocket(opts: NodeServerOptions): Promise<NodeServer> {
  const reg = opts.registry;
  const requests = reg.counter(
    "hydra_daemon_requests_total",
    "Socket requests by operation and result.",
    ["op", "result"],
  );
  const duration = reg.histogram(
    "hydra_daemon_request_duration_seconds",
    "Time to answer a socket request, by operation.",
    ["op"],
    [0.0001, 0.0005, ...DURATION_BUCKETS],
  );
  const reads = reg.counter(
    "hydra_daemon_reads_total",
    "Object reads by where they were served from (cache or api).",
    ["source"],
  );
  const waiting = reg.gauge("hydra_daemon_requests_waiting", "Requests waiting for a slot.");
  const open = reg.gauge("hydra_daemon_connections", "Open socket connections.");

  const maxInFlight = opts.maxInFlight ?? 64;
  const maxConnections = opts.maxConnections ?? 1024;
  const defaultTimeoutMs = opts.defaultTimeoutMs ?? 5_000;
  let inFlight = 0;
  const queue: (() => void)[] = [];
  const conns = new Set<Deno.Conn>();
  const handlers = new Set<Promise<void>>();

  async function slot(): Promise<() => void> {
    if (inFlight >= maxInFlight) {
      waiting.inc();
      await new Promise<void>((resolve) => queue.push(resolve));
      waiting.inc({}, -1);
    } else {
      inFlight++;
    }
    return () => {
      const next = queue.shift();
      if (next) next();
      else inFlight--;
    };
  }

  // A `cni` request asks this very socket for pods and networks while it runs: it must not
  // hold one of the read slots those requests need, so it has slots of its own.
  const maxCni = opts.maxCniInFlight ?? 8;
  let cniInFlight = 0;
  const cniQueue: (() => void)[] = [];
  async function cniSlot(): Promise<() => void> {
    if (cniInFlight >= maxCni) await new Promise<void>((resolve) => cniQueue.push(resolve));
    else cniInFlight++;
    return () => {
      const next = cniQueue.shift();
      if (next) next();
      else cniInFlight--;
    };
  }

  async function answer(req: DaemonRequest): Promise<DaemonResponse> {
    switch (req.op) {
      case "get": {
        const timeoutMs = Math.min(Math.max(1, req.timeoutMs ?? defaultTimeoutMs), 60_000);
        const { body, source } = await opts.cache.get(req.path, { uid: req.uid, timeoutMs });
        reads.inc({ source });
        return { ok: true, body };
      }
      case "create": {
        if (!EVENT_PATH.test(req.path)) {
          return { ok: false, status: 400, reason: "BadRequest", message: "only Events" };
        }
        opts.client.create(req.path, req.body, { timeoutMs: defaultTimeoutMs }).catch((err) =>
          opts.log.debug("event not recorded", { error: err })
        );
        return { ok: true };
      }
      case "report":
        opts.reports.enqueue({
          pod: req.pod,
          reports: req.reports,
          events: req.events,
          at: Date.now(),
        });
        return { ok: true };
      case "ping":
        return { ok: true, body: { node: opts.nodeName, synced: opts.cache.hasSynced() } };
      case "cni": {
        if (!opts.executeCni) {
          return { ok: false, status: 501, reason: "NotImplemented", message: "no cni requests" };
        }
        return {
          ok: true,
          body: await opts.executeCni(req.env ?? {}, req.stdin ?? "", req.plugin),
        };
      }
      default:
        return { ok: false, status: 400, reason: "BadRequest", message: "unknown op" };
    }
  }

  /** Answers one parsed request in its slot, counted in the metrics. */
  async function serveRequest(req: DaemonRequest, started: number): Promise<DaemonResponse> {
    const op = typeof req?.op === "string" ? req.op : "invalid";
    let res: DaemonResponse;
    const release = await (op === "cni" ? cniSlot() : slot());
    try {
      res = await answer(req);
    } catch (err) {
      res = failure(err);
    } finally {
      release();
    }
    requests.inc({ op, result: res.ok ? "ok" : "error" });
    duration.observe({ op }, (performance.now() - started) / 1000);
    return res;
  }

  const inProcess: DaemonConnection = {
    path: opts.socketPath,
    async call(req, timeoutMs) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new DaemonUnavailableError(
                `daemon (in process) did not answer within ${Math.round(timeoutMs)} ms`,
              ),
            ),
          Math.max(1, Math.round(timeoutMs)),
        );
      });
      try {
        const res = await Promise.race([serveRequest(req, performance.now()), late]);
        // Over the socket the caller gets its own copy; the cache's objects stay the cache's.
        return res.ok && res.body !== undefined ? { ...res, body: structuredClone(res.body) } : res;
      } finally {
        clearTimeout(timer);
      }
    },
    close() {},
  };

  async function handle(conn: Deno.Conn): Promise<void> {
    const splitter = lineSplitter();
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) return;
        for (const line of splitter.push(buf.subarray(0, n))) {
          const started = performance.now();
          let res: DaemonResponse;
          let req: DaemonRequest | undefined;
          try {
            req = JSON.parse(line) as DaemonRequest;
          } catch (err) {
            res = failure(err);
            requests.inc({ op: "invalid", result: "error" });
            duration.observe({ op: "invalid" }, (performance.now() - started) / 1000);
          }
          if (req) res = await serveRequest(req, started);
          await conn.write(encodeLine(res!));
        }
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource || err instanceof Deno.errors.BrokenPipe)) {
        opts.log.debug("connection ended", { error: err });
      }
    } finally {
      conns.delete(conn);
      open.set({}, conns.size);
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  }

  const dir = opts.socketPath.slice(0, opts.socketPath.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  await Deno.remove(opts.socketPath).catch(() => {});
  const listener = Deno.listen({ transport: "unix", path: opts.socketPath });
  await Deno.chmod(opts.socketPath, 0o660);
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        if (conns.size >= maxConnections) {
          requests.inc({ op: "connect", result: "refused" });
          conn.close();
          continue;
        }
        conns.add(conn);
        open.set({}, conns.size);
        const h = handle(conn);
        handlers.add(h);
        h.finally(() => handlers.delete(h));
      }
    } catch (err) {
      if (!(err instanceof Deno.errors.BadResource)) {
        opts.log.error("accept failed", { error: err });
      }
    }
  })();

  return {
    connections: () => conns.size,
    inProcessConnection: () => inProcess,
    async shutdown() {
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
      await Deno.remove(opts.socketPath).catch(() => {});
      // Connections idle between requests are closed; one mid-request finishes first.
      const deadline = Date.now() + 2_000;
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
      await Promise.allSettled([...handlers]);
    },
  };
}
