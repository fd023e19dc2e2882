/**
 * The serving side of a ttrpc conn: requests dispatched by service and
 * method to unary handlers, answers written on the request's stream id.
 * Misbehaving input is answered the way the Go ttrpc server answers it, so
 * the caller sees a status instead of silence.
 *
 * @module
 */

import { ProtocolError, StatusCode, TtrpcStatusError } from "./errors.ts";
import {
  decodeRequest,
  encodeMessage,
  encodeResponse,
  type KeyValue,
  MessageType,
  type ParsedMessage,
  type RpcStatus,
  TTRPC_MAX_DATA,
  type TtrpcRequest,
} from "./ttrpc.ts";

/** What a handler learns about the request it serves. */
export interface RequestContext {
  /** Stream id of the request (the answer reuses it). */
  streamId: number;
  /** Requested service. */
  service: string;
  /** Requested method. */
  method: string;
  /** `performance.now()` when the request was parsed. */
  receivedAt: number;
  /**
   * `performance.now()` at which the caller stops waiting, from the request's
   * `timeout_nano`; undefined when the caller sent none.
   */
  deadline?: number;
  /** Request metadata (containerd 2.x adds tracing entries). */
  metadata: KeyValue[];
}

/**
 * Serves one method: gets the encoded request message, returns the encoded
 * response message. Throw `TtrpcStatusError` to pick the status code; any
 * other error is answered with UNKNOWN and its message (`ProtocolError` with
 * INVALID_ARGUMENT).
 */
export type UnaryHandler = (payload: Uint8Array, context: RequestContext) => Promise<Uint8Array>;

/** Handlers by service name, then method name. */
export type ServiceTable = ReadonlyMap<string, ReadonlyMap<string, UnaryHandler>>;

/** A ttrpc server bound to one conn. */
export interface TtrpcServer {
  /** Feeds a message parsed from the conn. */
  receive(message: ParsedMessage): void;
  /** Stops answering; handlers still running have their answers dropped. */
  close(): void;
  /** Requests being handled. */
  readonly inflight: number;
}

/** Options of a server. */
export interface TtrpcServerOptions {
  /** Told about every request answered with an error status. */
  onErrorStatus?: (status: RpcStatus, request: Partial<RequestContext>) => void;
}

/** The status a thrown value is answered with. */
export function statusFromError(err: unknown): RpcStatus {
  if (err instanceof TtrpcStatusError) return { code: err.code, message: err.message, details: [] };
  if (err instanceof ProtocolError) {
    return { code: StatusCode.INVALID_ARGUMENT, message: err.message, details: [] };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: StatusCode.UNKNOWN, message, details: [] };
}

/**
 * Creates a server writing encoded ttrpc messages through `send` (which
 * frames them for the conn and writes them to the trunk).
 */
export function createTtrpcServer(
  send: (message: Uint8Array) => Promise<void>,
  services: ServiceTable,
  options: TtrpcServerOptions = {},
): TtrpcServer {
  let lastStreamId = 0;
  let inflight = 0;
  let closed = false;

  function respond(streamId: number, payload: Uint8Array, status?: RpcStatus): void {
    if (closed) return;
    let data = encodeResponse({ status, payload });
    if (data.length > TTRPC_MAX_DATA) {
      status = {
        code: StatusCode.RESOURCE_EXHAUSTED,
        message: `response of ${data.length} bytes exceeds ${TTRPC_MAX_DATA}`,
        details: [],
      };
      data = encodeResponse({ status, payload: new Uint8Array(0) });
    }
    // A failed write means the trunk is going down; the trunk reports that.
    send(encodeMessage(streamId, MessageType.RESPONSE, 0, data)).catch(() => {});
  }

  function fail(streamId: number, status: RpcStatus, request: Partial<RequestContext>): void {
    options.onErrorStatus?.(status, { ...request, streamId });
    respond(streamId, new Uint8Array(0), status);
  }

  function error(code: number, message: string): RpcStatus {
    return { code, message, details: [] };
  }

  function lookup(request: TtrpcRequest): UnaryHandler | RpcStatus {
    const service = services.get(request.service);
    if (!service) return error(StatusCode.UNIMPLEMENTED, `service ${request.service}`);
    const handler = service.get(request.method);
    if (!handler) return error(StatusCode.UNIMPLEMENTED, `method ${request.method}`);
    return handler;
  }

  function receive(message: ParsedMessage): void {
    if (closed) return;
    const { streamId, type } = message.header;
    if (message.data === undefined) {
      fail(
        streamId,
        error(
          StatusCode.RESOURCE_EXHAUSTED,
          `message length ${message.header.length} exceeds maximum message size of ${TTRPC_MAX_DATA}`,
        ),
        {},
      );
      return;
    }
    if (streamId % 2 !== 1) {
      const msg = "StreamID must be odd for client initiated streams";
      fail(streamId, error(StatusCode.INVALID_ARGUMENT, msg), {});
      return;
    }
    if (type === MessageType.DATA) {
      // NRI has no streaming methods, so no stream is ever open for data.
      fail(streamId, error(StatusCode.INVALID_ARGUMENT, "StreamID is no longer active"), {});
      return;
    }
    if (type !== MessageType.REQUEST) return; // unknown types are ignored for compatibility
    if (streamId <= lastStreamId) {
      const msg = "StreamID cannot be re-used and must increment";
      fail(streamId, error(StatusCode.INVALID_ARGUMENT, msg), {});
      return;
    }
    lastStreamId = streamId;

    let request: TtrpcRequest;
    try {
      request = decodeRequest(message.data);
    } catch (err) {
      const msg = `unmarshal request error: ${err instanceof Error ? err.message : err}`;
      fail(streamId, error(StatusCode.INVALID_ARGUMENT, msg), {});
      return;
    }
    const receivedAt = performance.now();
    const context: RequestContext = {
      streamId,
      service: request.service,
      method: request.method,
      receivedAt,
      deadline: deadlineOf(request.timeoutNano, receivedAt),
      metadata: request.metadata,
    };
    const handler = lookup(request);
    if (typeof handler !== "function") {
      fail(streamId, handler, context);
      return;
    }
    inflight++;
    let answer: Promise<Uint8Array>;
    try {
      answer = handler(request.payload, context);
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (payload) => respond(streamId, payload),
      (err: unknown) => fail(streamId, statusFromError(err), context),
    ).finally(() => inflight--);
  }

  return {
    receive,
    close() {
      closed = true;
    },
    get inflight() {
      return inflight;
    },
  };
}

/** Turns `timeout_nano` into a deadline; 0 means none, negative means already due. */
function deadlineOf(timeoutNano: bigint, receivedAt: number): number | undefined {
  if (timeoutNano === 0n) return undefined;
  if (timeoutNano < 0n) return receivedAt;
  return receivedAt + Number(timeoutNano) / 1e6;
}
