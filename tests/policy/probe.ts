/**
 * Real traffic between network namespaces for the policy tests, over
 * sockets opened through libc inside each namespace (a socket stays in
 * the namespace it was opened in):
 *
 * - servers: in a pod's namespace, TCP and UDP echo servers on ports of
 *   every address;
 * - {@link probe}: TCP connects and UDP request/replies from namespaces to
 *   addresses, all at once, each true when it got through (a TCP handshake
 *   completed, a UDP reply came back) before the deadline;
 * - {@link openTcp}: a connection that stays open, to check that an
 *   established connection outlives a policy change.
 *
 * Everything runs synchronously on the test's thread, one poll loop
 * serving the servers while it waits for the clients. IPv4 only.
 *
 * @module
 */

import { errno } from "../../netlink/ffi.ts";
import { parseIp } from "../../ipaddr/ip.ts";
import { withNetnsSync } from "../../netlink/netns.ts";

const lib = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recvfrom: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "buffer"], result: "isize" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
});

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_ERROR = 4;
const POLLIN = 1;
const POLLOUT = 4;
const EINPROGRESS = 115;
const EAGAIN = 11;

/** A transport protocol the probes speak. */
export type Proto = "tcp" | "udp";

function sockaddr(ip: string, port: number): Uint8Array<ArrayBuffer> {
  const sa = new Uint8Array(16);
  const view = new DataView(sa.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  sa.set(parseIp(ip), 4);
  return sa;
}

function openSocket(netns: string, proto: Proto): number {
  return withNetnsSync(netns, () => {
    const type = proto === "tcp" ? SOCK_STREAM : SOCK_DGRAM;
    const fd = lib.symbols.socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`socket: errno ${errno()}`);
    return fd;
  });
}

/** Fds the poll loop serves: listeners, accepted connections, UDP servers. */
const served = { listeners: new Set<number>(), conns: new Set<number>(), udp: new Set<number>() };

/** Echo servers in one namespace. */
export interface Servers {
  close(): void;
}

/** Starts TCP and UDP echo servers on `ports` of every address of `netns`. */
export function startServers(netns: string, ports: { proto: Proto; port: number }[]): Servers {
  const fds: number[] = [];
  try {
    for (const { proto, port } of ports) {
      const fd = openSocket(netns, proto);
      fds.push(fd);
      lib.symbols.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, new Int32Array([1]), 4);
      if (lib.symbols.bind(fd, sockaddr("0.0.0.0", port), 16) < 0) {
        throw new Error(`bind ${proto}/${port}: errno ${errno()}`);
      }
      if (proto === "tcp") {
        if (lib.symbols.listen(fd, 512) < 0) throw new Error(`listen: errno ${errno()}`);
        served.listeners.add(fd);
      } else served.udp.add(fd);
    }
  } catch (err) {
    for (const fd of fds) lib.symbols.close(fd);
    throw err;
  }
  return {
    close() {
      for (const fd of fds) {
        served.listeners.delete(fd);
        served.udp.delete(fd);
        lib.symbols.close(fd);
      }
    },
  };
}

/** Serves whatever is ready on the server side. */
function serve(fd: number): void {
  const buf = new Uint8Array(2048);
  if (served.listeners.has(fd)) {
    for (;;) {
      const c = lib.symbols.accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) break;
      served.conns.add(c);
    }
  } else if (served.udp.has(fd)) {
    const from = new Uint8Array(16);
    const len = new Uint32Array([16]);
    for (;;) {
      const n = Number(lib.symbols.recvfrom(fd, buf, 2048n, 0, from, new Uint8Array(len.buffer)));
      if (n < 0) break;
      lib.symbols.sendto(fd, buf.subarray(0, n), BigInt(n), 0, from, 16);
    }
  } else if (served.conns.has(fd)) {
    const n = Number(lib.symbols.recv(fd, buf, 2048n, 0));
    if (n > 0) lib.symbols.send(fd, buf.subarray(0, n), BigInt(n), 0);
    else if (n === 0 || errno() !== EAGAIN) {
      served.conns.delete(fd);
      lib.symbols.close(fd);
    }
  }
}

/**
 * Polls the servers and `clients` (fd → events wanted) until `done` says so
 * or `deadline` (performance.now()) passes; calls `ready` for each client
 * fd with events.
 */
function pump(
  clients: Map<number, number>,
  ready: (fd: number, revents: number) => void,
  done: () => boolean,
  deadline: number,
): void {
  while (!done()) {
    const left = Math.ceil(deadline - performance.now());
    if (left <= 0) return;
    const fds = [
      ...[...served.listeners, ...served.udp, ...served.conns].map((fd) => [fd, POLLIN]),
      ...clients,
    ];
    const pfd = new Int32Array(fds.length * 2);
    fds.forEach(([fd, ev], i) => {
      pfd[i * 2] = fd;
      pfd[i * 2 + 1] = ev;
    });
    const bytes = new Uint8Array(pfd.buffer);
    if (lib.symbols.poll(bytes, BigInt(fds.length), Math.min(left, 50)) <= 0) continue;
    for (let i = 0; i < fds.length; i++) {
      const revents = (pfd[i * 2 + 1] >>> 16) & 0xffff;
      if (!revents) continue;
      const fd = pfd[i * 2];
      if (clients.has(fd)) ready(fd, revents);
      else serve(fd);
    }
  }
}

/** One probe: from a namespace to an address and port. */
export interface Probe {
  from: string;
  to: string;
  proto: Proto;
  port: number;
}

