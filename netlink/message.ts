/**
 * Netlink wire format: message headers, attributes (TLVs, nested), and the
 * little-endian/big-endian field helpers the rtnetlink modules share.
 *
 * Encoding writes into one growable buffer per handle, so a request allocates
 * nothing but its own JavaScript values.
 *
 * @module
 */

/** struct nlmsghdr size. */
export const NLMSG_HDRLEN = 16;
/** struct nlattr size. */
export const NLA_HDRLEN = 4;

/** Message types common to all netlink families. */
export const NLMSG_NOOP = 1;
/** An error or, with error 0, an acknowledgement. */
export const NLMSG_ERROR = 2;
/** End of a multi-part dump. */
export const NLMSG_DONE = 3;

/** Request flags. */
export const NLM_F_REQUEST = 0x1;
/** Part of a multi-part reply. */
export const NLM_F_MULTI = 0x2;
/** Ask for an acknowledgement. */
export const NLM_F_ACK = 0x4;
/** Echo the request back. */
export const NLM_F_ECHO = 0x8;
/** The dump changed while it was read; the result may be inconsistent. */
export const NLM_F_DUMP_INTR = 0x10;
/** GET: return the whole table. */
export const NLM_F_DUMP = 0x300;
/** NEW: replace an existing object. */
export const NLM_F_REPLACE = 0x100;
/** NEW: fail if the object exists. */
export const NLM_F_EXCL = 0x200;
/** NEW: create if missing. */
export const NLM_F_CREATE = 0x400;
/** NEW: append to the list (bridge FDB: another remote for one MAC). */
export const NLM_F_APPEND = 0x800;

/** What a request does with an object; its name also goes into error messages. */
export type RequestVerb = "add" | "replace" | "append" | "delete";

/**
 * The header flags that say a verb, the same for addresses, routes and
 * neighbours: add refuses an existing object, replace overwrites it, append
 * adds another, delete needs none.
 */
export const VERB_FLAGS: Readonly<Record<RequestVerb, number>> = {
  add: NLM_F_CREATE | NLM_F_EXCL,
  replace: NLM_F_CREATE | NLM_F_REPLACE,
  append: NLM_F_CREATE | NLM_F_APPEND,
  delete: 0,
};
/** Error message: the original request was not echoed in full. */
export const NLM_F_CAPPED = 0x100;
/** Error message: extended-ack attributes follow. */
export const NLM_F_ACK_TLVS = 0x200;

/** Attribute type bit: the payload is a nested attribute list. */
export const NLA_F_NESTED = 0x8000;
/** Attribute type bit: the payload is in network byte order. */
export const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

/** Extended-ack attribute holding the kernel's error text. */
export const NLMSGERR_ATTR_MSG = 1;

/** Rounds up to the 4-byte netlink alignment. */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Builds one netlink message in a reusable buffer: the header first, then a
 * family header written with the raw put functions, then attributes.
 */
export interface Writer {
  /** Starts a message, discarding whatever the buffer held. */
  begin(type: number, flags: number, seq: number): void;
  /** Patches the length into the header and returns the encoded bytes (a view). */
  finish(): Uint8Array<ArrayBuffer>;
  /** Current write offset (bytes from the start of the message). */
  offset(): number;
  /** Raw u8 / u16 / u32 / i32 (host order) / bytes at the current offset. */
  u8(v: number): void;
  /** Raw u16, host order. */
  u16(v: number): void;
  /** Raw u32, host order. */
  u32(v: number): void;
  /** Raw i32, host order. */
  i32(v: number): void;
  /** Raw bytes, padded to 4. */
  bytes(v: Uint8Array): void;
  /** Attribute with a u8 payload. */
  attrU8(type: number, v: number): void;
  /** Attribute with a u16 payload (host order). */
  attrU16(type: number, v: number): void;
  /** Attribute with a big-endian u16 payload (ports, ethertypes). */
  attrBe16(type: number, v: number): void;
  /** Attribute with a u32 payload (host order). */
  attrU32(type: number, v: number): void;
  /** Attribute with a NUL-terminated string payload. */
  attrString(type: number, v: string): void;
  /** Attribute with raw bytes. */
  attrBytes(type: number, v: Uint8Array): void;
  /** Attribute with no payload (a flag). */
  attrFlag(type: number): void;
  /** Opens a nested attribute; pass the result to {@link Writer.nestEnd}. */
  nestStart(type: number): number;
  /** Closes a nested attribute opened at `start`. */
  nestEnd(start: number): void;
}

