/**
 * A small Kubernetes REST client on Deno's fetch: JSON in and out, a
 * deadline on every request, typed errors (see `errors.ts`). It loads in a
 * few milliseconds, which matters for a CNI plugin exec'd once per pod.
 *
 * Paths are API paths such as `/api/v1/namespaces/ns/pods/name`; `paths.ts`
 * style helpers live in `objects.ts`.
 *
 * @module
 */

import { createBackoff, delay } from "../pkg/async.ts";
import { isTransient, KubeApiError, KubeTransportError, transportError } from "./errors.ts";
import type { KubeConnection } from "./kubeconfig.ts";

/** Query parameters; undefined values are left out. */
export type Query = Record<string, string | number | boolean | undefined>;

/** Options of one request. */
export interface RequestOptions {
  query?: Query;
  /** Deadline for the whole request including the body; the client's default when omitted. */
  timeoutMs?: number;
  /** Aborts the request early (reported as a "aborted" transport error). */
  signal?: AbortSignal;
}

/** The patch flavours the API server takes. */
export type PatchType = "merge" | "strategic" | "json";

const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: "application/merge-patch+json",
  strategic: "application/strategic-merge-patch+json",
  json: "application/json-patch+json",
};

/** A list response: items plus the list's resourceVersion and continue token. */
export interface KubeList<T> {
  apiVersion?: string;
  kind?: string;
  metadata: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  items: T[];
  /** Length of the answer's JSON text (set by this client, not sent by the server). */
  bytes?: number;
}

/** Options of a list call. */
export interface ListOptions extends RequestOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
}

/** A connected client. Close it when done (it holds a TLS client). */
export interface KubeClient {
  /** The API server's base URL. */
  readonly server: string;
  /** Default per-request deadline, in ms. */
  readonly timeoutMs: number;
  /** Sends a request and decodes the JSON answer; throws KubeApiError / KubeTransportError. */
  request<T>(
    method: string,
    path: string,
    body?: unknown,
    opts?: RequestOptions & {
      contentType?: string;
    },
  ): Promise<T>;
  get<T>(path: string, opts?: RequestOptions): Promise<T>;
  list<T>(path: string, opts?: ListOptions): Promise<KubeList<T>>;
  create<T>(path: string, body: unknown, opts?: RequestOptions): Promise<T>;
  update<T>(path: string, body: unknown, opts?: RequestOptions): Promise<T>;
  patch<T>(path: string, body: unknown, type?: PatchType, opts?: RequestOptions): Promise<T>;
  delete<T>(path: string, opts?: RequestOptions): Promise<T>;
  /**
   * Opens a streaming GET (for watches) and returns the response once its
   * headers arrived; the deadline covers only that, `signal` ends the stream.
   * Non-2xx answers throw KubeApiError.
   */
  stream(path: string, opts: RequestOptions & { signal: AbortSignal }): Promise<Response>;
  /** Releases the TLS client. */
  close(): void;
}

/** Options of {@link createKubeClient}. */
export interface ClientOptions {
  /** Default per-request deadline; 10 s. */
  timeoutMs?: number;
  userAgent?: string;
}

function buildUrl(server: string, path: string, query?: Query): string {
  let url = server + path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    if (qs) url += (path.includes("?") ? "&" : "?") + qs;
  }
  return url;
}

/** Builds the error for a non-2xx answer from its Status body when there is one. */
async function apiError(res: Response, method: string, path: string): Promise<KubeApiError> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // The status line alone still says enough.
  }
  let reason = res.statusText || `HTTP ${res.status}`;
  let message = text.trim() || reason;
  try {
    const status = JSON.parse(text) as { kind?: string; reason?: string; message?: string };
    if (status && status.kind === "Status") {
      if (status.reason) reason = status.reason;
      if (status.message) message = status.message;
    }
  } catch {
    // Not a Status object: keep the raw text.
  }
  const retry = Number(res.headers.get("retry-after"));
  return new KubeApiError({
    status: res.status,
    reason,
    message: `${method} ${path}: ${res.status} ${reason}: ${message}`,
    method,
    path,
    retryAfterSeconds: Number.isFinite(retry) && retry > 0 ? retry : undefined,
  });
}

/** One client's connection settings, shared by the steps below. */
interface Conn {
  conn: KubeConnection;
  timeoutMs: number;
  userAgent: string;
  httpClient?: Deno.HttpClient;
}

/** A request sent: its response, and the deadline still running until `finish`. */
interface Sent {
  res: Response;
  finish: () => void;
  timedOut: () => boolean;
}

/** The headers of a request: JSON, hydra's user agent, the bearer token if any. */
async function requestHeaders(c: Conn, contentType: string | undefined) {
  const headers: Record<string, string> = {
    "Accept": "application/json",
    "User-Agent": c.userAgent,
  };
  if (contentType) headers["Content-Type"] = contentType;
  const token = await c.conn.tokenSource?.token();
  if (token) headers["Authorization"] = `Bearer ${token}`;
  return headers;
}

/**
 * Runs fetch under a deadline that keeps running until the caller calls
 * `finish`; retries once after a 401 when the token may have rotated.
 */
