/**
 * ttrpc wire format: message framing and the `ttrpc.Request`,
 * `ttrpc.Response` and `google.rpc.Status` protobuf messages.
 *
 * A message is a 10-byte header — data length u32 BE (header excluded),
 * stream id u32 BE, type u8, flags u8 — followed by the data. Requests and
 * responses carry one protobuf message as data; a response reuses its
 * request's stream id. Client streams use odd, strictly increasing ids.
 *
 * @module
 */

import { ProtocolError, StatusCode } from "./errors.ts";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  decodeFields,
  decodeStringPair,
  readInt64,
  writeBytes,
  writeMessage,
  writeString,
} from "./pb.ts";

/** Length of a ttrpc message header. */
export const TTRPC_HEADER_LENGTH = 10;

/** Largest message data ttrpc accepts (4 MiB); larger is RESOURCE_EXHAUSTED. */
export const TTRPC_MAX_DATA = 4 << 20;

/** ttrpc message types. */
export const MessageType = {
  REQUEST: 0x01,
  RESPONSE: 0x02,
  DATA: 0x03,
} as const;

/** ttrpc header flags (streaming only; unary NRI calls use 0). */
export const MessageFlag = {
  REMOTE_CLOSED: 0x01,
  REMOTE_OPEN: 0x02,
  NO_DATA: 0x04,
} as const;

/** A ttrpc message header. */
export interface MessageHeader {
  /** Data bytes following the header. */
  length: number;
  /** Stream the message belongs to. */
  streamId: number;
  /** One of `MessageType` (other values are passed through). */
  type: number;
  /** Bit set of `MessageFlag`. */
  flags: number;
}

/**
 * One message parsed from a conn's byte stream. `data` is undefined when the
 * message exceeded `TTRPC_MAX_DATA`: its bytes were discarded, and the stream
 * id is known so the peer can be told.
 */
export interface ParsedMessage {
  header: MessageHeader;
  data?: Uint8Array;
}

/** Encodes a message: header followed by `data`. */
export function encodeMessage(
  streamId: number,
  type: number,
  flags: number,
  data: Uint8Array,
): Uint8Array {
  if (data.length > TTRPC_MAX_DATA) {
    throw new ProtocolError(
      "ttrpc",
      `message of ${data.length} bytes exceeds the ${TTRPC_MAX_DATA} byte maximum`,
    );
  }
  const out = new Uint8Array(TTRPC_HEADER_LENGTH + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  view.setUint32(4, streamId);
  view.setUint8(8, type);
  view.setUint8(9, flags);
  out.set(data, TTRPC_HEADER_LENGTH);
  return out;
}

/** Parses one conn's byte stream into ttrpc messages. */
export interface MessageParser {
  /** Feeds bytes in any chunking; complete messages go to the callback. */
  push(bytes: Uint8Array): void;
  /** Bytes of an incomplete message held so far. */
  readonly pendingBytes: number;
}

/**
 * Creates a stream parser. Oversized messages are skipped byte by byte as
 * they arrive (never buffered) and reported without data. The parser itself
 * cannot fail: any byte sequence is a valid sequence of headers and data.
 */
export function createMessageParser(
  onMessage: (message: ParsedMessage) => void,
  maxData: number = TTRPC_MAX_DATA,
): MessageParser {
  const head = new Uint8Array(TTRPC_HEADER_LENGTH);
  const headView = new DataView(head.buffer);
  let headFill = 0;
  let header: MessageHeader | undefined;
  let data: Uint8Array | undefined; // undefined while discarding an oversized message
  let dataFill = 0;

  function finish(): void {
    const message: ParsedMessage = { header: header!, data };
    header = undefined;
    data = undefined;
    dataFill = 0;
    onMessage(message);
  }

  function push(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      if (header === undefined) {
        const take = Math.min(TTRPC_HEADER_LENGTH - headFill, bytes.length - at);
        head.set(bytes.subarray(at, at + take), headFill);
        headFill += take;
        at += take;
        if (headFill < TTRPC_HEADER_LENGTH) return;
        headFill = 0;
        header = {
          length: headView.getUint32(0),
          streamId: headView.getUint32(4),
          type: headView.getUint8(8),
          flags: headView.getUint8(9),
        };
        data = header.length <= maxData ? new Uint8Array(header.length) : undefined;
        if (header.length === 0) finish();
        continue;
      }
      const take = Math.min(header.length - dataFill, bytes.length - at);
      if (data) data.set(bytes.subarray(at, at + take), dataFill);
      dataFill += take;
      at += take;
      if (dataFill === header.length) finish();
    }
  }

  return {
    push,
    get pendingBytes() {
      return header === undefined ? headFill : TTRPC_HEADER_LENGTH + dataFill;
    },
  };
}

