/**
 * Errors of the NRI protocol stack: malformed bytes on the wire, and ttrpc
 * status errors carrying a google.rpc.Status code.
 *
 * @module
 */

/**
 * google.rpc status codes that ttrpc carries in `Response.status.code`
 * (the gRPC code space). Only the ones hydra sends or inspects are named.
 */
export const StatusCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** A status code number (any int32 may arrive from a peer). */
export type StatusCodeValue = number;

/**
 * Bytes that do not follow the protocol: a bad mux frame, a truncated or
 * oversized ttrpc message, or protobuf that does not decode. Decoders throw
 * only this type, whatever the input.
 */
export class ProtocolError extends Error {
  /** Which layer rejected the input. */
  readonly layer: "mux" | "ttrpc" | "protobuf";

  /** Creates a protocol error for the given layer. */
  constructor(layer: "mux" | "ttrpc" | "protobuf", message: string, options?: ErrorOptions) {
    super(`${layer}: ${message}`, options);
    this.name = "ProtocolError";
    this.layer = layer;
  }
}

/**
 * A non-OK ttrpc status: thrown by handlers to choose the code sent back, and
 * raised by the client when the peer answers with an error status.
 */
export class TtrpcStatusError extends Error {
  /** The google.rpc status code (never 0). */
  readonly code: StatusCodeValue;

  /** Creates a status error; `code` must not be OK. */
  constructor(code: StatusCodeValue, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TtrpcStatusError";
    this.code = code === StatusCode.OK ? StatusCode.UNKNOWN : code;
  }
}

/** The connection carrying a call went away before the call was answered. */
export class ConnectionClosedError extends Error {
  /** Creates the error, optionally naming why the connection closed. */
  constructor(message = "connection closed", options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionClosedError";
  }
}

/** Runs a decoder, turning anything it throws into a `ProtocolError`. */
export function decodeOrThrow<T>(
  layer: "mux" | "ttrpc" | "protobuf",
  what: string,
  decode: () => T,
): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw new ProtocolError(layer, `malformed ${what}: ${reason}`, { cause: err });
  }
}