async function send(
  c: Conn,
  method: string,
  path: string,
  body: string | undefined,
  contentType: string | undefined,
  ro: RequestOptions,
): Promise<Sent> {
  const ms = ro.timeoutMs ?? c.timeoutMs;
  for (let attempt = 0;; attempt++) {
    const deadline = new AbortController();
    let fired = false;
    const timer = setTimeout(() => {
      fired = true;
      deadline.abort(new DOMException("deadline", "TimeoutError"));
    }, ms);
    const signal = ro.signal ? AbortSignal.any([deadline.signal, ro.signal]) : deadline.signal;
    try {
      const headers = await requestHeaders(c, contentType);
      const res = await fetch(buildUrl(c.conn.server, path, ro.query), {
        method,
        headers,
        body,
        signal,
        client: c.httpClient,
      });
      if (res.status === 401 && attempt === 0 && c.conn.tokenSource) {
        await res.body?.cancel();
        clearTimeout(timer);
        c.conn.tokenSource.invalidate();
        continue;
      }
      return { res, finish: () => clearTimeout(timer), timedOut: () => fired };
    } catch (err) {
      clearTimeout(timer);
      if (err instanceof KubeApiError || err instanceof KubeTransportError) throw err;
      if (err instanceof Error && err.name === "KubeconfigError") throw err;
      throw transportError(err, method, path, fired, ms);
    }
  }
}

/** Sends a request; the decoded answer and the length of its text. */
async function exchange<T>(
  c: Conn,
  method: string,
  path: string,
  body?: unknown,
  ro: RequestOptions & { contentType?: string } = {},
): Promise<{ value: T; bytes: number }> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const contentType = payload === undefined ? undefined : ro.contentType ?? "application/json";
  const { res, finish, timedOut } = await send(c, method, path, payload, contentType, ro);
  try {
    if (!res.ok) throw await apiError(res, method, path);
    const text = await res.text();
    return { value: (text === "" ? undefined : JSON.parse(text)) as T, bytes: text.length };
  } catch (err) {
    if (err instanceof KubeApiError) throw err;
    if (err instanceof SyntaxError) {
      throw new KubeTransportError("other", `${method} ${path}: answer is not JSON`, method, path);
    }
    throw transportError(err, method, path, timedOut(), ro.timeoutMs ?? c.timeoutMs);
  } finally {
    finish();
  }
}

/** A page of a collection, its size in bytes recorded (for paging by size). */
async function listPage<T>(c: Conn, path: string, lo: ListOptions): Promise<KubeList<T>> {
  const { value, bytes } = await exchange<KubeList<T>>(c, "GET", path, undefined, {
    ...lo,
    query: {
      ...lo.query,
      labelSelector: lo.labelSelector,
      fieldSelector: lo.fieldSelector,
      limit: lo.limit,
      continue: lo.continue,
      resourceVersion: lo.resourceVersion,
    },
  });
  if (value && typeof value === "object") value.bytes = bytes;
  return value;
}

/** A streaming GET (a watch): the response, once its status says it is one. */
async function openStream(c: Conn, path: string, ro: RequestOptions): Promise<Response> {
  const { res, finish } = await send(c, "GET", path, undefined, undefined, ro);
  try {
    if (!res.ok) throw await apiError(res, "GET", path);
  } finally {
    finish();
  }
  return res;
}

/** Creates a client for one API server connection. */
export function createKubeClient(conn: KubeConnection, opts: ClientOptions = {}): KubeClient {
  const c: Conn = {
    conn,
    timeoutMs: opts.timeoutMs ?? 10_000,
    userAgent: opts.userAgent ?? "hydra",
    httpClient: conn.server.startsWith("https:")
      ? Deno.createHttpClient({
        caCerts: conn.caCerts,
        ...(conn.clientCert ? { cert: conn.clientCert, key: conn.clientKey } : {}),
      })
      : undefined,
  };
  const request = async <T>(
    method: string,
    path: string,
    body?: unknown,
    ro: RequestOptions & { contentType?: string } = {},
  ): Promise<T> => (await exchange<T>(c, method, path, body, ro)).value;
  return {
    server: conn.server,
    timeoutMs: c.timeoutMs,
    request,
    get: (path, ro) => request("GET", path, undefined, ro),
    list: (path, lo = {}) => listPage(c, path, lo),
    create: (path, body, ro) => request("POST", path, body, ro),
    update: (path, body, ro) => request("PUT", path, body, ro),
    patch: (path, body, type = "merge", ro = {}) =>
      request("PATCH", path, body, { ...ro, contentType: PATCH_CONTENT_TYPE[type] }),
    delete: (path, ro) => request("DELETE", path, undefined, ro),
    stream: (path, ro) => openStream(c, path, ro ?? {}),
    close() {
      c.httpClient?.close();
    },
  };
}

/** Options of {@link retryTransient}. */
export interface RetryOptions {
  /** Give up (throwing the last error) once this much time has passed; required to stay bounded. */
  deadlineMs: number;
  /** First pause between attempts; doubles up to `maxDelayMs`. 100 ms. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs `fn` until it succeeds, retrying only transient failures (see
 * `isTransient`) with exponential backoff, and never past the deadline.
 * `fn` gets the time left so it can shorten its own request deadline. An
 * abort of `signal` ends a pause at once and throws the last failure.
 */
export async function retryTransient<T>(
  fn: (remainingMs: number) => Promise<T>,
  opts: RetryOptions,
): Promise<T> {
  const end = Date.now() + opts.deadlineMs;
  const backoff = createBackoff({
    initialMs: opts.initialDelayMs ?? 100,
    maxMs: opts.maxDelayMs ?? 1_000,
  });
  for (;;) {
    const remaining = end - Date.now();
    try {
      return await fn(Math.max(remaining, 1));
    } catch (err) {
      const pause = backoff.next();
      if (!isTransient(err) || end - Date.now() <= pause || opts.signal?.aborted) throw err;
      await delay(pause, opts.signal);
      if (opts.signal?.aborted) throw err;
    }
  }
}
