/**
 * rtnetlink handles: a NETLINK_ROUTE socket bound to one network namespace,
 * and the request/acknowledge and dump exchanges every other module uses.
 *
 * The socket is opened while the calling thread is inside the target
 * namespace; a netlink socket keeps acting in the namespace it was created
 * in, so later requests act there from any thread.
 *
 * Requests are synchronous: the kernel handles an rtnetlink request while it
 * is sent, so the answer is already queued when recv() is called.
 *
 * @module
 */

import { NetlinkError } from "./errors.ts";
import { check, closeFd, errno, libc } from "./ffi.ts";
import {
  createWriter,
  getI32,
  getString,
  getU16,
  getU32,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSGERR_ATTR_MSG,
  parseAttrs,
  type Writer,
} from "./message.ts";
import { type NetnsRef, withNetnsSync } from "./netns.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const NETLINK_GET_STRICT_CHK = 12;
const MSG_TRUNC = 0x20;
const EBADF = 9;
const EMSGSIZE = 90;
const EINTR = 4;
const RECV_BUFFER = 64 * 1024;

/**
 * Receive buffers of closed handles, handed to the next handles opened. A
 * CNI invocation opens several short-lived handles; each new 64 KiB buffer
 * lives outside V8's heap, which the collector counts only as external
 * memory, so in a burst of invocations they piled up in the C heap (3 to
 * 17 MiB more at a daemon's peak, bench/README.md) before a collection
 * freed them.
 * Safe to reuse: nothing parsed out of a reply keeps a view of the buffer
 * (every parser copies into plain values).
 */
const spareRecvBuffers: Uint8Array<ArrayBuffer>[] = [];
/** Spare buffers kept at most (1 MiB). */
const MAX_SPARE_RECV_BUFFERS = 16;
/** A closed handle's buffer: a reply cannot land in one that another handle uses now. */
const CLOSED_RECV_BUFFER = new Uint8Array(0);
const DUMP_RETRIES = 5;

/** An open rtnetlink socket acting in one network namespace. */
export interface Handle {
  /** The socket fd. */
  readonly fd: number;
  /** The namespace the handle acts in; undefined for the namespace it was opened from. */
  readonly netns?: NetnsRef;
  /** Whether {@link closeHandle} was called. */
  closed: boolean;
  /** Last sequence number used. */
  seq: number;
  /** The reusable request buffer. */
  readonly writer: Writer;
  /** The reusable receive buffer. */
  recvBuf: Uint8Array<ArrayBuffer>;
}

/** Where a handle acts: a namespace path, or an open namespace fd. Neither means here. */
export interface OpenHandleOptions {
  /** Namespace file path (/var/run/netns/x, /proc/<pid>/ns/net). */
  netnsPath?: string;
  /** Open namespace fd (stays owned by the caller). */
  netnsFd?: number;
}

const one = new Uint8Array(new Int32Array([1]).buffer);

/**
 * Opens a handle acting in the given namespace (default: the calling
 * thread's). Close it with {@link closeHandle}.
 */
export function openHandle(opts: OpenHandleOptions = {}): Handle {
  const netns: NetnsRef | undefined = opts.netnsPath ??
    (opts.netnsFd !== undefined ? { fd: opts.netnsFd } : undefined);
  const fd = withNetnsSync(
    netns,
    () => check(libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), "netlink socket"),
  );
  try {
    check(libc.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one, 4), "setsockopt NETLINK_EXT_ACK");
    check(libc.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one, 4), "setsockopt NETLINK_CAP_ACK");
    // Strict checking lets dumps be filtered by the kernel (table, protocol,
    // device) instead of shipping every object to us.
    check(
      libc.setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, one, 4),
      "setsockopt NETLINK_GET_STRICT_CHK",
    );
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  return {
    fd,
    netns,
    closed: false,
    seq: Math.floor(Math.random() * 0x7fffffff),
    writer: createWriter(),
    recvBuf: spareRecvBuffers.pop() ?? new Uint8Array(RECV_BUFFER),
  };
}

