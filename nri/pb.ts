/**
 * Small protobuf helpers, built on the wire module of @bufbuild/protobuf: a
 * field walker and writers for the hand-coded ttrpc messages, and the strict
 * well-formedness check the generated NRI messages are decoded behind.
 * Decoding follows the proto3 rules the runtime's Go code follows too: unknown
 * fields of any wire type are skipped, over-long varints and truncated values
 * are errors, the last occurrence of a scalar wins, and repeated fields append.
 *
 * @module
 */

import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { BinaryReader, type BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
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

/** Deepest nesting of messages `checkWellFormed` follows (Go's default limit too). */
const MAX_DEPTH = 100;

/** The wire type a scalar of `type` is written with. */
function scalarWireType(type: ScalarType): WireType {
  switch (type) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return WireType.LengthDelimited;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return WireType.Bit64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return WireType.Bit32;
    default:
      return WireType.Varint;
  }
}

function expectWireType(what: string, got: WireType, ...allowed: WireType[]): void {
  if (!allowed.includes(got)) throw new RangeError(`${what} arrived with wire type ${got}`);
}

/**
 * Checks the value of one known field, recursing into messages and map
 * entries. Returns true when it consumed the value from `reader`.
 */
function checkField(field: DescField, wireType: WireType, reader: BinaryReader, depth: number) {
  const what = `field ${field.number} (${field.name})`;
  switch (field.fieldKind) {
    case "scalar":
      expectWireType(what, wireType, scalarWireType(field.scalar));
      return false;
    case "enum":
      expectWireType(what, wireType, WireType.Varint);
      return false;
    case "message":
      expectWireType(what, wireType, WireType.LengthDelimited);
      checkMessage(field.message, reader.bytes(), depth + 1);
      return true;
    case "list":
      if (field.listKind === "message") {
        expectWireType(what, wireType, WireType.LengthDelimited);
        checkMessage(field.message, reader.bytes(), depth + 1);
        return true;
      }
      // Numeric lists may come packed.
      expectWireType(
        what,
        wireType,
        field.listKind === "enum" ? WireType.Varint : scalarWireType(field.scalar),
        WireType.LengthDelimited,
      );
      return false;
    case "map":
      expectWireType(what, wireType, WireType.LengthDelimited);
      checkMapEntry(field, reader.bytes(), depth + 1);
      return true;
  }
}

function checkMapEntry(
  field: DescField & { fieldKind: "map" },
  bytes: Uint8Array,
  depth: number,
): void {
  decodeFields(bytes, `${field.name} entry`, (number, wireType, reader) => {
    if (number === 1) expectWireType("map key", wireType, scalarWireType(field.mapKey));
    if (number !== 2) return false;
    if (field.mapKind === "message") {
      expectWireType("map value", wireType, WireType.LengthDelimited);
      checkMessage(field.message, reader.bytes(), depth + 1);
      return true;
    }
    const expected = field.mapKind === "enum" ? WireType.Varint : scalarWireType(field.scalar);
    expectWireType("map value", wireType, expected);
    return false;
  });
}

function checkMessage(desc: DescMessage, bytes: Uint8Array, depth: number): void {
  if (depth > MAX_DEPTH) throw new RangeError(`messages nested deeper than ${MAX_DEPTH}`);
  decodeFields(bytes, desc.name, (number, wireType, reader) => {
    const field = desc.fields.find((f) => f.number === number);
    return field ? checkField(field, wireType, reader, depth) : false;
  });
}

/**
 * Checks that `bytes` are a well-formed `desc` message before the generated
 * decoder reads them; throws `ProtocolError` (layer "protobuf") otherwise.
 * Stricter than the library's decoder, as the runtime's Go decoder is: every
 * varint at most 10 bytes, every nested message within its parent, no stray
 * end-group tag. A field hydra knows arriving with another wire type than its
 * own is rejected too (Go would take it for an unknown field; no runtime
 * writes one, and read as its declared type it would decode as garbage).
 */
export function checkWellFormed(desc: DescMessage, bytes: Uint8Array): void {
  checkMessage(desc, bytes, 0);
}
