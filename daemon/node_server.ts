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
import { createSemaphore, delay, type Semaphore, withTimeout } from "../pkg/async.ts";

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

/** The server's metrics. */
function serverMetrics(reg: Registry) {
  return {
    requests: reg.counter(
      "hydra_daemon_requests_total",
      "Socket requests by operation and result.",
      ["op", "result"],
    ),
    duration: reg.histogram(
      "hydra_daemon_request_duration_seconds",
      "Time to answer a socket request, by operation.",
      ["op"],
      [0.0001, 0.0005, ...DURATION_BUCKETS],
    ),
    reads: reg.counter(
      "hydra_daemon_reads_total",
      "Object reads by where they were served from (cache or api).",
      ["source"],
    ),
    waiting: reg.gauge("hydra_daemon_requests_waiting", "Requests waiting for a slot."),
    open: reg.gauge("hydra_daemon_connections", "Open socket connections."),
  };
}

/** What the steps of one server share. */
interface Server {
  opts: NodeServerOptions;
  metrics: ReturnType<typeof serverMetrics>;
  defaultTimeoutMs: number;
  maxInFlight: number;
  /** Slots of the reads, creates, reports and pings. */
  slots: Semaphore;
  /**
   * Slots of `cni` requests. One asks this very socket for pods and networks
   * while it runs: it must not hold one of the slots those requests need.
   */
  cniSlots: Semaphore;
  conns: Set<Deno.Conn>;
  handlers: Set<Promise<void>>;
}

/** A slot for `op`; a wait for a read slot is counted in the waiting gauge. */
async function slotFor(server: Server, op: string): Promise<() => void> {
  if (op === "cni") return await server.cniSlots.acquire();
  if (server.slots.held < server.maxInFlight) return await server.slots.acquire();
  server.metrics.waiting.inc();
  try {
    return await server.slots.acquire();
  } finally {
    server.metrics.waiting.inc({}, -1);
  }
}

/** The answer to one request (not counted: {@link serveRequest} does that). */
async function answer(server: Server, req: DaemonRequest): Promise<DaemonResponse> {
  const { opts } = server;
  switch (req.op) {
    case "get": {
      const timeoutMs = Math.min(Math.max(1, req.timeoutMs ?? server.defaultTimeoutMs), 60_000);
      const { body, source } = await opts.cache.get(req.path, { uid: req.uid, timeoutMs });
      server.metrics.reads.inc({ source });
      return { ok: true, body };
    }
    case "create": {
      if (!EVENT_PATH.test(req.path)) {
        return { ok: false, status: 400, reason: "BadRequest", message: "only Events" };
      }
      opts.client.create(req.path, req.body, { timeoutMs: server.defaultTimeoutMs }).catch((err) =>
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
async function serveRequest(
  server: Server,
  req: DaemonRequest,
  started: number,
): Promise<DaemonResponse> {
  const op = typeof req?.op === "string" ? req.op : "invalid";
  let res: DaemonResponse;
  const release = await slotFor(server, op);
  try {
    res = await answer(server, req);
  } catch (err) {
    res = failure(err);
  } finally {
    release();
  }
  server.metrics.requests.inc({ op, result: res.ok ? "ok" : "error" });
  server.metrics.duration.observe({ op }, (performance.now() - started) / 1000);
  return res;
}

/** See {@link NodeServer.inProcessConnection}. */
function inProcessConnection(server: Server): DaemonConnection {
  return {
    path: server.opts.socketPath,
    async call(req, timeoutMs) {
      const res = await withTimeout(
        serveRequest(server, req, performance.now()),
        Math.max(1, Math.round(timeoutMs)),
        () =>
          new DaemonUnavailableError(
            `daemon (in process) did not answer within ${Math.round(timeoutMs)} ms`,
          ),
      );
      // Over the socket the caller gets its own copy; the cache's objects stay the cache's.
      return res.ok && res.body !== undefined ? { ...res, body: structuredClone(res.body) } : res;
    },
    close() {},
  };
}

/** One request line's answer; a line that is not JSON is answered and counted as invalid. */
async function answerLine(server: Server, line: string): Promise<DaemonResponse> {
  const started = performance.now();
  let req: DaemonRequest;
  try {
    req = JSON.parse(line) as DaemonRequest;
  } catch (err) {
    server.metrics.requests.inc({ op: "invalid", result: "error" });
    server.metrics.duration.observe({ op: "invalid" }, (performance.now() - started) / 1000);
    return failure(err);
  }
  return await serveRequest(server, req, started);
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** Serves one connection: its requests one after the other, until it ends. */
async function handleConnection(server: Server, conn: Deno.Conn): Promise<void> {
  const splitter = lineSplitter();
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      for (const line of splitter.push(buf.subarray(0, n))) {
        await conn.write(encodeLine(await answerLine(server, line)));
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.BadResource || err instanceof Deno.errors.BrokenPipe)) {
      server.opts.log.debug("connection ended", { error: err });
    }
  } finally {
    server.conns.delete(conn);
    server.metrics.open.set({}, server.conns.size);
    closeQuietly(conn);
  }
}

/** Listens on the socket path: a stale socket file is replaced, the socket made 0660. */
async function listenOn(path: string): Promise<Deno.Listener> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  if (dir) await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  await Deno.remove(path).catch(() => {});
  const listener = Deno.listen({ transport: "unix", path });
  await Deno.chmod(path, 0o660);
  return listener;
}

/** Accepts connections until the listener closes; past the limit they are closed at once. */
async function acceptLoop(server: Server, listener: Deno.Listener): Promise<void> {
  const maxConnections = server.opts.maxConnections ?? 1024;
  try {
    for await (const conn of listener) {
      if (server.conns.size >= maxConnections) {
        server.metrics.requests.inc({ op: "connect", result: "refused" });
        conn.close();
        continue;
      }
      server.conns.add(conn);
      server.metrics.open.set({}, server.conns.size);
      const h = handleConnection(server, conn);
      server.handlers.add(h);
      h.finally(() => server.handlers.delete(h));
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.BadResource)) {
      server.opts.log.error("accept failed", { error: err });
    }
  }
}

/** Stops accepting, gives requests in progress up to 2 s, then closes every connection. */
async function shutdown(
  server: Server,
  listener: Deno.Listener,
  accepting: Promise<void>,
): Promise<void> {
  try {
    listener.close();
  } catch {
    // already closed
  }
  await accepting;
  await Deno.remove(server.opts.socketPath).catch(() => {});
  // Connections idle between requests are closed; one mid-request finishes first.
  const deadline = Date.now() + 2_000;
  while (server.slots.held > 0 && Date.now() < deadline) await delay(10);
  for (const conn of server.conns) closeQuietly(conn);
  await Promise.allSettled([...server.handlers]);
}

/** Starts serving on the unix socket (a stale socket file is replaced). */
export async function serveNodeSocket(opts: NodeServerOptions): Promise<NodeServer> {
  const maxInFlight = opts.maxInFlight ?? 64;
  const server: Server = {
    opts,
    metrics: serverMetrics(opts.registry),
    defaultTimeoutMs: opts.defaultTimeoutMs ?? 5_000,
    maxInFlight,
    slots: createSemaphore(maxInFlight),
    cniSlots: createSemaphore(opts.maxCniInFlight ?? 8),
    conns: new Set(),
    handlers: new Set(),
  };
  const listener = await listenOn(opts.socketPath);
  const accepting = acceptLoop(server, listener);
  const inProcess = inProcessConnection(server);
  return {
    connections: () => server.conns.size,
    inProcessConnection: () => inProcess,
    shutdown: () => shutdown(server, listener, accepting),
  };
}