function soError(fd: number): number {
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  lib.symbols.getsockopt(
    fd,
    SOL_SOCKET,
    SO_ERROR,
    new Uint8Array(v.buffer),
    new Uint8Array(len.buffer),
  );
  return v[0];
}

/** Sends every probe at once; true for each that got through within `timeoutMs`. */
export function probe(probes: Probe[], timeoutMs = 1_000): boolean[] {
  const result = probes.map(() => false);
  const clients = new Map<number, number>();
  const index = new Map<number, number>();
  const payload = new TextEncoder().encode("hydra-probe");
  try {
    probes.forEach((p, i) => {
      const fd = openSocket(p.from, p.proto);
      index.set(fd, i);
      const rc = lib.symbols.connect(fd, sockaddr(p.to, p.port), 16);
      if (p.proto === "tcp") {
        if (rc === 0) result[i] = true;
        else if (errno() === EINPROGRESS) clients.set(fd, POLLOUT);
      } else if (
        rc === 0 && Number(lib.symbols.send(fd, payload, BigInt(payload.length), 0)) >= 0
      ) {
        clients.set(fd, POLLIN);
      }
    });
    let pending = clients.size;
    const buf = new Uint8Array(64);
    pump(
      clients,
      (fd, revents) => {
        const i = index.get(fd)!;
        if (probes[i].proto === "tcp") result[i] = (revents & POLLOUT) !== 0 && soError(fd) === 0;
        else result[i] = Number(lib.symbols.recv(fd, buf, 64n, 0)) > 0;
        clients.delete(fd);
        pending--;
      },
      () => pending === 0,
      performance.now() + timeoutMs,
    );
  } finally {
    for (const fd of index.keys()) lib.symbols.close(fd);
  }
  return result;
}

/** A TCP connection that stays open. */
export interface TcpConnection {
  /** Sends a byte and waits for its echo; true when it came back in time. */
  roundTrip(timeoutMs?: number): boolean;
  close(): void;
}

/** Connects from `from` to `to:port`; throws when the handshake does not complete. */
export function openTcp(from: string, to: string, port: number): TcpConnection {
  const fd = openSocket(from, "tcp");
  const rc = lib.symbols.connect(fd, sockaddr(to, port), 16);
  let ok = rc === 0;
  if (!ok && errno() === EINPROGRESS) {
    pump(
      new Map([[fd, POLLOUT]]),
      (_, rev) => {
        ok = (rev & POLLOUT) !== 0 && soError(fd) === 0;
      },
      () => ok,
      performance.now() + 2_000,
    );
  }
  if (!ok) {
    lib.symbols.close(fd);
    throw new Error(`connect ${to}:${port} from ${from} failed`);
  }
  return {
    roundTrip(timeoutMs = 1_000) {
      const byte = new Uint8Array([42]);
      if (Number(lib.symbols.send(fd, byte, 1n, 0)) !== 1) return false;
      let back = false;
      const buf = new Uint8Array(16);
      pump(
        new Map([[fd, POLLIN]]),
        () => {
          back = Number(lib.symbols.recv(fd, buf, 16n, 0)) > 0;
        },
        () => back,
        performance.now() + timeoutMs,
      );
      return back;
    },
    close() {
      lib.symbols.close(fd);
    },
  };
}

/**
 * UDP round trips from `from` to an echo socket of its own on `to:port` in
 * `serverNetns`, each from a new socket (a new flow, so every request
 * passes the server's whole rule list rather than its conntrack shortcut);
 * returns each round trip's time in microseconds (send to reply received).
 * Only the two sockets are polled. Throws when a reply does not come.
 */
export function udpRoundTrips(
  from: string,
  serverNetns: string,
  to: string,
  port: number,
  count: number,
): number[] {
  const server = openSocket(serverNetns, "udp");
  const out: number[] = [];
  try {
    if (lib.symbols.bind(server, sockaddr("0.0.0.0", port), 16) < 0) {
      throw new Error(`bind udp/${port}: errno ${errno()}`);
    }
    const buf = new Uint8Array(64);
    const src = new Uint8Array(16);
    const srcLen = new Uint32Array([16]);
    const pfd = new Int32Array(4);
    const payload = new Uint8Array([1, 2, 3, 4]);
    for (let i = 0; i < count; i++) {
      const fd = openSocket(from, "udp");
      try {
        lib.symbols.connect(fd, sockaddr(to, port), 16);
        const t0 = performance.now();
        if (Number(lib.symbols.send(fd, payload, 4n, 0)) < 0) {
          throw new Error(`send: errno ${errno()}`);
        }
        let answered = false;
        while (!answered) {
          if (performance.now() - t0 > 1_000) throw new Error(`no reply from ${to}:${port}`);
          pfd.set([server, POLLIN, fd, POLLIN]);
          if (lib.symbols.poll(new Uint8Array(pfd.buffer), 2n, 100) <= 0) continue;
          if ((pfd[1] >>> 16) & POLLIN) {
            srcLen[0] = 16;
            const n = Number(
              lib.symbols.recvfrom(server, buf, 64n, 0, src, new Uint8Array(srcLen.buffer)),
            );
            if (n > 0) lib.symbols.sendto(server, buf.subarray(0, n), BigInt(n), 0, src, 16);
          }
          if ((pfd[3] >>> 16) & POLLIN) answered = Number(lib.symbols.recv(fd, buf, 64n, 0)) > 0;
        }
        out.push((performance.now() - t0) * 1000);
      } finally {
        lib.symbols.close(fd);
      }
    }
  } finally {
    lib.symbols.close(server);
  }
  return out;
}