/** Closes a handle; closing twice is harmless. */
export function closeHandle(h: Handle): void {
  if (h.closed) return;
  h.closed = true;
  closeFd(h.fd);
  const buf = h.recvBuf;
  h.recvBuf = CLOSED_RECV_BUFFER;
  if (buf.length === RECV_BUFFER && spareRecvBuffers.length < MAX_SPARE_RECV_BUFFERS) {
    spareRecvBuffers.push(buf);
  }
}

/**
 * Opens a handle, runs `fn` with it and closes it afterwards (after the
 * promise settles when `fn` is async).
 */
export function withHandle<T>(opts: OpenHandleOptions, fn: (h: Handle) => T): T {
  const h = openHandle(opts);
  let result: T;
  try {
    result = fn(h);
  } catch (e) {
    closeHandle(h);
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => closeHandle(h)) as T;
  }
  closeHandle(h);
  return result;
}

/** Starts a request of `type` with `flags` (REQUEST and ACK are added); returns the writer. */
export function beginRequest(h: Handle, type: number, flags = 0): Writer {
  if (h.closed) throw new NetlinkError("netlink handle", EBADF);
  h.seq = (h.seq + 1) >>> 0;
  h.writer.begin(type, flags | NLM_F_REQUEST | NLM_F_ACK, h.seq);
  return h.writer;
}

/** Starts a dump request of `type`; returns the writer. */
export function beginDump(h: Handle, type: number): Writer {
  if (h.closed) throw new NetlinkError("netlink handle", EBADF);
  h.seq = (h.seq + 1) >>> 0;
  h.writer.begin(type, NLM_F_REQUEST | NLM_F_DUMP, h.seq);
  return h.writer;
}

/** One received message: its type, flags and payload (a view valid only inside the callback). */
export type OnMessage = (type: number, flags: number, payload: Uint8Array) => void;

function send(h: Handle, msg: Uint8Array, op: string): void {
  for (;;) {
    const n = Number(libc.send(h.fd, msg, BigInt(msg.length), 0));
    if (n >= 0) return;
    if (errno() !== EINTR) check(n, op);
  }
}

function recvInto(h: Handle, op: string): number {
  for (;;) {
    const n = Number(libc.recv(h.fd, h.recvBuf, BigInt(h.recvBuf.length), MSG_TRUNC));
    if (n < 0) {
      if (errno() === EINTR) continue;
      check(n, op);
    }
    if (n > h.recvBuf.length) {
      // The datagram did not fit and its tail is lost; grow for next time.
      h.recvBuf = new Uint8Array(Math.max(n, h.recvBuf.length * 2));
      throw new NetlinkError(`${op}: reply of ${n} bytes truncated`, EMSGSIZE);
    }
    return n;
  }
}

/** Reads the extended-ack text of an error or DONE message. */
function extackText(flags: number, payload: Uint8Array, tlvOffset: number): string | undefined {
  if (!(flags & NLM_F_ACK_TLVS) || tlvOffset >= payload.length) return undefined;
  const msg = parseAttrs(payload, tlvOffset).get(NLMSGERR_ATTR_MSG);
  return msg ? getString(msg) : undefined;
}

function errorFromAck(op: string, flags: number, payload: Uint8Array): NetlinkError | null {
  const code = getI32(payload, 0);
  if (code === 0) return null;
  // Without NLM_F_CAPPED the original request follows in full.
  const origLen = payload.length >= 8 ? getU32(payload, 4) : NLMSG_HDRLEN;
  const tlv = 4 + (flags & NLM_F_CAPPED ? NLMSG_HDRLEN : origLen);
  return new NetlinkError(op, -code, extackText(flags, payload, tlv));
}

/** What {@link readReplies} hands over of each message; true stops the reading. */
type VisitMessage = (type: number, flags: number, seq: number, payload: Uint8Array) => boolean;

