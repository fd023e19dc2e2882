/**
 * Network namespaces: run code inside one and always come back, create and
 * delete named namespaces the way `ip netns` lays them out
 * (/var/run/netns/<name>, a bind mount of the namespace file), and tell
 * namespaces apart.
 *
 * A namespace belongs to a thread. Everything here acts on the calling
 * JavaScript thread through synchronous FFI, with no await between entering
 * and leaving, so no other JavaScript can run while the thread is elsewhere.
 *
 * @module
 */

import { NetlinkError } from "./errors.ts";
import {
  check,
  checkRetried,
  closeFd,
  cstr,
  errno,
  fstatId,
  libc,
  O_CREAT,
  O_EXCL,
  O_RDONLY,
  openFd,
} from "./ffi.ts";

/** A network namespace: a file path (/var/run/netns/x, /proc/<pid>/ns/net) or an open fd. */
export type NetnsRef = string | { fd: number };

/** Identity of a namespace ("<dev>:<inode>" of its nsfs file); equal ids mean the same namespace. */
export type NetnsId = string;

/** Where named namespaces live, as with iproute2. */
export const NETNS_RUN_DIR = "/var/run/netns";

/** The calling thread's own namespace file (not /proc/self: that is the main thread's). */
export const THREAD_NETNS_PATH = "/proc/thread-self/ns/net";

const CLONE_NEWNET = 0x40000000;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_SHARED = 0x100000;
const MNT_DETACH = 2;
const EEXIST = 17;
const EINVAL = 22;

/** Opens a namespace file on the calling thread; the caller closes the fd. */
export function openNetnsFd(path: string): number {
  return openFd(path, O_RDONLY);
}

function refFd(ref: NetnsRef): { fd: number; owned: boolean } {
  return typeof ref === "string"
    ? { fd: openNetnsFd(ref), owned: true }
    : { fd: ref.fd, owned: false };
}

function refName(ref: NetnsRef): string {
  return typeof ref === "string" ? ref : `fd ${ref.fd}`;
}

function setnsBack(homeFd: number): void {
  if (libc.setns(homeFd, CLONE_NEWNET) < 0) {
    // The thread would keep running in a foreign namespace and every later
    // request would act there; nothing sane can continue.
    const err = new NetlinkError("setns back to the original network namespace", errno());
    console.error(JSON.stringify({ level: "fatal", msg: err.message }));
    Deno.exit(70);
  }
}

/**
 * Runs `fn` with the calling thread inside namespace `ns` and returns its
 * result; the thread is back in its original namespace afterwards, also when
 * `fn` throws. `ns` undefined runs `fn` where the thread already is.
 *
 * `fn` must be synchronous and should only make synchronous FFI calls: Deno
 * file APIs (sync or not) may run on other threads. Returning a promise is
 * refused with a TypeError, since its continuation would run outside.
 *
 * A child process started inside `fn` with `new Deno.Command(…).outputSync()`
 * runs in the namespace (Deno forks it from the calling thread; a test keeps
 * this true).
 */
export function withNetnsSync<T>(ns: NetnsRef | undefined, fn: () => T): T {
  if (ns === undefined) return fn();
  const leave = enterNetns(ns);
  let result: T;
  try {
    result = fn();
  } finally {
    leave();
  }
  if (result instanceof Promise) {
    result.catch(() => {});
    throw new TypeError("withNetnsSync: fn must be synchronous (it returned a promise)");
  }
  return result;
}

/**
 * Moves the calling thread into namespace `ns` and returns the function
 * that moves it back (call it exactly once, also on failure).
 *
 * Unlike {@link withNetnsSync} this spans awaits, and that is its danger:
 * until it is undone, everything this thread does acts inside `ns`,
 * including whatever other tasks the event loop runs meanwhile (a socket
 * Deno opens, a timer's netlink call). Only for a process that has nothing
 * else under way, such as a daemon's warm-up before it serves.
 */
export function enterNetns(ns: NetnsRef): () => void {
  const target = refFd(ns);
  const home = openNetnsFd(THREAD_NETNS_PATH);
  try {
    checkRetried(() => libc.setns(target.fd, CLONE_NEWNET), `setns ${refName(ns)}`);
  } catch (e) {
    closeFd(home);
    throw e;
  } finally {
    if (target.owned) closeFd(target.fd);
  }
  let left = false;
  return () => {
    if (left) return;
    left = true;
    setnsBack(home);
    closeFd(home);
  };
}

