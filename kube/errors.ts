/**
 * Failures of a Kubernetes API call, split the way callers must act on them:
 * the API answered with an error status ({@link KubeApiError}), or no answer
 * came ({@link KubeTransportError}). {@link isTransient} says whether trying
 * again later can help, which the meta-CNI turns into CNI code 11.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";

/** The API server answered with a non-2xx status. */
export class KubeApiError extends Error {
  /** HTTP status code. */
  readonly status: number;
  /** The Status object's `reason` ("NotFound", "Conflict", "Expired", ...), or the HTTP status text. */
  readonly reason: string;
  readonly method: string;
  readonly path: string;
  /** Seconds the server asked to wait (Retry-After), when it said. */
  readonly retryAfterSeconds?: number;

  constructor(
    init: {
      status: number;
      reason: string;
      message: string;
      method: string;
      path: string;
      retryAfterSeconds?: number;
    },
  ) {
    super(init.message);
    this.name = "KubeApiError";
    this.status = init.status;
    this.reason = init.reason;
    this.method = init.method;
    this.path = init.path;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

/** Why no answer came from the API server. */
export type TransportFailure =
  /** The per-request deadline passed. */
  | "timeout"
  /** The caller's signal aborted the request. */
  | "aborted"
  /** Refused, reset, closed or unreachable: the server is down or restarting. */
  | "connection"
  /** The TLS handshake failed on certificates (wrong CA, expired cert). */
  | "tls"
  /** The server's address did not resolve. */
  | "dns"
  /** Anything else (malformed response, ...). */
  | "other";

/** No usable answer came from the API server. */
export class KubeTransportError extends Error {
  readonly failure: TransportFailure;
  readonly method: string;
  readonly path: string;

  constructor(failure: TransportFailure, message: string, method: string, path: string) {
    super(message);
    this.name = "KubeTransportError";
    this.failure = failure;
    this.method = method;
    this.path = path;
  }
}

/** The innermost message of a fetch failure (Deno wraps the real one in `cause`). */
function rootMessage(err: unknown): string {
  let e: unknown = err;
  let msg = "";
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    msg = e.message;
    e = (e as { cause?: unknown }).cause;
  }
  return msg || String(err);
}

/**
 * Classifies whatever fetch (or reading its body) threw.
 *
 * @param timedOut whether the request's own deadline fired
 */
export function transportError(
  err: unknown,
  method: string,
  path: string,
  timedOut: boolean,
  timeoutMs: number,
): KubeTransportError {
  if (timedOut) {
    return new KubeTransportError(
      "timeout",
      `${method} ${path}: no answer from the API server within ${timeoutMs} ms`,
      method,
      path,
    );
  }
  const msg = rootMessage(err);
  if (err instanceof DOMException && err.name === "AbortError") {
    return new KubeTransportError("aborted", `${method} ${path}: aborted`, method, path);
  }
  let failure: TransportFailure = "other";
  if (/certificate|UnknownIssuer|BadSignature|NotValidForName/i.test(msg)) {
    failure = "tls";
  } else if (/dns error|failed to lookup/i.test(msg)) {
    failure = /temporary failure/i.test(msg) ? "connection" : "dns";
  } else if (
    /refused|reset|closed|broken pipe|unreachable|no route|timed out|handshake eof|eof|connect error|body from connection|unexpected end/i
      .test(msg)
  ) {
    failure = "connection";
  }
  return new KubeTransportError(failure, `${method} ${path}: ${msg}`, method, path);
}

/**
 * True when trying again later may succeed: the server was unreachable, slow,
 * overloaded (429) or failing (5xx). Not for a caller's own abort, bad
 * certificates, or 4xx answers.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof KubeTransportError) {
    return err.failure === "timeout" || err.failure === "connection";
  }
  if (err instanceof KubeApiError) return err.status === 429 || err.status >= 500;
  return false;
}

/** The object does not exist (404). */
export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404;
}

/** An optimistic-concurrency or precondition conflict (409). */
export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 409;
}

/** The object to create exists already (409 AlreadyExists). */
export function isAlreadyExists(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 409 && err.reason === "AlreadyExists";
}

/** The resourceVersion asked for is too old (410 Gone / reason Expired): relist. */
export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError &&
    (err.status === 410 || err.reason === "Expired" || err.reason === "Gone");
}

/**
 * A CNI error for a failed API call: code 11 (try again later) when the
 * failure is transient, else `fallbackCode`.
 *
 * @param what what was being done, e.g. `get pod ns/name`
 */
export function kubeCniError(
  err: unknown,
  what: string,
  fallbackCode: number = ErrorCode.Internal,
): CniError {
  if (err instanceof CniError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new CniError(isTransient(err) ? ErrorCode.TryAgainLater : fallbackCode, `${what}: ${msg}`);
}
