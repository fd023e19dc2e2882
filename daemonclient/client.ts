/**
 * The exec'd side of the node daemon's socket: connect, ask, read the
 * answer within a deadline. Kept small and cheap to load because it runs
 * in every meta-CNI and `kube-node` process; deadlines use
 * `AbortSignal.timeout`, which costs a fresh Deno process a fraction of a
 * millisecond where its first `setTimeout` costs several.
 *
 * {@link daemonKubeClient} wraps a connection as a {@link KubeClient} that
 * answers GETs from the daemon's caches, so code written against the API
 * (network resolution, node lookups) runs unchanged on either path.
 *
 * @module
 */

import { untilCancelled } from "../cni/errors.ts";
import type { KubeClient, KubeList } from "../kube/client.ts";
import { KubeApiError, KubeTransportError } from "../kube/errors.ts";
import { type DaemonRequest, type DaemonResponse, encodeLine, lineSplitter } from "./protocol.ts";

/** The longest answer line read. */
const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

/** The longest wait a timer can hold (about 24.8 days). */
const MAX_WAIT_MS = 2 ** 31 - 1;

/** An open connection to the node daemon. */
export interface DaemonConnection {
  readonly path: string;
  /** Sends one request and waits at most `timeoutMs` for its answer. */
  call(req: DaemonRequest, timeoutMs: number): Promise<DaemonResponse>;
  close(): void;
}

/** The daemon did not answer in time or the connection broke. */
export class DaemonUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DaemonUnavailableError";
  }
}

/** The daemon's own in-process connection, in the daemon's process. */
let own: DaemonConnection | undefined;

/**
 * For the daemon itself: from now on, connecting to `conn.path` from this
 * process gives `conn` (see NodeServer.inProcessConnection), so a meta-CNI
 * the daemon runs under `daemonExec` asks it by direct calls instead of
 * through its own socket.
 */
export function useInProcessDaemon(conn: DaemonConnection | undefined): void {
  own = conn;
}

/**
 * Connects to the daemon's socket. Undefined when nobody listens there
 * (no socket file, or a stale one): the caller goes to the API itself.
 * In the daemon's own process, its in-process connection (see
 * {@link useInProcessDaemon}).
 */
export async function connectNodeDaemon(path: string): Promise<DaemonConnection | undefined> {
  if (own && own.path === path) return own;
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (err) {
    if (
      err instanceof Deno.errors.NotFound || err instanceof Deno.errors.ConnectionRefused ||
      err instanceof Deno.errors.PermissionDenied
    ) return undefined;
    throw err;
  }
  // Answers carry whole objects (a Pod, a NAD): more room than requests get.
  const splitter = lineSplitter(MAX_ANSWER_BYTES);
  const lines: string[] = [];
  const buf = new Uint8Array(64 * 1024);
  let broken = false;

  async function readLine(): Promise<string> {
    while (lines.length === 0) {
      const n = await conn.read(buf);
      if (n === null) throw new DaemonUnavailableError(`daemon at ${path} closed the connection`);
      lines.push(...splitter.push(buf.subarray(0, n)));
    }
    return lines.shift()!;
  }

  function close() {
    if (broken) return;
    broken = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  }

  return {
    path,
    async call(req, timeoutMs) {
      if (broken) throw new DaemonUnavailableError(`connection to daemon at ${path} is closed`);
      // Clamped to what a timer holds: a longer wait would end at once.
      const signal = AbortSignal.timeout(Math.min(Math.max(1, Math.round(timeoutMs)), MAX_WAIT_MS));
      try {
        const line = await untilCancelled(async () => {
          await conn.write(encodeLine(req));
          return await readLine();
        }, signal);
        return JSON.parse(line) as DaemonResponse;
      } catch (err) {
        // Whatever was in flight is now out of step with the answers: drop the connection.
        close();
        if (signal.aborted) {
          throw new DaemonUnavailableError(
            `daemon at ${path} did not answer within ${Math.round(timeoutMs)} ms`,
          );
        }
        if (err instanceof DaemonUnavailableError) throw err;
        throw new DaemonUnavailableError(`daemon at ${path}: ${(err as Error).message}`);
      }
    },
    close,
  };
}

/** Turns a failed answer into the error the API client would have thrown. */
export function responseError(res: DaemonResponse, method: string, path: string): Error {
  if (res.ok) return new Error("not a failure");
  if (res.transport) return new KubeTransportError(res.transport, res.message, method, path);
  return new KubeApiError({
    status: res.status ?? 500,
    reason: res.reason ?? "InternalError",
    message: res.message,
    method,
    path,
  });
}

/**
 * A {@link KubeClient} served by the daemon: `get` reads through its caches
 * (the daemon falls back to the API server on a miss), `create` hands over
 * an Event for the daemon to record. Other calls are not available here.
 * A daemon that stops answering surfaces as a "connection" transport error,
 * which callers treat as transient (CNI code 11).
 *
 * @param opts.expectPod the pod the caller is about, with the UID it
 *   expects: the daemon waits briefly for its cache to show that pod
 */
export function daemonKubeClient(
  conn: DaemonConnection,
  timeoutMs: number,
  opts: { expectPod?: { path: string; uid: string } } = {},
): KubeClient {
  async function call<T>(req: DaemonRequest, method: string, path: string, ms?: number) {
    let res: DaemonResponse;
    try {
      res = await conn.call(req, ms ?? timeoutMs);
    } catch (err) {
      throw new KubeTransportError("connection", (err as Error).message, method, path);
    }
    if (!res.ok) throw responseError(res, method, path);
    return res.body as T;
  }
  const unsupported = (what: string) =>
    Promise.reject(new Error(`${what} is not served by the node daemon`));
  const client: KubeClient = {
    server: `unix:${conn.path}`,
    timeoutMs,
    request<T>(method: string, path: string, body?: unknown) {
      if (method === "GET") return client.get<T>(path);
      if (method === "POST") return client.create<T>(path, body);
      return unsupported(`${method} ${path}`);
    },
    get: <T>(path: string, ro?: { timeoutMs?: number }) =>
      call<T>(
        {
          op: "get",
          path,
          timeoutMs: ro?.timeoutMs ?? timeoutMs,
          ...(opts.expectPod?.path === path && opts.expectPod.uid
            ? { uid: opts.expectPod.uid }
            : {}),
        },
        "GET",
        path,
        // Room for the daemon's own answer to arrive after its deadline.
        (ro?.timeoutMs ?? timeoutMs) + 250,
      ),
    list: <T>(path: string) => unsupported(`list ${path}`) as Promise<KubeList<T>>,
    create: <T>(path: string, body: unknown) =>
      call<T>({ op: "create", path, body }, "POST", path).then(() => body as T),
    update: (path: string) => unsupported(`update ${path}`),
    patch: (path: string) => unsupported(`patch ${path}`),
    delete: (path: string) => unsupported(`delete ${path}`),
    stream: (path: string) => unsupported(`watch ${path}`) as Promise<Response>,
    close: () => conn.close(),
  };
  return client;
}
