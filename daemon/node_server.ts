/**
 * The node daemon's socket server: reads requests (see daemonclient/protocol.ts)
 * from each connection, answers them in order from the caches, queues
 * status reports and Events, and runs whole CNI invocations (`cni`).
 *
 * Only the node's root is served. The socket lives in a folder only root
 * may enter (socket_dir.ts) and is 0600; on top of that every connection's
 * peer is looked up as the kernel recorded it (SO_PEERCRED, peer_cred.ts)
 * and one whose uid is not allowed (0 unless configured) is answered
 * "Forbidden", closed, logged and counted before anything it sent is read.
 *
 * Nothing a peer sends can take the daemon down or make it grow without
 * bound: every request is checked (requests.ts) before it is served and a
 * bad one is answered with status 400; a line is at most `maxLineBytes`
 * (kept as bytes until complete), a connection may have at most a few
 * lines waiting, all connections together may hold at most
 * `maxBufferedBytes` of unanswered input, and a connection that sends
 * nothing (or reads nothing) for `idleMs` while no request of it is being
 * served is closed. At most `maxInFlight` requests are worked on at once
 * across all connections (the rest wait their turn), at most
 * `maxConnections` connections are open (more are closed at once, and the
 * meta-CNI then asks the API server itself), at most `maxCniInFlight`
 * whole invocations run at once.
 *
 * A `cni` request is cancelled when its caller gives up: the connection
 * closing while it runs, or its `timeoutMs` passing, aborts it (the engine
 * rolls an ADD back before the next invocation of that attachment runs).
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import type { KubeClient } from "../kube/client.ts";
import { KubeApiError, KubeTransportError } from "../kube/errors.ts";
import { DURATION_BUCKETS, type Registry } from "../pkg/metrics.ts";
import type { NodeCache, ReadSource } from "../kube/node_cache.ts";
import {
  type CniRequest,
  type DaemonRequest,
  type DaemonResponse,
  encodeLine,
  lineSplitter,
  LineTooLongError,
  MAX_LINE_BYTES,
} from "../daemonclient/protocol.ts";
import type { ReportQueue } from "../kube/report_queue.ts";
import { type DaemonConnection, DaemonUnavailableError } from "../daemonclient/client.ts";
import { createSemaphore, delay, MAX_TIMER_MS, type Semaphore, withTimeout } from "../pkg/async.ts";
import { type PeerCredentials, type PeerLookup, peerLookup } from "./peer_cred.ts";
import { BadRequestError, parseRequest, validateRequest } from "./requests.ts";
import { prepareSocketDir, removeStaleSocket } from "./socket_dir.ts";

/** Runs one `cni` request; `signal` aborts when its caller gives up. */
export type CniExecutor = (req: CniRequest, signal: AbortSignal) => Promise<DaemonResponse>;

/** Options of {@link serveNodeSocket}. */
export interface NodeServerOptions {
  socketPath: string;
  cache: NodeCache;
  /** Told where each `get` was served from (the cache or the API server), for metrics. */
  onRead?: (source: ReadSource) => void;
  /** Told when a request has been answered (or its caller went). */
  onAnswered?: () => void;
  reports: ReportQueue;
  /** For Events handed over by the meta-CNI. */
  client: KubeClient;
  log: Logger;
  registry: Registry;
  nodeName: string;
  /** Requests worked on at once; 64. */
  maxInFlight?: number;
  /** Open connections at most; 256. */
  maxConnections?: number;
  /** Longest a read may take when the caller names no deadline; 5 s. */
  defaultTimeoutMs?: number;
  /** Runs a whole CNI invocation (`cni` requests); absent: such requests are refused. */
  executeCni?: CniExecutor;
  /** `cni` requests worked on at once; 8. They do not take the read slots they wait on. */
  maxCniInFlight?: number;
  /** The uids whose connections are served; [0] (root). */
  allowedUids?: readonly number[];
  /** Who is connecting; default: the kernel's record (SO_PEERCRED). */
  peers?: PeerLookup;
  /** Longest request line, bytes; MAX_LINE_BYTES. */
  maxLineBytes?: number;
  /** Unanswered input of all connections together, bytes; 16 MiB. */
  maxBufferedBytes?: number;
  /** A connection quiet this long while nothing of it is served is closed; 60 s. */
  idleMs?: number;
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
  /**
   * Stops accepting, lets requests in progress finish (reads 2 s, invocations 10 s; one still
   * running is then cancelled and rolled back), closes every connection.
   */
  shutdown(): Promise<void>;
}