/** Makes a {@link Writer} with an initial capacity (it grows as needed). */
export function createWriter(capacity = 4096): Writer {
  let buf = new Uint8Array(capacity);
  let view = new DataView(buf.buffer);
  let off = 0;

  const ensure = (n: number) => {
    if (off + n <= buf.length) return;
    const next = new Uint8Array(Math.max(buf.length * 2, off + n + 256));
    next.set(buf.subarray(0, off));
    buf = next;
    view = new DataView(buf.buffer);
  };
  const pad = () => {
    const end = align4(off);
    ensure(end - off);
    buf.fill(0, off, end);
    off = end;
  };
  const attrHeader = (type: number, payloadLen: number) => {
    ensure(NLA_HDRLEN + align4(payloadLen));
    view.setUint16(off, NLA_HDRLEN + payloadLen, true);
    view.setUint16(off + 2, type, true);
    off += NLA_HDRLEN;
  };

  const w: Writer = {
    begin(type, flags, seq) {
      off = 0;
      ensure(NLMSG_HDRLEN);
      view.setUint32(0, 0, true);
      view.setUint16(4, type, true);
      view.setUint16(6, flags, true);
      view.setUint32(8, seq, true);
      view.setUint32(12, 0, true);
      off = NLMSG_HDRLEN;
    },
    finish() {
      view.setUint32(0, off, true);
      return buf.subarray(0, off);
    },
    offset: () => off,
    u8(v) {
      ensure(1);
      view.setUint8(off, v);
      off += 1;
    },
    u16(v) {
      ensure(2);
      view.setUint16(off, v, true);
      off += 2;
    },
    u32(v) {
      ensure(4);
      view.setUint32(off, v >>> 0, true);
      off += 4;
    },
    i32(v) {
      ensure(4);
      view.setInt32(off, v, true);
      off += 4;
    },
    bytes(v) {
      ensure(align4(v.length));
      buf.set(v, off);
      off += v.length;
      pad();
    },
    attrU8(type, v) {
      attrHeader(type, 1);
      view.setUint8(off, v);
      off += 1;
      pad();
    },
    attrU16(type, v) {
      attrHeader(type, 2);
      view.setUint16(off, v, true);
      off += 2;
      pad();
    },
    attrBe16(type, v) {
      attrHeader(type, 2);
      view.setUint16(off, v, false);
      off += 2;
      pad();
    },
    attrU32(type, v) {
      attrHeader(type, 4);
      view.setUint32(off, v >>> 0, true);
      off += 4;
    },
    attrString(type, v) {
      const max = v.length * 3 + 1;
      ensure(NLA_HDRLEN + align4(max));
      const { written } = encoder.encodeInto(
        v,
        buf.subarray(off + NLA_HDRLEN, off + NLA_HDRLEN + max),
      );
      attrHeader(type, written + 1);
      buf[off + written] = 0;
      off += written + 1;
      pad();
    },
    attrBytes(type, v) {
      attrHeader(type, v.length);
      buf.set(v, off);
      off += v.length;
      pad();
    },
    attrFlag(type) {
      attrHeader(type, 0);
    },
    nestStart(type) {
      const start = off;
      attrHeader(type | NLA_F_NESTED, 0);
      return start;
    },
    nestEnd(start) {
      view.setUint16(start, off - start, true);
    },
  };
  return w;
}

/** Attributes of one message or nest, by type (flag bits masked off); values are views. */
export type Attrs = Map<number, Uint8Array>;

/** Parses the attributes in `buf[start, end)`; later duplicates win. */
export function parseAttrs(buf: Uint8Array, start = 0, end = buf.length): Attrs {
  const out: Attrs = new Map();
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = buf[off] | (buf[off + 1] << 8);
    if (len < NLA_HDRLEN || off + len > end) break;
    const type = (buf[off + 2] | (buf[off + 3] << 8)) & NLA_TYPE_MASK;
    out.set(type, buf.subarray(off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

/** Parses every attribute in order, keeping duplicates (for lists like RTA_MULTIPATH). */
export function parseAttrList(buf: Uint8Array): Array<[number, Uint8Array]> {
  const out: Array<[number, Uint8Array]> = [];
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf[off] | (buf[off + 1] << 8);
    if (len < NLA_HDRLEN || off + len > buf.length) break;
    out.push([
      (buf[off + 2] | (buf[off + 3] << 8)) & NLA_TYPE_MASK,
      buf.subarray(off + NLA_HDRLEN, off + len),
    ]);
    off += align4(len);
  }
  return out;
}

/** Reads a u8 at `off`. */
export function getU8(b: Uint8Array, off = 0): number {
  return b[off];
}

/** Reads a little-endian (host order) u16 at `off`. */
export function getU16(b: Uint8Array, off = 0): number {
  return b[off] | (b[off + 1] << 8);
}

/** Reads a big-endian u16 at `off`. */
export function getBe16(b: Uint8Array, off = 0): number {
  return (b[off] << 8) | b[off + 1];
}

/** Reads a little-endian (host order) u32 at `off`. */
export function getU32(b: Uint8Array, off = 0): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

/** Reads a little-endian (host order) i32 at `off`. */
export function getI32(b: Uint8Array, off = 0): number {
  return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24);
}

/** Decodes a NUL-terminated (or unterminated) string attribute. */
export function getString(b: Uint8Array): string {
  const nul = b.indexOf(0);
  return decoder.decode(nul < 0 ? b : b.subarray(0, nul));
}

/** Attribute accessors returning undefined when the attribute is absent. */
export const attr = {
  /** u8 attribute. */
  u8: (a: Attrs, t: number): number | undefined => {
    const v = a.get(t);
    return v && v.length >= 1 ? v[0] : undefined;
  },
  /** u16 attribute (host order). */
  u16: (a: Attrs, t: number): number | undefined => {
    const v = a.get(t);
    return v && v.length >= 2 ? getU16(v) : undefined;
  },
  /** u16 attribute (network order). */
  be16: (a: Attrs, t: number): number | undefined => {
    const v = a.get(t);
    return v && v.length >= 2 ? getBe16(v) : undefined;
  },
  /** u32 attribute (host order). */
  u32: (a: Attrs, t: number): number | undefined => {
    const v = a.get(t);
    return v && v.length >= 4 ? getU32(v) : undefined;
  },
  /** i32 attribute (host order). */
  i32: (a: Attrs, t: number): number | undefined => {
    const v = a.get(t);
    return v && v.length >= 4 ? getI32(v) : undefined;
  },
  /** String attribute. */
  str: (a: Attrs, t: number): string | undefined => {
    const v = a.get(t);
    return v ? getString(v) : undefined;
  },
  /** Nested attribute, parsed. */
  nested: (a: Attrs, t: number): Attrs | undefined => {
    const v = a.get(t);
    return v ? parseAttrs(v) : undefined;
  },
};