/**
 * Receives replies on `h` and hands each netlink message in them to
 * `visit`, until `visit` returns true.
 */
function readReplies(h: Handle, op: string, visit: VisitMessage): void {
  for (;;) {
    const n = recvInto(h, op);
    const buf = h.recvBuf;
    let off = 0;
    while (off + NLMSG_HDRLEN <= n) {
      const len = getU32(buf, off);
      if (len < NLMSG_HDRLEN || off + len > n) break;
      const type = getU16(buf, off + 4);
      const flags = getU16(buf, off + 6);
      const seq = getU32(buf, off + 8);
      const payload = buf.subarray(off + NLMSG_HDRLEN, off + len);
      off += (len + 3) & ~3;
      if (visit(type, flags, seq, payload)) return;
    }
  }
}

/**
 * Walks the messages of one exchange until the kernel says it is done.
 * Returns whether any part of a dump was flagged inconsistent.
 */
function exchange(
  h: Handle,
  seq: number,
  op: string,
  dump: boolean,
  onMessage?: OnMessage,
): boolean {
  let interrupted = false;
  // A callback that throws does not stop the reading: the rest of the reply
  // is drained so the socket is ready for the next request (a dump left
  // half-read would make the next dump fail with EBUSY).
  let failed = false;
  let failure: unknown;
  readReplies(h, op, (type, flags, mseq, payload) => {
    // Late replies to an earlier request are skipped.
    if (mseq !== seq) return false;
    if (flags & NLM_F_DUMP_INTR) interrupted = true;
    if (type === NLMSG_ERROR) {
      const err = errorFromAck(op, flags, payload);
      if (err) throw err;
      return !dump;
    }
    if (type === NLMSG_DONE) {
      const code = payload.length >= 4 ? getI32(payload, 0) : 0;
      if (code < 0) throw new NetlinkError(op, -code, extackText(flags, payload, 4));
      return true;
    }
    if (failed || !onMessage) return false;
    try {
      onMessage(type, flags, payload);
    } catch (e) {
      failed = true;
      failure = e;
    }
    return false;
  });
  if (failed) throw failure;
  return interrupted;
}

/**
 * Sends the request built with {@link beginRequest} and waits for its
 * acknowledgement; replies before the ack (GET answers, echoes) go to
 * `onMessage`. Throws {@link NetlinkError} when the kernel refuses.
 */
export function execute(h: Handle, op: string, onMessage?: OnMessage): void {
  const msg = h.writer.finish();
  send(h, msg, op);
  exchange(h, h.seq, op, false, onMessage);
}

/**
 * As {@link execute}, but the kernel handles the request on another
 * thread: netlink requests are handled inside the send, and some take the
 * kernel tens of milliseconds (deleting links waits for RCU grace
 * periods), which a long-lived process must not spend with its event loop
 * stalled. `h` must not be used for anything else until this settles.
 */
export async function executeOffThread(h: Handle, op: string): Promise<void> {
  // The writer is reused by the next request built on this handle.
  const msg = h.writer.finish().slice();
  const seq = h.seq;
  const n = Number(await libc.sendOffThread(h.fd, msg, BigInt(msg.length), 0));
  // A send that failed delivered nothing; its errno was the other thread's, so send again here.
  if (n < 0) send(h, msg, op);
  exchange(h, seq, op, false);
}

/**
 * Sends the dump built with {@link beginDump} and collects what `parse`
 * returns for each message (undefined results are dropped). A dump the
 * kernel flags as inconsistent (the table changed meanwhile) is redone.
 */
export function executeDump<T>(
  h: Handle,
  op: string,
  parse: (type: number, payload: Uint8Array) => T | undefined,
): T[] {
  const msg = h.writer.finish();
  const request = msg.slice();
  for (let attempt = 0;; attempt++) {
    const out: T[] = [];
    const seq = getU32(request, 8);
    send(h, request, op);
    const interrupted = exchange(h, seq, op, true, (type, _flags, payload) => {
      const v = parse(type, payload);
      if (v !== undefined) out.push(v);
    });
    if (!interrupted || attempt >= DUMP_RETRIES) return out;
    h.seq = (h.seq + 1) >>> 0;
    new DataView(request.buffer).setUint32(8, h.seq, true);
  }
}

