/**
 * The NRI connection multiplexer: one unix stream socket carries several
 * logical byte streams, each chunk framed as
 * `connId u32 BE | payload length u32 BE | payload`.
 *
 * Conn 1 carries the plugin's ttrpc service (the runtime calls hydra), conn 2
 * the runtime's service (hydra calls the runtime). A frame is not a message
 * boundary: payloads of one conn concatenate into a byte stream that the
 * ttrpc layer parses. There is no open/close signalling; frames for conns
 * nobody listens on are dropped, as the runtime's own multiplexer does.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

/** Length of a mux frame header: conn id and payload length. */
export const MUX_HEADER_LENGTH = 8;

/** Conn 1: the plugin serves ttrpc (service `nri.pkg.api.v1alpha1.Plugin`). */
export const PLUGIN_SERVICE_CONN = 1;

/** Conn 2: the runtime serves ttrpc (service `nri.pkg.api.v1alpha1.Runtime`). */
export const RUNTIME_SERVICE_CONN = 2;

/**
 * Largest frame hydra writes, header included.
 *
 * The runtime reads each conn through a 4096-byte buffered reader, and its
 * mux hands a whole frame to one read call: a frame payload larger than the
 * reader's buffer fails that read with ENOMEM and loses the frame. Capping the
 * whole frame (not just the payload) at 4096 keeps 8 bytes of slack.
 */
export const MAX_OUTBOUND_FRAME = 4096;

/**
 * Default cap on an inbound frame payload. Newer runtimes split at
 * 10 + 4 MiB; the oldest ttrpc-based ones refused to write more than 16 MiB.
 * Anything larger cannot come from a runtime and ends the connection.
 */
export const DEFAULT_MAX_INBOUND_PAYLOAD = 1 << 24;

/** A decoded frame header. */
export interface MuxFrameHeader {
  /** Logical connection the payload belongs to. */
  connId: number;
  /** Payload bytes following the header. */
  length: number;
}

/** Encodes one frame: header plus payload. */
export function encodeFrame(connId: number, payload: Uint8Array): Uint8Array {
  if (!Number.isInteger(connId) || connId < 1 || connId > 0xffffffff) {
    throw new RangeError(`mux conn id ${connId} out of range`);
  }
  const frame = new Uint8Array(MUX_HEADER_LENGTH + payload.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, connId);
  view.setUint32(4, payload.length);
  frame.set(payload, MUX_HEADER_LENGTH);
  return frame;
}

/**
 * Frames one ttrpc message for conn `connId`: the message is cut into frames
 * of at most `maxFrame` bytes each (header included), and no frame carries
 * bytes of any other message. Returns all frames back to back, ready for one
 * socket write; an empty message yields no frames.
 */
export function frameMessage(
  connId: number,
  message: Uint8Array,
  maxFrame: number = MAX_OUTBOUND_FRAME,
): Uint8Array {
  const chunk = maxFrame - MUX_HEADER_LENGTH;
  if (!Number.isInteger(chunk) || chunk < 1) {
    throw new RangeError(`mux frame size ${maxFrame} leaves no room for payload`);
  }
  const frames = Math.ceil(message.length / chunk);
  const out = new Uint8Array(message.length + frames * MUX_HEADER_LENGTH);
  const view = new DataView(out.buffer);
  let at = 0;
  for (let offset = 0; offset < message.length; offset += chunk) {
    const piece = message.subarray(offset, offset + chunk);
    view.setUint32(at, connId);
    view.setUint32(at + 4, piece.length);
    out.set(piece, at + MUX_HEADER_LENGTH);
    at += MUX_HEADER_LENGTH + piece.length;
  }
  return out;
}

/** Options of a demultiplexer. */
export interface DemuxOptions {
  /** Largest accepted frame payload; a larger one is a protocol error. */
  maxPayload?: number;
}

/** Splits the trunk's byte stream into per-conn byte streams. */
export interface Demux {
  /**
   * Feeds bytes read from the trunk, in any chunking. Payload bytes reach the
   * conn's sink as soon as they arrive (frames are not message boundaries).
   * Throws `ProtocolError` on a frame that cannot come from a runtime; the
   * trunk must then be dropped, since framing cannot be recovered.
   */
  push(chunk: Uint8Array): void;
  /** Bytes of a frame header received so far but not yet complete. */
  readonly pendingHeaderBytes: number;
}

/**
 * Creates a demultiplexer delivering payload bytes to `sinks` by conn id;
 * frames for other conn ids (including the reserved id 0) are skipped
 * without buffering.
 */
export function createDemux(
  sinks: ReadonlyMap<number, (bytes: Uint8Array) => void>,
  options: DemuxOptions = {},
): Demux {
  const maxPayload = options.maxPayload ?? DEFAULT_MAX_INBOUND_PAYLOAD;
  const header = new Uint8Array(MUX_HEADER_LENGTH);
  const headerView = new DataView(header.buffer);
  let headerFill = 0;
  let remaining = 0; // payload bytes still due for the current frame
  let sink: ((bytes: Uint8Array) => void) | undefined;
  let failed: ProtocolError | undefined;

  function push(chunk: Uint8Array): void {
    if (failed) throw failed;
    let at = 0;
    while (at < chunk.length) {
      if (remaining > 0) {
        const take = Math.min(remaining, chunk.length - at);
        const piece = chunk.subarray(at, at + take);
        remaining -= take;
        at += take;
        // State is updated first so a throwing sink leaves the framing intact.
        if (sink) sink(piece);
        continue;
      }
      const take = Math.min(MUX_HEADER_LENGTH - headerFill, chunk.length - at);
      header.set(chunk.subarray(at, at + take), headerFill);
      headerFill += take;
      at += take;
      if (headerFill < MUX_HEADER_LENGTH) break;
      headerFill = 0;
      const connId = headerView.getUint32(0);
      const length = headerView.getUint32(4);
      if (length > maxPayload) {
        failed = new ProtocolError(
          "mux",
          `frame for conn ${connId} carries ${length} bytes, more than the ${maxPayload} allowed`,
        );
        throw failed;
      }
      remaining = length;
      sink = sinks.get(connId);
    }
  }

  return {
    push,
    get pendingHeaderBytes() {
      return headerFill;
    },
  };
}
