/**
 * Who is on the other end of a connection to the daemon's socket: the
 * kernel's record of the connecting process (SO_PEERCRED: its pid, uid and
 * gid at connect time), read with getsockopt(2) through FFI.
 *
 * Deno hands out connections without their file descriptors, so the
 * descriptor of a connection just accepted is found among this process's
 * own: the one socket whose local address is the listening path, that is
 * not the listener, and that was not seen before (sockets are told apart
 * by inode, which a reused descriptor number does not keep). The daemon
 * accepts one connection at a time and looks it up before the next accept,
 * so exactly one such socket exists; when not exactly one is found the
 * connection is treated as unknown and refused (fail closed).
 *
 * @module
 */

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_ACCEPTCONN = 30;
const AF_UNIX = 1;
/** sizeof(struct sockaddr_un). */
const SOCKADDR_UN_BYTES = 110;

/** The connecting process, as the kernel recorded it. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

const SYMBOLS = {
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const;

let libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

function symbols() {
  return libc ??= Deno.dlopen("libc.so.6", SYMBOLS).symbols;
}

/** The credentials of the peer of unix socket `fd`; undefined when the kernel has none. */
export function peerCredentials(fd: number): PeerCredentials | undefined {
  const cred = new Int32Array(3);
  const len = new Uint32Array([cred.byteLength]);
  const rc = symbols().getsockopt(
    fd,
    SOL_SOCKET,
    SO_PEERCRED,
    new Uint8Array(cred.buffer),
    new Uint8Array(len.buffer),
  );
  if (rc !== 0 || len[0] < cred.byteLength) return undefined;
  return { pid: cred[0], uid: cred[1] >>> 0, gid: cred[2] >>> 0 };
}

/** The path a unix socket is bound to ("" for none); undefined when `fd` is not one. */
function localPath(fd: number): string | undefined {
  const addr = new Uint8Array(SOCKADDR_UN_BYTES);
  const len = new Uint32Array([SOCKADDR_UN_BYTES]);
  if (symbols().getsockname(fd, addr, new Uint8Array(len.buffer)) !== 0) return undefined;
  if ((addr[0] | (addr[1] << 8)) !== AF_UNIX) return undefined;
  const end = Math.min(len[0], SOCKADDR_UN_BYTES);
  const raw = addr.subarray(2, end);
  const nul = raw.indexOf(0);
  return new TextDecoder().decode(nul >= 0 ? raw.subarray(0, nul) : raw);
}

function isListening(fd: number): boolean {
  const value = new Int32Array(1);
  const len = new Uint32Array([4]);
  const rc = symbols().getsockopt(
    fd,
    SOL_SOCKET,
    SO_ACCEPTCONN,
    new Uint8Array(value.buffer),
    new Uint8Array(len.buffer),
  );
  return rc === 0 && value[0] !== 0;
}

/** This process's socket descriptors, as descriptor → socket inode. */
function ownSockets(): Map<number, string> {
  const out = new Map<number, string>();
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      continue; // closed since the listing
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) out.set(Number(entry.name), m[1]);
  }
  return out;
}

/** Finds the credentials of connections accepted on one listening path. */
export interface PeerLookup {
  /**
   * The credentials of the connection just accepted (call once per accept,
   * before the next); undefined when it cannot be told apart.
   */
  identifyAccepted(): PeerCredentials | undefined;
}

/** A lookup for connections accepted on `socketPath`. */
export function peerLookup(socketPath: string): PeerLookup {
  /** Inodes of sockets already identified (and the listener's). */
  let known = new Set<string>();
  return {
    identifyAccepted() {
      const sockets = ownSockets();
      const fresh: number[] = [];
      const stillOpen = new Set<string>();
      for (const [fd, inode] of sockets) {
        if (known.has(inode)) {
          stillOpen.add(inode);
          continue;
        }
        if (localPath(fd) !== socketPath) continue;
        stillOpen.add(inode);
        if (!isListening(fd)) fresh.push(fd);
      }
      // Sockets gone since the last lookup are forgotten; the new one is remembered.
      known = stillOpen;
      if (fresh.length !== 1) return undefined;
      return peerCredentials(fresh[0]);
    },
  };
}
