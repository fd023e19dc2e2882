/**
 * The calling side of a ttrpc conn: unary calls on odd, strictly increasing
 * stream ids, answers matched by stream id, per-call timeouts.
 *
 * @module
 */

import { ConnectionClosedError, ProtocolError, StatusCode, TtrpcStatusError } from "./errors.ts";
import {
  decodeResponse,
  encodeMessage,
  encodeRequest,
  type KeyValue,
  MessageType,
  type ParsedMessage,
  TTRPC_MAX_DATA,
} from "./ttrpc.ts";

/** Options of one call. */
export interface CallOptions {
  /**
   * Gives up after this many milliseconds (rejecting with DEADLINE_EXCEEDED)
   * and tells the server the same deadline through `timeout_nano`.
   */
  timeoutMs?: number;
  /** Request metadata. */
  metadata?: KeyValue[];
}

/** A ttrpc client bound to one conn. */
export interface TtrpcClient {
  /**
   * Calls `service`/`method` with an encoded request message and resolves
   * with the encoded response message. Rejects with `TtrpcStatusError` when
   * the server answers with an error status (or the call times out),
   * `ProtocolError` when the answer is malformed, `ConnectionClosedError`
   * when the conn goes away first.
   */
  call(
    service: string,
    method: string,
    payload: Uint8Array,
    options?: CallOptions,
  ): Promise<Uint8Array>;
  /** Feeds a message parsed from the conn (responses; others are ignored). */
  receive(message: ParsedMessage): void;
  /** Fails every pending call and refuses new ones. */
  close(reason?: Error): void;
  /** Calls still waiting for an answer. */
  readonly pending: number;
}

interface PendingCall {
  resolve(payload: Uint8Array): void;
  reject(error: Error): void;
  timer?: ReturnType<typeof setTimeout>;
  what: string;
}

/**
 * Creates a client writing encoded ttrpc messages through `send` (which
 * frames them for the conn and writes them to the trunk).
 */
export function createTtrpcClient(send: (message: Uint8Array) => Promise<void>): TtrpcClient {
  const calls = new Map<number, PendingCall>();
  let nextStreamId = 1;
  let closedBy: Error | undefined;

  function settle(streamId: number): PendingCall | undefined {
    const call = calls.get(streamId);
    if (!call) return undefined;
    calls.delete(streamId);
    if (call.timer !== undefined) clearTimeout(call.timer);
    return call;
  }

  function call(
    service: string,
    method: string,
    payload: Uint8Array,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    const what = `${service}/${method}`;
    if (closedBy) return Promise.reject(new ConnectionClosedError(`${what}: ${closedBy.message}`));
    if (nextStreamId > 0xffffffff) {
      return Promise.reject(new ConnectionClosedError(`${what}: stream ids exhausted`));
    }
    const timeoutMs = options.timeoutMs;
    const data = encodeRequest({
      service,
      method,
      payload,
      timeoutNano: timeoutMs && timeoutMs > 0 ? BigInt(Math.round(timeoutMs * 1e6)) : 0n,
      metadata: options.metadata ?? [],
    });
    if (data.length > TTRPC_MAX_DATA) {
      return Promise.reject(
        new TtrpcStatusError(
          StatusCode.RESOURCE_EXHAUSTED,
          `${what}: request of ${data.length} bytes exceeds ${TTRPC_MAX_DATA}`,
        ),
      );
    }
    const streamId = nextStreamId;
    nextStreamId += 2;
    return new Promise<Uint8Array>((resolve, reject) => {
      const pending: PendingCall = { resolve, reject, what };
      if (timeoutMs && timeoutMs > 0) {
        pending.timer = setTimeout(() => {
          settle(streamId);
          reject(
            new TtrpcStatusError(
              StatusCode.DEADLINE_EXCEEDED,
              `${what}: no answer within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
      }
      calls.set(streamId, pending);
      send(encodeMessage(streamId, MessageType.REQUEST, 0, data)).catch((err: unknown) => {
        const failed = settle(streamId);
        if (failed) {
          const reason = err instanceof Error ? err.message : String(err);
          failed.reject(
            new ConnectionClosedError(`${what}: send failed: ${reason}`, { cause: err }),
          );
        }
      });
    });
  }

  function receive(message: ParsedMessage): void {
    // A server never starts streams towards its client; other types are
    // ignored as the Go client does for messages it cannot place.
    if (message.header.type !== MessageType.RESPONSE) return;
    const pending = settle(message.header.streamId);
    if (!pending) return; // late answer to a call that timed out
    if (message.data === undefined) {
      pending.reject(
        new TtrpcStatusError(
          StatusCode.RESOURCE_EXHAUSTED,
          `${pending.what}: response of ${message.header.length} bytes exceeds ${TTRPC_MAX_DATA}`,
        ),
      );
      return;
    }
    let response;
    try {
      response = decodeResponse(message.data);
    } catch (err) {
      pending.reject(err instanceof ProtocolError ? err : new ProtocolError("ttrpc", String(err)));
      return;
    }
    const status = response.status;
    if (status && status.code !== StatusCode.OK) {
      pending.reject(new TtrpcStatusError(status.code, `${pending.what}: ${status.message}`));
      return;
    }
    pending.resolve(response.payload);
  }

  function close(reason: Error = new ConnectionClosedError()): void {
    if (!closedBy) closedBy = reason;
    for (const streamId of [...calls.keys()]) {
      const pending = settle(streamId);
      pending?.reject(
        new ConnectionClosedError(`${pending.what}: ${reason.message}`, { cause: reason }),
      );
    }
  }

  return {
    call,
    receive,
    close,
    get pending() {
      return calls.size;
    },
  };
}
