/**
 * Protobuf helpers for the kubelet's local gRPC APIs (plugin registration,
 * DRA, pod resources), on the wire module of @bufbuild/protobuf. Decoding
 * follows proto3 as the kubelet's Go code does: unknown fields are skipped,
 * a known field arriving with another wire type counts as unknown, the last
 * scalar wins and repeated fields append.
 *
 * @module
 */

import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

export { BinaryReader, BinaryWriter, WireType };

/** Bytes that are not the message they should be. */
export class WireError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WireError";
  }
}

/** Called per field; true when it consumed the value, false to skip it. */
export type FieldVisitor = (field: number, wireType: WireType, reader: BinaryReader) => boolean;

/** Walks the fields of one message; throws {@link WireError} on malformed bytes. */
export function decodeFields(bytes: Uint8Array, what: string, visit: FieldVisitor): void {
  try {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (visit(field, wireType, reader)) continue;
      if (wireType === WireType.Varint) reader.uint64();
      else reader.skip(wireType, field);
    }
    if (reader.pos !== reader.len) throw new RangeError("premature EOF");
  } catch (err) {
    if (err instanceof WireError) throw err;
    throw new WireError(`malformed ${what}: ${err instanceof Error ? err.message : err}`, {
      cause: err,
    });
  }
}

/** Decodes a message whose fields are all strings (repeated ones collected in lists). */
export function decodeStrings(
  bytes: Uint8Array,
  what: string,
  fields: Record<number, string>,
  repeated: readonly number[] = [],
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const n of repeated) out[fields[n]] = [];
  decodeFields(bytes, what, (field, wireType, r) => {
    const name = fields[field];
    if (name === undefined || wireType !== WireType.LengthDelimited) return false;
    if (repeated.includes(field)) (out[name] as string[]).push(r.string());
    else out[name] = r.string();
    return true;
  });
  return out;
}

/** Writes a string field unless empty (proto3 default). */
export function writeString(w: BinaryWriter, field: number, value: string | undefined): void {
  if (value) w.tag(field, WireType.LengthDelimited).string(value);
}

/** Writes every string of a repeated field. */
export function writeStrings(w: BinaryWriter, field: number, values: readonly string[]): void {
  for (const v of values) w.tag(field, WireType.LengthDelimited).string(v);
}

/** Writes a nested message (present even when empty). */
export function writeMessage(w: BinaryWriter, field: number, encoded: Uint8Array): void {
  w.tag(field, WireType.LengthDelimited).bytes(encoded);
}

/** Writes a bool field unless false. */
export function writeBool(w: BinaryWriter, field: number, value: boolean): void {
  if (value) w.tag(field, WireType.Varint).bool(true);
}

/** Encodes with a fresh writer. */
export function encode(fill: (w: BinaryWriter) => void): Uint8Array {
  const w = new BinaryWriter();
  fill(w);
  return w.finish();
}
