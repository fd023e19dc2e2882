/**
 * A deliberately small NRI client for the infrastructure smoke test: it registers as an external
 * plugin, answers Configure and Synchronize, and records what the runtime sent. It proves that
 * containerd accepts NRI connections on the private socket; the product's NRI plugin is elsewhere.
 *
 * Wire layers: unix stream → mux frames (conn id u32 BE, length u32 BE) → per-conn ttrpc byte
 * streams (length u32, stream id u32, type u8, flags u8; all big-endian) → protobuf messages.
 *
 * @module
 */

import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

/** Mux connection on which the plugin serves the `Plugin` service. */
const PLUGIN_CONN = 1;
/** Mux connection on which the runtime serves the `Runtime` service. */
const RUNTIME_CONN = 2;
const TTRPC_REQUEST = 1;
const TTRPC_RESPONSE = 2;

/** A decoded ttrpc message. */
export interface TtrpcMessage {
  conn: number;
  streamId: number;
  type: number;
  /** For requests. */
  service?: string;
  method?: string;
  /** Request or response payload. */
  payload: Uint8Array;
  /** For responses: status code (0 when absent). */
  code?: number;
  statusMessage?: string;
}

/** What the handshake saw. */
export interface HandshakeResult {
  /** Every message received, in order. */
  received: TtrpcMessage[];
  /** ConfigureRequest.runtime_name. */
  runtimeName: string;
  /** ConfigureRequest.runtime_version. */
  runtimeVersion: string;
  /** Status code of the RegisterPlugin reply. */
  registerCode: number;
  /** The still-open connection; close it when done. */
  conn: Deno.UnixConn;
  /** Waits for the next message from the runtime. */
  next(): Promise<TtrpcMessage>;
  /** Answers a request from the runtime with a payload, or with an error status code. */
  reply(request: TtrpcMessage, answer: { payload?: Uint8Array; code?: number }): Promise<void>;
}

function ttrpcFrame(conn: number, streamId: number, type: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + 10 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, conn);
  view.setUint32(4, 10 + data.length);
  view.setUint32(8, data.length);
  view.setUint32(12, streamId);
  view.setUint8(16, type);
  view.setUint8(17, 0);
  out.set(data, 18);
  return out;
}

function encodeRequest(service: string, method: string, payload: Uint8Array): Uint8Array {
  return new BinaryWriter()
    .tag(1, WireType.LengthDelimited).string(service)
    .tag(2, WireType.LengthDelimited).string(method)
    .tag(3, WireType.LengthDelimited).bytes(payload)
    .tag(4, WireType.Varint).int64(5_000_000_000)
    .finish();
}

function encodeResponse(payload: Uint8Array, code = 0): Uint8Array {
  const writer = new BinaryWriter();
  if (code !== 0) {
    writer.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int32(code).join();
  }
  return writer.tag(2, WireType.LengthDelimited).bytes(payload).finish();
}

/** Decodes the string fields of a message as a field-number map (last one wins). */
function stringFields(data: Uint8Array): Map<number, string> {
  const out = new Map<number, string>();
  const reader = new BinaryReader(data);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (wireType === WireType.LengthDelimited) {
      out.set(field, new TextDecoder().decode(reader.bytes()));
    } else {
      reader.skip(wireType);
    }
  }
  return out;
}

function decodeMessage(conn: number, streamId: number, type: number, data: Uint8Array) {
  const msg: TtrpcMessage = { conn, streamId, type, payload: new Uint8Array() };
  const reader = new BinaryReader(data);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (type === TTRPC_REQUEST && field === 1) msg.service = reader.string();
    else if (type === TTRPC_REQUEST && field === 2) msg.method = reader.string();
    else if (type === TTRPC_REQUEST && field === 3) msg.payload = reader.bytes();
    else if (type === TTRPC_RESPONSE && field === 1) {
      const status = new BinaryReader(reader.bytes());
      while (status.pos < status.len) {
        const [f, w] = status.tag();
        if (f === 1) msg.code = status.int32();
        else if (f === 2) msg.statusMessage = status.string();
        else status.skip(w);
      }
    } else if (type === TTRPC_RESPONSE && field === 2) msg.payload = reader.bytes();
    else reader.skip(wireType);
  }
  if (type === TTRPC_RESPONSE) msg.code ??= 0;
  return msg;
}