const EVENT_PATH = /^\/api\/v1\/namespaces\/[^/]+\/events$/;

/** Lines a connection may send ahead of the answers. */
const MAX_QUEUED_LINES = 4;

function failure(err: unknown): DaemonResponse {
  if (err instanceof BadRequestError) {
    return { ok: false, status: 400, reason: "BadRequest", message: err.message };
  }
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
      [...DURATION_BUCKETS],
    ),
    waiting: reg.gauge("hydra_daemon_requests_waiting", "Requests waiting for a slot."),
    open: reg.gauge("hydra_daemon_connections", "Open socket connections."),
    dropped: reg.counter(
      "hydra_daemon_connections_dropped_total",
      "Connections refused or closed by the daemon, by reason (peer: not an allowed user; " +
        "limit: too many open; line: a line too long; queue: too many lines ahead; " +
        "memory: input over the budget; idle).",
      ["reason"],
    ),
    buffered: reg.gauge(
      "hydra_daemon_buffered_bytes",
      "Input received and not answered yet, all connections.",
    ),
  };
}

/** One open connection. */
interface Connection {
  conn: Deno.Conn;
  lines: string[];
  /** Bytes of this connection counted in the server's buffer total. */
  held: number;
  lastActive: number;
  /** A request of it is being served. */
  busy: boolean;
  /** When the answer being written started (a peer that does not read). */
  writingSince?: number;
  /** The peer is gone (or was dropped). */
  ended: boolean;
  /** Aborted when the peer goes: the `cni` request it waits for is cancelled. */
  gone: AbortController;
  /** Wakes the loop that answers. */
  wake: () => void;
}