/**
 * Creates a namespace without a name, held only by the returned fd: once
 * the fd is closed and nothing else uses the namespace, the kernel tears it
 * down with everything in it. The calling thread stays where it was.
 */
export function createAnonymousNetns(): number {
  const home = openNetnsFd(THREAD_NETNS_PATH);
  let entered = false;
  try {
    check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)");
    entered = true;
    return openNetnsFd(THREAD_NETNS_PATH);
  } finally {
    if (entered) setnsBack(home);
    closeFd(home);
  }
}

/** The identity of the calling thread's current namespace. */
export function currentNetnsId(): NetnsId {
  return netnsId(THREAD_NETNS_PATH);
}

/** The identity of namespace `ref` (opened on the calling thread). */
export function netnsId(ref: NetnsRef): NetnsId {
  const { fd, owned } = refFd(ref);
  try {
    const { dev, ino } = fstatId(fd, `fstat ${refName(ref)}`);
    return `${dev}:${ino}`;
  } finally {
    if (owned) closeFd(fd);
  }
}

/**
 * True when `a` and `b` are the same namespace; `b` defaults to the calling
 * thread's current one. Used to refuse "move a device into its own netns"
 * and to detect a pod netns that is really the host's.
 */
export function sameNetns(a: NetnsRef, b: NetnsRef = THREAD_NETNS_PATH): boolean {
  return netnsId(a) === netnsId(b);
}

/** The path of the named namespace `name` (/var/run/netns/<name>). */
export function namedNetnsPath(name: string): string {
  if (!name || name === "." || name === ".." || name.includes("/") || name.length > 255) {
    throw new NetlinkError(`invalid netns name ${JSON.stringify(name)}`, EINVAL);
  }
  return `${NETNS_RUN_DIR}/${name}`;
}

let runDirReady = false;

/**
 * Makes /var/run/netns exist and be a shared mount point, as iproute2 does,
 * so namespace mounts made here propagate to mount namespaces that see it.
 */
function prepareRunDir(): void {
  if (runDirReady) return;
  if (libc.mkdir(cstr(NETNS_RUN_DIR), 0o755) < 0 && errno() !== EEXIST) {
    throw new NetlinkError(`mkdir ${NETNS_RUN_DIR}`, errno());
  }
  const dir = cstr(NETNS_RUN_DIR);
  const none = cstr("none");
  const empty = cstr("");
  let bound = false;
  while (libc.mount(empty, dir, none, BigInt(MS_SHARED | MS_REC), null) < 0) {
    // EINVAL: not a mount point yet. Bind it onto itself once, then retry.
    if (errno() !== EINVAL || bound) {
      throw new NetlinkError(`make ${NETNS_RUN_DIR} a shared mount`, errno());
    }
    check(
      libc.mount(dir, dir, none, BigInt(MS_BIND | MS_REC), null),
      `bind-mount ${NETNS_RUN_DIR}`,
    );
    bound = true;
  }
  runDirReady = true;
}

/**
 * Creates a named namespace (like `ip netns add <name>`) and returns its
 * path. Its loopback device starts down. Throws EEXIST when the name is taken.
 */
export function createNamedNetns(name: string): string {
  const path = namedNetnsPath(name);
  prepareRunDir();
  closeFd(openFd(path, O_RDONLY | O_CREAT | O_EXCL, 0));
  let home = -1;
  let entered = false;
  try {
    home = openNetnsFd(THREAD_NETNS_PATH);
    check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)");
    entered = true;
    check(
      libc.mount(cstr(THREAD_NETNS_PATH), cstr(path), cstr("none"), BigInt(MS_BIND), null),
      `bind-mount new netns on ${path}`,
    );
  } catch (e) {
    libc.unlink(cstr(path));
    throw e;
  } finally {
    if (entered) setnsBack(home);
    if (home >= 0) closeFd(home);
  }
  return path;
}

/**
 * Deletes a named namespace (like `ip netns delete <name>`): detaches the
 * bind mount and removes the file. The namespace itself lives on while
 * processes or open fds still use it. Throws ENOENT when there is no such name.
 */
export function deleteNamedNetns(name: string): void {
  const path = namedNetnsPath(name);
  const p = cstr(path);
  // EINVAL means the file is not (or no longer) a mount point: still unlink it.
  if (libc.umount2(p, MNT_DETACH) < 0 && errno() !== EINVAL) {
    const e = errno();
    if (e !== 2) throw new NetlinkError(`umount ${path}`, e);
  }
  check(libc.unlink(p), `delete netns ${name}`);
}
