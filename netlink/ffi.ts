/**
 * libc through Deno FFI, opened on first use.
 *
 * Every call here is synchronous and runs on the calling JavaScript thread.
 * That matters: network namespaces belong to a thread, and Deno runs its own
 * file I/O on other threads, so anything that must happen inside a namespace
 * (opening a netlink socket, writing /proc/sys/net, opening /dev/net/tun) is
 * done through these functions between a setns() and the setns() back.
 *
 * Nothing is bound when the module loads: opening libc and binding its
 * symbols costs a process a few milliseconds, and many processes that load
 * this module (a plugin answering VERSION, a meta-CNI that only execs
 * delegates) never make a call.
 *
 * @module
 */

import { NetlinkError } from "./errors.ts";

/** Symbols every netlink user needs, bound together on the first call of any. */
const COMMON = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  // open(2) is variadic; on x86_64/arm64 passing the mode as a fixed third
  // integer argument is ABI-compatible.
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/**
 * Symbols bound on first use: making namespaces, taps, thread ids. Binding
 * costs a process about 0.25 ms per symbol, and a plugin exec needs none
 * of these.
 */
const ON_DEMAND = {
  unshare: { parameters: ["i32"], result: "i32" },
  mkdir: { parameters: ["buffer", "u32"], result: "i32" },
  unlink: { parameters: ["buffer"], result: "i32" },
  mount: { parameters: ["buffer", "buffer", "buffer", "usize", "buffer"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  ioctl: { parameters: ["i32", "usize", "pointer"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  // flock(2) that waits, on a thread of Deno's blocking pool (the event loop keeps running).
  flockOffThread: { name: "flock", parameters: ["i32", "i32"], result: "i32", nonblocking: true },
  gettid: { parameters: [], result: "i32" },
  // send(2) on a thread of Deno's blocking pool, for requests the kernel is slow to handle
  // (it handles a netlink request inside the send). errno is that thread's, not readable here.
  sendOffThread: {
    name: "send",
    parameters: ["i32", "buffer", "usize", "i32"],
    result: "isize",
    nonblocking: true,
  },
} as const;

type OnDemand = typeof ON_DEMAND;
type OnDemandSymbols = Deno.DynamicLibrary<OnDemand>["symbols"];

type CommonSymbols = Deno.DynamicLibrary<typeof COMMON>["symbols"];

let common: CommonSymbols | undefined;

/** The common symbols, libc opened on the first call. */
function commonSymbols(): CommonSymbols {
  if (common === undefined) {
    common = Deno.dlopen("libc.so.6", COMMON).symbols;
    // Known before any call can fail, so reading errno after one allocates
    // nothing (an allocation may run the collector, whose waits set errno).
    errnoView = new Deno.UnsafePointerView(common.__errno_location()!);
  }
  return common;
}

/**
 * The raw libc symbols, for modules of this package only. Each property
 * binds its symbol on first read (the common ones all at once) and is then
 * a plain value.
 */
export const libc: CommonSymbols & OnDemandSymbols = lazySymbols();

function lazySymbols(): CommonSymbols & OnDemandSymbols {
  const out = {} as CommonSymbols & OnDemandSymbols;
  const settle = (name: string, fn: unknown) => {
    Object.defineProperty(out, name, { value: fn, enumerable: true, writable: false });
    return fn;
  };
  for (const name of Object.keys(COMMON) as (keyof typeof COMMON)[]) {
    Object.defineProperty(out, name, {
      enumerable: true,
      configurable: true,
      get: () => settle(name, commonSymbols()[name]),
    });
  }
  for (const name of Object.keys(ON_DEMAND) as (keyof OnDemand)[]) {
    Object.defineProperty(out, name, {
      enumerable: true,
      configurable: true,
      get: () =>
        settle(
          name,
          Deno.dlopen("libc.so.6", { [name]: ON_DEMAND[name] } as Pick<OnDemand, typeof name>)
            .symbols[name],
        ),
    });
  }
  return out;
}

// errno lives in thread-local storage; every caller of this module runs on
// the one thread that uses it (a Worker loads its own copy), so the address
// is fixed once known.
let errnoView: Deno.UnsafePointerView | undefined;

/** The calling thread's errno, read right after a failed call. */
export function errno(): number {
  if (errnoView === undefined) commonSymbols();
  return errnoView!.getInt32();
}

const EINTR = 4;
const EAGAIN = 11;
/** Attempts of {@link checkRetried} before an EAGAIN or EINTR is believed. */
const STALE_ERRNO_ATTEMPTS = 3;

/**
 * Makes a libc call whose failure changes nothing and returns its result, or
 * throws a {@link NetlinkError} with its errno.
 *
 * JavaScript runs between a call's return and the read of errno, and the
 * runtime's own work there (a collector's or compiler's thread wait) can
 * overwrite errno with EAGAIN or EINTR: an open of a namespace file that is
 * gone then reads as "Try again" instead of ENOENT, and a DEL that should
 * find nothing to do fails. A call that cannot legitimately fail with
 * those (an open without O_NONBLOCK, a setns) is therefore made again until
 * it gives another errno, a few times at most; a real EINTR is retried as
 * it should be.
 */
export function checkRetried(
  call: () => number | bigint,
  op: string,
  readErrno: () => number = errno,
): number {
  for (let attempt = 1;; attempt++) {
    const n = Number(call());
    if (n >= 0) return n;
    const e = readErrno();
    if ((e !== EAGAIN && e !== EINTR) || attempt >= STALE_ERRNO_ATTEMPTS) {
      throw new NetlinkError(op, e);
    }
  }
}

const encoder = new TextEncoder();

/** A NUL-terminated copy of `s` for passing to libc. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(s.length * 3 + 1);
  const { written } = encoder.encodeInto(s, bytes);
  return bytes.subarray(0, written + 1);
}

/** Throws a {@link NetlinkError} for `op` when a libc call returned a negative value. */
export function check(ret: number | bigint, op: string): number {
  const n = Number(ret);
  if (n < 0) throw new NetlinkError(op, errno());
  return n;
}

/** open(2) flags used here. */
export const O_RDONLY = 0;
/** open(2): write only. */
export const O_WRONLY = 1;
/** open(2): read and write. */
export const O_RDWR = 2;
/** open(2): create if missing. */
export const O_CREAT = 0o100;
/** open(2): fail if it exists (with O_CREAT). */
export const O_EXCL = 0o200;
/** open(2): truncate. */
export const O_TRUNC = 0o1000;
/** open(2): close on exec, so children never inherit namespace or socket fds. */
export const O_CLOEXEC = 0o2000000;
/** open(2): fail (ELOOP) when the last component is a symbolic link. */
export const O_NOFOLLOW = 0o400000;
/** flock(2): exclusive lock. */
export const LOCK_EX = 2;
/** flock(2): fail with EWOULDBLOCK instead of waiting. */
export const LOCK_NB = 4;

/** Opens `path` on the calling thread; returns the fd or throws. */
export function openFd(path: string, flags: number, mode = 0): number {
  const name = cstr(path);
  return checkRetried(() => commonSymbols().open(name, flags | O_CLOEXEC, mode), `open ${path}`);
}

/** Closes an fd, ignoring errors (nothing useful can be done about them). */
export function closeFd(fd: number): void {
  commonSymbols().close(fd);
}

/** Writes all of `data` to `fd` on the calling thread. */
export function writeAll(fd: number, data: Uint8Array, op: string): void {
  let off = 0;
  while (off < data.length) {
    off += check(commonSymbols().write(fd, data.subarray(off), BigInt(data.length - off)), op);
  }
}

/** Reads `fd` to its end on the calling thread. */
export function readAll(fd: number, op: string): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const buf = new Uint8Array(4096);
    const n = check(commonSymbols().read(fd, buf, BigInt(buf.length)), op);
    if (n === 0) break;
    chunks.push(buf.subarray(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Device and inode of an open fd (fstat); identifies a namespace file. */
export function fstatId(fd: number, op: string): { dev: bigint; ino: bigint } {
  // struct stat on x86_64 and arm64 starts with st_dev (u64) then st_ino (u64).
  const st = new BigUint64Array(32);
  check(commonSymbols().fstat(fd, new Uint8Array(st.buffer)), op);
  return { dev: st[0], ino: st[1] };
}

/** The calling thread's kernel thread id. */
export function gettid(): number {
  return libc.gettid();
}

/** The process id. */
export function getpid(): number {
  return libc.getpid();
}
