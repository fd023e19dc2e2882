/**
 * Small protobuf helpers shared by the ttrpc and NRI message codecs, built on
 * the wire module of @bufbuild/protobuf. Decoding follows proto3 rules the
 * runtime's Go code follows too: unknown fields of any wire type are skipped,
 * a known field number arriving with an unexpected wire type is treated as
 * unknown, the last occurrence of a scalar wins, and repeated fields append.
 *
 * @module
 */

import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { decodeOrThrow } from "./errors.ts";

/**
 * Called for each field of a message. Returns true when it consumed the
 * field's value from `reader`; false leaves the value to be skipped.
 */
export type FieldVisitor = (field: number, wireType: WireType, reader: BinaryReader) => boolean;

/**
 * Walks the fields of one encoded message. Throws `ProtocolError` (layer
 * "protobuf") when the bytes are not a well-formed message.
 */
export function decodeFields(bytes: Uint8Array, what: string, visit: FieldVisitor): void {
  decodeOrThrow("protobuf", what, () => {
    const reader = new BinaryReader(bytes);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (visit(field, wireType, reader)) continue;
      // The library's skip accepts over-long varints; reading one rejects them.
      if (wireType === WireType.Varint) reader.uint64();
      else reader.skip(wireType, field);
    }
    if (reader.pos !== reader.len) throw new RangeError("premature EOF");
  });
}

/** Reads an int64 varint as a bigint (the library may hand back a string). */
export function readInt64(reader: BinaryReader): bigint {
  return BigInt(reader.int64());
}

/** Decodes a map<string,string> entry: {1 key, 2 value}, both optional. */
export function decodeStringPair(bytes: Uint8Array, what: string): [string, string] {
  let key = "";
  let value = "";
  decodeFields(bytes, what, (field, wireType, reader) => {
    if (wireType !== WireType.LengthDelimited) return false;
    if (field === 1) key = reader.string();
    else if (field === 2) value = reader.string();
    else return false;
    return true;
  });
  return [key, value];
}

/** Writes a string field unless it is empty (proto3 default). */
export function writeString(writer: BinaryWriter, field: number, value: string): void {
  if (value !== "") writer.tag(field, WireType.LengthDelimited).string(value);
}

/** Writes a bytes field unless it is empty (proto3 default). */
export function writeBytes(writer: BinaryWriter, field: number, value: Uint8Array): void {
  if (value.length > 0) writer.tag(field, WireType.LengthDelimited).bytes(value);
}

/** Writes a nested message field (always present, even when empty). */
export function writeMessage(writer: BinaryWriter, field: number, encoded: Uint8Array): void {
  writer.tag(field, WireType.LengthDelimited).bytes(encoded);
}

/** Writes a map<string,string> as repeated {1 key, 2 value} entries, keys sorted. */
export function writeStringMap(
  writer: BinaryWriter,
  field: number,
  map: Readonly<Record<string, string>>,
): void {
  for (const key of Object.keys(map).sort()) {
    const entry = new BinaryWriter();
    writeString(entry, 1, key);
    writeString(entry, 2, map[key]);
    writeMessage(writer, field, entry.finish());
  }
}