/** What the steps of one server share. */
interface Server {
  opts: NodeServerOptions;
  metrics: ReturnType<typeof serverMetrics>;
  defaultTimeoutMs: number;
  maxInFlight: number;
  maxLineBytes: number;
  maxBufferedBytes: number;
  idleMs: number;
  allowedUids: ReadonlySet<number>;
  peers: PeerLookup;
  /** Slots of the reads, creates, reports and pings. */
  slots: Semaphore;
  /**
   * Slots of `cni` requests. One asks this very socket for pods and networks
   * while it runs: it must not hold one of the slots those requests need.
   */
  cniSlots: Semaphore;
  conns: Map<Deno.Conn, Connection>;
  handlers: Set<Promise<void>>;
  /** Unanswered input of all connections, bytes. */
  buffered: number;
  /** When a refusal was last logged, by uid (refusals are logged at most every 10 s per uid). */
  refusalLogged: Map<number, number>;
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

/** Runs a `cni` request, cancelled when the caller goes or its deadline passes. */
async function runCni(
  server: Server,
  req: CniRequest,
  gone: AbortSignal | undefined,
): Promise<DaemonResponse> {
  const execute = server.opts.executeCni;
  if (!execute) {
    return { ok: false, status: 501, reason: "NotImplemented", message: "no cni requests" };
  }
  const cancel = new AbortController();
  const onGone = () => cancel.abort(new Error("the caller closed its connection"));
  if (gone?.aborted) onGone();
  gone?.addEventListener("abort", onGone, { once: true });
  const timer = req.timeoutMs === undefined ? undefined : setTimeout(
    () => cancel.abort(new Error(`the caller's deadline (${req.timeoutMs} ms) passed`)),
    Math.min(Math.max(1, req.timeoutMs), MAX_TIMER_MS),
  );
  try {
    return await execute(req, cancel.signal);
  } finally {
    clearTimeout(timer);
    gone?.removeEventListener("abort", onGone);
  }
}

/** The answer to one request (not counted: {@link serveRequest} does that). */
async function answer(
  server: Server,
  req: DaemonRequest,
  gone?: AbortSignal,
): Promise<DaemonResponse> {
  const { opts } = server;
  switch (req.op) {
    case "get": {
      const timeoutMs = Math.min(Math.max(1, req.timeoutMs ?? server.defaultTimeoutMs), 60_000);
      const { body, source } = await opts.cache.get(req.path, { uid: req.uid, timeoutMs });
      opts.onRead?.(source);
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
      // On disk before the answer: the caller forgets the report once told ok.
      await opts.reports.enqueue({
        pod: req.pod,
        reports: req.reports,
        events: req.events,
        at: Date.now(),
      });
      return { ok: true };
    case "ping":
      return { ok: true, body: { node: opts.nodeName, synced: opts.cache.hasSynced() } };
    case "cni":
      return await runCni(server, req, gone);
  }
}

/** Answers one checked request in its slot, counted in the metrics. */
async function serveRequest(
  server: Server,
  req: DaemonRequest,
  started: number,
  gone?: AbortSignal,
): Promise<DaemonResponse> {
  let res: DaemonResponse;
  const release = await slotFor(server, req.op);
  try {
    res = await answer(server, req, gone);
  } catch (err) {
    res = failure(err);
  } finally {
    release();
  }
  server.metrics.requests.inc({ op: req.op, result: res.ok ? "ok" : "error" });
  server.metrics.duration.observe({ op: req.op }, (performance.now() - started) / 1000);
  return res;
}

/** A refused request, counted as the operation "invalid". */
function refused(server: Server, err: unknown, started: number): DaemonResponse {
  server.metrics.requests.inc({ op: "invalid", result: "error" });
  server.metrics.duration.observe({ op: "invalid" }, (performance.now() - started) / 1000);
  return failure(err);
}

/** See {@link NodeServer.inProcessConnection}. */
function inProcessConnection(server: Server): DaemonConnection {
  return {
    path: server.opts.socketPath,
    async call(raw, timeoutMs) {
      const started = performance.now();
      let req: DaemonRequest;
      try {
        req = validateRequest(raw);
      } catch (err) {
        return refused(server, err, started);
      }
      const res = await withTimeout(
        serveRequest(server, req, started),
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

/** One request line's answer; a line that is not a valid request is answered and counted. */
async function answerLine(server: Server, line: string, c: Connection): Promise<DaemonResponse> {
  const started = performance.now();
  let req: DaemonRequest;
  try {
    req = parseRequest(line);
  } catch (err) {
    return refused(server, err, started);
  }
  return await serveRequest(server, req, started, c.gone.signal);
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** Closes a connection for `reason` (counted); its reader and answerer then end. */
function drop(server: Server, c: Connection, reason: string): void {
  if (c.ended) return;
  server.metrics.dropped.inc({ reason });
  endConnection(c);
  closeQuietly(c.conn);
}

/** Marks the peer gone: a `cni` request it waits for is cancelled, the answerer wakes. */
function endConnection(c: Connection): void {
  c.ended = true;
  c.gone.abort();
  c.wake();
}

/** Counts a connection's unanswered bytes in the server's total; false when over the budget. */
function account(server: Server, c: Connection, held: number): boolean {
  server.buffered += held - c.held;
  c.held = held;
  server.metrics.buffered.set({}, server.buffered);
  return server.buffered <= server.maxBufferedBytes;
}

function queuedBytes(c: Connection): number {
  return c.lines.reduce((n, l) => n + l.length, 0);
}

/** Reads lines into the connection's queue until the peer goes or breaks a bound. */
async function readLines(server: Server, c: Connection): Promise<void> {
  const splitter = lineSplitter(server.maxLineBytes);
  const buf = new Uint8Array(16 * 1024);
  try {
    while (!c.ended) {
      const n = await c.conn.read(buf);
      if (n === null) break;
      c.lastActive = Date.now();
      const lines = splitter.push(buf.subarray(0, n));
      if (c.lines.length + lines.length > MAX_QUEUED_LINES) return drop(server, c, "queue");
      c.lines.push(...lines);
      if (!account(server, c, splitter.pending + queuedBytes(c))) return drop(server, c, "memory");
      if (lines.length) c.wake();
    }
  } catch (err) {
    if (err instanceof LineTooLongError) return drop(server, c, "line");
    if (!(err instanceof Deno.errors.BadResource || err instanceof Deno.errors.BrokenPipe)) {
      server.opts.log.debug("connection ended", { error: err });
    }
  } finally {
    endConnection(c);
  }
}

/** Answers the connection's lines in order while its peer is there. */
async function answerLines(server: Server, c: Connection): Promise<void> {
  while (!c.ended) {
    const line = c.lines.shift();
    if (line === undefined) {
      await new Promise<void>((resolve) => (c.wake = resolve));
      continue;
    }
    account(server, c, c.held - line.length);
    c.busy = true;
    let res: DaemonResponse;
    try {
      res = await answerLine(server, line, c);
    } finally {
      c.busy = false;
      c.lastActive = Date.now();
      server.opts.onAnswered?.();
    }
    if (c.ended) return; // nobody to answer
    c.writingSince = Date.now();
    await c.conn.write(encodeLine(res));
    c.writingSince = undefined;
  }
}

/** Serves one connection: its requests one after the other, until it ends. */
async function handleConnection(server: Server, c: Connection): Promise<void> {
  const reading = readLines(server, c);
  try {
    await answerLines(server, c);
  } catch (err) {
    if (!(err instanceof Deno.errors.BadResource || err instanceof Deno.errors.BrokenPipe)) {
      server.opts.log.debug("connection ended", { error: err });
    }
  } finally {
    endConnection(c);
    closeQuietly(c.conn);
    await reading;
    account(server, c, 0);
    server.conns.delete(c.conn);
    server.metrics.open.set({}, server.conns.size);
  }
}

/** Closes connections quiet for too long while nothing of theirs is served. */
function dropIdle(server: Server): void {
  const now = Date.now();
  for (const c of server.conns.values()) {
    const stalledWrite = c.writingSince !== undefined && now - c.writingSince > server.idleMs;
    if (stalledWrite || (!c.busy && now - c.lastActive > server.idleMs)) drop(server, c, "idle");
  }
}

/**
 * Listens on the socket path: its folder made or checked (root's alone),
 * a stale socket replaced, the socket made 0600.
 */
function listenOn(path: string, log: Logger): Deno.Listener {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const outcome = prepareSocketDir(dir);
  if (outcome === "narrowed") log.info("socket folder narrowed to 0700", { folder: dir });
  removeStaleSocket(path);
  const listener = Deno.listen({ transport: "unix", path });
  Deno.chmodSync(path, 0o600);
  return listener;
}

/** Answers a refused peer once and closes; logged at most every 10 s per uid. */
function refusePeer(server: Server, conn: Deno.Conn, peer: PeerCredentials | undefined): void {
  server.metrics.dropped.inc({ reason: "peer" });
  const uid = peer?.uid ?? -1;
  const now = Date.now();
  if (now - (server.refusalLogged.get(uid) ?? 0) > 10_000) {
    server.refusalLogged.set(uid, now);
    server.opts.log.warn("connection refused: not an allowed user", {
      uid: peer?.uid,
      gid: peer?.gid,
      pid: peer?.pid,
      allowedUids: [...server.allowedUids],
    });
  }
  const line = encodeLine({
    ok: false,
    status: 403,
    reason: "Forbidden",
    message: "this daemon serves only the node's root",
  });
  conn.write(line).catch(() => {}).finally(() => closeQuietly(conn));
}

/** Who connected; undefined (refused) when it cannot be told. */
function identify(server: Server): PeerCredentials | undefined {
  try {
    return server.peers.identifyAccepted();
  } catch (err) {
    server.opts.log.error("cannot read a connection's peer", { error: err });
    return undefined;
  }
}

/** Accepts connections until the listener closes; refused peers and those past the limit go at once. */
async function acceptLoop(server: Server, listener: Deno.Listener): Promise<void> {
  const maxConnections = server.opts.maxConnections ?? 256;
  try {
    for await (const conn of listener) {
      // Before the next accept: the lookup tells this connection from the others.
      const peer = identify(server);
      if (!peer || !server.allowedUids.has(peer.uid)) {
        refusePeer(server, conn, peer);
        continue;
      }
      if (server.conns.size >= maxConnections) {
        server.metrics.dropped.inc({ reason: "limit" });
        server.metrics.requests.inc({ op: "connect", result: "refused" });
        closeQuietly(conn);
        continue;
      }
      const c: Connection = {
        conn,
        lines: [],
        held: 0,
        lastActive: Date.now(),
        busy: false,
        ended: false,
        gone: new AbortController(),
        wake: () => {},
      };
      server.conns.set(conn, c);
      server.metrics.open.set({}, server.conns.size);
      const h = handleConnection(server, c);
      server.handlers.add(h);
      h.finally(() => server.handlers.delete(h));
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.BadResource)) {
      server.opts.log.error("accept failed", { error: err });
    }
  }
}

/** Stops accepting, lets requests in progress finish (see NodeServer.shutdown), closes the rest. */
async function shutdown(
  server: Server,
  listener: Deno.Listener,
  accepting: Promise<void>,
  sweeper: ReturnType<typeof setInterval>,
): Promise<void> {
  clearInterval(sweeper);
  try {
    listener.close();
  } catch {
    // already closed
  }
  await accepting;
  await Deno.remove(server.opts.socketPath).catch(() => {});
  // Connections idle between requests are closed; one mid-request finishes first: a read
  // within 2 s, a whole invocation within 10 s. One still running then is cancelled (an
  // ADD rolled back), and its connection closes once that is done.
  const started = Date.now();
  while (
    (server.slots.held > 0 && Date.now() - started < 2_000) ||
    (server.cniSlots.held > 0 && Date.now() - started < 10_000)
  ) await delay(10);
  for (const c of server.conns.values()) {
    endConnection(c);
    closeQuietly(c.conn);
  }
  await Promise.allSettled([...server.handlers]);
}

/**
 * Starts serving on the unix socket. Throws (serving nothing) when the
 * socket's folder is not root's alone (see socket_dir.ts).
 */
export function serveNodeSocket(opts: NodeServerOptions): Promise<NodeServer> {
  const maxInFlight = opts.maxInFlight ?? 64;
  const server: Server = {
    opts,
    metrics: serverMetrics(opts.registry),
    defaultTimeoutMs: opts.defaultTimeoutMs ?? 5_000,
    maxInFlight,
    maxLineBytes: opts.maxLineBytes ?? MAX_LINE_BYTES,
    maxBufferedBytes: opts.maxBufferedBytes ?? 16 * 1024 * 1024,
    idleMs: opts.idleMs ?? 60_000,
    allowedUids: new Set(opts.allowedUids ?? [0]),
    peers: opts.peers ?? peerLookup(opts.socketPath),
    slots: createSemaphore(maxInFlight),
    cniSlots: createSemaphore(opts.maxCniInFlight ?? 8),
    conns: new Map(),
    handlers: new Set(),
    buffered: 0,
    refusalLogged: new Map(),
  };
  let listener: Deno.Listener;
  try {
    listener = listenOn(opts.socketPath, opts.log);
  } catch (err) {
    return Promise.reject(err);
  }
  // The listener's own socket is not a connection: the first lookup learns it.
  const accepting = acceptLoop(server, listener);
  const sweeper = setInterval(() => dropIdle(server), Math.min(5_000, server.idleMs));
  const inProcess = inProcessConnection(server);
  return Promise.resolve({
    connections: () => server.conns.size,
    inProcessConnection: () => inProcess,
    shutdown: () => shutdown(server, listener, accepting, sweeper),
  });
}