/** Splits a byte stream into mux frames and then ttrpc messages. */
function messageReader(conn: Deno.UnixConn): () => Promise<TtrpcMessage> {
  let raw = new Uint8Array();
  const streams = new Map<number, Uint8Array>();
  const queue: TtrpcMessage[] = [];
  const concat = (a: Uint8Array, b: Uint8Array) => {
    const out = new Uint8Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  };
  const drain = () => {
    while (raw.length >= 8) {
      const view = new DataView(raw.buffer, raw.byteOffset);
      const id = view.getUint32(0);
      const len = view.getUint32(4);
      if (raw.length < 8 + len) break;
      streams.set(id, concat(streams.get(id) ?? new Uint8Array(), raw.slice(8, 8 + len)));
      raw = raw.slice(8 + len);
    }
    for (const [id, data] of streams) {
      let rest = data;
      while (rest.length >= 10) {
        const view = new DataView(rest.buffer, rest.byteOffset);
        const len = view.getUint32(0);
        if (rest.length < 10 + len) break;
        queue.push(
          decodeMessage(id, view.getUint32(4), view.getUint8(8), rest.slice(10, 10 + len)),
        );
        rest = rest.slice(10 + len);
      }
      streams.set(id, rest);
    }
  };
  return async () => {
    const buf = new Uint8Array(65536);
    while (queue.length === 0) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("NRI socket closed by the runtime");
      raw = concat(raw, buf.subarray(0, n));
      drain();
    }
    return queue.shift()!;
  };
}

/**
 * Connects to an NRI socket, registers as plugin `<index>-<name>`, subscribes to pod sandbox
 * events (run, stop, remove) and answers Configure and Synchronize. Resolves once Synchronize has
 * been answered and the RegisterPlugin reply has arrived.
 */
export async function nriHandshake(
  socketPath: string,
  name: string,
  index = "50",
): Promise<HandshakeResult> {
  const conn = await Deno.connect({ transport: "unix", path: socketPath });
  try {
    const next = messageReader(conn);
    const register = new BinaryWriter()
      .tag(1, WireType.LengthDelimited).string(name)
      .tag(2, WireType.LengthDelimited).string(index)
      .finish();
    await conn.write(ttrpcFrame(
      RUNTIME_CONN,
      1,
      TTRPC_REQUEST,
      encodeRequest("nri.pkg.api.v1alpha1.Runtime", "RegisterPlugin", register),
    ));
    const received: TtrpcMessage[] = [];
    let configure: Map<number, string> | undefined;
    let registerCode: number | undefined;
    let synchronized = false;
    while (registerCode === undefined || !synchronized) {
      const msg = await next();
      received.push(msg);
      if (msg.conn === RUNTIME_CONN && msg.type === TTRPC_RESPONSE && msg.streamId === 1) {
        registerCode = msg.code ?? 0;
      } else if (msg.conn === PLUGIN_CONN && msg.type === TTRPC_REQUEST) {
        let reply = new Uint8Array();
        if (msg.method === "Configure") {
          configure = stringFields(msg.payload);
          // ConfigureResponse.events (field 2) = RUN | STOP | REMOVE_POD_SANDBOX.
          reply = new BinaryWriter().tag(2, WireType.Varint).int32(0x7).finish();
        } else if (msg.method === "Synchronize") {
          synchronized = true;
        }
        await conn.write(
          ttrpcFrame(PLUGIN_CONN, msg.streamId, TTRPC_RESPONSE, encodeResponse(reply)),
        );
      }
    }
    if (!configure) throw new Error("Synchronize arrived without Configure");
    return {
      received,
      runtimeName: configure.get(2) ?? "",
      runtimeVersion: configure.get(3) ?? "",
      registerCode,
      conn,
      next,
      async reply(request, answer) {
        await conn.write(ttrpcFrame(
          request.conn,
          request.streamId,
          TTRPC_RESPONSE,
          encodeResponse(answer.payload ?? new Uint8Array(), answer.code),
        ));
      },
    };
  } catch (err) {
    conn.close();
    throw err;
  }
}