/** Most requests in one sendmsg: bounds the error replies that can queue up unread. */
const BATCH_CHUNK = 64;

/**
 * Requests sent several to a sendmsg, for when thousands of independent
 * changes go in at once (a router's first sync). Each is built as usual
 * with {@link beginRequest} and handed to {@link RequestBatch.add} instead
 * of {@link execute}; nothing is sent until {@link RequestBatch.flush}.
 * The kernel handles the requests of one sendmsg in order, each on its
 * own: a later request may use an object an earlier one made, and one
 * refused request does not stop the others.
 */
export interface RequestBatch {
  /** Queues the request just built; returns its index in the batch. */
  add(op: string): number;
  /** How many requests are queued. */
  readonly size: number;
  /**
   * Sends the queued requests and waits until the kernel has handled them
   * all; returns each one's error (undefined: done), by index. The batch
   * is empty afterwards.
   */
  flush(): (NetlinkError | undefined)[];
}

/** Starts a {@link RequestBatch} on a handle. */
export function createBatch(h: Handle): RequestBatch {
  // The requests back to back in one buffer; each one's offset, sequence number and description.
  let buf = new Uint8Array(16 * 1024);
  let used = 0;
  let msgs: { off: number; seq: number; op: string }[] = [];
  return {
    add(op) {
      const bytes = h.writer.finish();
      if (used + bytes.length > buf.length) {
        const grown = new Uint8Array(Math.max(buf.length * 2, used + bytes.length));
        grown.set(buf.subarray(0, used));
        buf = grown;
      }
      buf.set(bytes, used);
      // Only failures answer; the last request of each sendmsg asks for an ack (see flush).
      buf[used + 6] &= ~NLM_F_ACK;
      msgs.push({ off: used, seq: getU32(bytes, 8), op });
      used += bytes.length;
      return msgs.length - 1;
    },
    get size() {
      return msgs.length;
    },
    flush() {
      const out: (NetlinkError | undefined)[] = new Array(msgs.length).fill(undefined);
      const queued = msgs;
      const all = buf;
      const end = used;
      msgs = [];
      used = 0;
      for (let from = 0; from < queued.length; from += BATCH_CHUNK) {
        const to = Math.min(from + BATCH_CHUNK, queued.length);
        const last = queued[to - 1];
        all[last.off + 6] |= NLM_F_ACK;
        const bySeq = new Map<number, { index: number; op: string }>();
        for (let i = from; i < to; i++) bySeq.set(queued[i].seq, { index: i, op: queued[i].op });
        const stop = to < queued.length ? queued[to].off : end;
        try {
          send(h, all.subarray(queued[from].off, stop), last.op);
          collectErrors(h, bySeq, last.seq, out);
        } catch (e) {
          // The socket failed: none of the chunk's outcomes is known.
          const err = e instanceof NetlinkError ? e : new NetlinkError(last.op, 5);
          for (const { index } of bySeq.values()) out[index] ??= err;
        }
      }
      return out;
    },
  };
}

/** Reads replies until the ack of `lastSeq`, noting each error under its request's index. */
function collectErrors(
  h: Handle,
  bySeq: Map<number, { index: number; op: string }>,
  lastSeq: number,
  out: (NetlinkError | undefined)[],
): void {
  readReplies(h, "batch", (type, flags, seq, payload) => {
    const entry = bySeq.get(seq);
    if (type !== NLMSG_ERROR || entry === undefined) return false;
    const err = errorFromAck(entry.op, flags, payload);
    if (err) out[entry.index] = err;
    return seq === lastSeq;
  });
}