/** A metadata pair of a request. */
export interface KeyValue {
  key: string;
  value: string;
}

/** `ttrpc.Request`. */
export interface TtrpcRequest {
  service: string;
  method: string;
  /** The encoded request message of the method. */
  payload: Uint8Array;
  /** The caller's remaining time in ns; 0 means no deadline. */
  timeoutNano: bigint;
  metadata: KeyValue[];
}

/** `google.rpc.Status`; `details` keeps each `Any` undecoded. */
export interface RpcStatus {
  code: number;
  message: string;
  details: Uint8Array[];
}

/** `ttrpc.Response`; a missing status means OK. */
export interface TtrpcResponse {
  status?: RpcStatus;
  /** The encoded response message of the method. */
  payload: Uint8Array;
}

/** Encodes a `ttrpc.Request`. */
export function encodeRequest(request: TtrpcRequest): Uint8Array {
  const w = new BinaryWriter();
  writeString(w, 1, request.service);
  writeString(w, 2, request.method);
  writeBytes(w, 3, request.payload);
  if (request.timeoutNano !== 0n) w.tag(4, WireType.Varint).int64(request.timeoutNano);
  for (const kv of request.metadata) {
    const entry = new BinaryWriter();
    writeString(entry, 1, kv.key);
    writeString(entry, 2, kv.value);
    writeMessage(w, 5, entry.finish());
  }
  return w.finish();
}

/** Decodes a `ttrpc.Request`; throws `ProtocolError` on malformed bytes. */
export function decodeRequest(bytes: Uint8Array): TtrpcRequest {
  const request: TtrpcRequest = {
    service: "",
    method: "",
    payload: new Uint8Array(0),
    timeoutNano: 0n,
    metadata: [],
  };
  decodeFields(bytes, "ttrpc request", (field, wireType, r) => {
    if (field === 4 && wireType === WireType.Varint) {
      request.timeoutNano = readInt64(r);
      return true;
    }
    if (wireType !== WireType.LengthDelimited) return false;
    if (field === 1) request.service = r.string();
    else if (field === 2) request.method = r.string();
    else if (field === 3) request.payload = r.bytes();
    else if (field === 5) {
      const [key, value] = decodeStringPair(r.bytes(), "ttrpc metadata");
      request.metadata.push({ key, value });
    } else return false;
    return true;
  });
  return request;
}

/** Encodes a `google.rpc.Status`. */
export function encodeStatus(status: RpcStatus): Uint8Array {
  const w = new BinaryWriter();
  if (status.code !== 0) w.tag(1, WireType.Varint).int32(status.code);
  writeString(w, 2, status.message);
  for (const detail of status.details) writeMessage(w, 3, detail);
  return w.finish();
}

/** Decodes a `google.rpc.Status`. */
export function decodeStatus(bytes: Uint8Array): RpcStatus {
  const status: RpcStatus = { code: StatusCode.OK, message: "", details: [] };
  decodeFields(bytes, "rpc status", (field, wireType, r) => {
    if (field === 1 && wireType === WireType.Varint) status.code = r.int32();
    else if (field === 2 && wireType === WireType.LengthDelimited) status.message = r.string();
    else if (field === 3 && wireType === WireType.LengthDelimited) status.details.push(r.bytes());
    else return false;
    return true;
  });
  return status;
}

/** Encodes a `ttrpc.Response`; an OK reply leaves the status out. */
export function encodeResponse(response: TtrpcResponse): Uint8Array {
  const w = new BinaryWriter();
  if (response.status) writeMessage(w, 1, encodeStatus(response.status));
  writeBytes(w, 2, response.payload);
  return w.finish();
}

/** Decodes a `ttrpc.Response`; throws `ProtocolError` on malformed bytes. */
export function decodeResponse(bytes: Uint8Array): TtrpcResponse {
  const response: TtrpcResponse = { payload: new Uint8Array(0) };
  decodeFields(bytes, "ttrpc response", (field, wireType, r) => {
    if (wireType !== WireType.LengthDelimited) return false;
    if (field === 1) response.status = decodeStatus(r.bytes());
    else if (field === 2) response.payload = r.bytes();
    else return false;
    return true;
  });
  return response;
}
