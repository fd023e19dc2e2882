/**
 * TCP bulk throughput between two network namespaces, for the hybrid
 * benchmark: a listener in one namespace, a client in the other (each
 * socket opened on this thread inside its namespace, where it stays), one
 * poll loop pumping `bytes` through the connection. Both ends run in this
 * one thread, so the figure is bounded by it — the same bound for every
 * path and for the veth baseline, which is what makes them comparable.
 *
 * @module
 */

import { errno } from "../netlink/ffi.ts";
import { parseIp } from "../ipaddr/ip.ts";
import { withNetnsSync } from "../netlink/netns.ts";

const lib = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
});

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const POLLIN = 1;
const POLLOUT = 4;
const CHUNK = 256 * 1024;

function sockaddr(ip: string, port: number): Uint8Array<ArrayBuffer> {
  const sa = new Uint8Array(16);
  const view = new DataView(sa.buffer);
  view.setUint16(0, AF_INET, true);
  view.setUint16(2, port, false);
  sa.set(parseIp(ip), 4);
  return sa;
}

function tcpSocket(netns: string): number {
  return withNetnsSync(netns, () => {
    const fd = lib.symbols.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`socket: errno ${errno()}`);
    return fd;
  });
}

function pollOnce(fds: [number, number][], timeoutMs: number): number[] {
  const pfd = new Int32Array(fds.length * 2);
  fds.forEach(([fd, ev], i) => {
    pfd[i * 2] = fd;
    pfd[i * 2 + 1] = ev;
  });
  lib.symbols.poll(new Uint8Array(pfd.buffer), BigInt(fds.length), timeoutMs);
  return fds.map((_, i) => (pfd[i * 2 + 1] >>> 16) & 0xffff);
}

/** Opens listener and client and returns the connected pair; throws after 5 s. */
function connectPair(from: string, serverNetns: string, to: string, port: number) {
  const listener = tcpSocket(serverNetns);
  const one = new Int32Array([1]);
  lib.symbols.setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, new Uint8Array(one.buffer), 4);
  if (
    lib.symbols.bind(listener, sockaddr("0.0.0.0", port), 16) < 0 ||
    lib.symbols.listen(listener, 4) < 0
  ) {
    lib.symbols.close(listener);
    throw new Error(`listen tcp/${port}: errno ${errno()}`);
  }
  const client = tcpSocket(from);
  lib.symbols.connect(client, sockaddr(to, port), 16);
  let server = -1;
  const deadline = performance.now() + 5_000;
  while (server < 0) {
    if (performance.now() > deadline) {
      lib.symbols.close(client);
      lib.symbols.close(listener);
      throw new Error(`connect ${to}:${port} timed out`);
    }
    const [rev] = pollOnce([[listener, POLLIN]], 50);
    if (rev & POLLIN) {
      server = lib.symbols.accept4(listener, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
  }
  lib.symbols.close(listener);
  return { client, server };
}

/**
 * Sends `bytes` from `from` to `to:port` (a listener made in
 * `serverNetns`) and returns the throughput in Gbit/s, timed from the
 * first byte sent to the last received.
 */
export function tcpGbps(
  from: string,
  serverNetns: string,
  to: string,
  port: number,
  bytes: number,
): number {
  const { client, server } = connectPair(from, serverNetns, to, port);
  try {
    const out = new Uint8Array(CHUNK);
    const inb = new Uint8Array(4 * CHUNK);
    let sent = 0;
    let received = 0;
    const t0 = performance.now();
    const deadline = t0 + 60_000;
    while (received < bytes) {
      if (performance.now() > deadline) {
        throw new Error(`transfer to ${to} stalled at ${received} bytes`);
      }
      const fds: [number, number][] = [[server, POLLIN]];
      if (sent < bytes) fds.push([client, POLLOUT]);
      const rev = pollOnce(fds, 100);
      if (sent < bytes && rev[1] & POLLOUT) {
        const n = Number(lib.symbols.send(client, out, BigInt(Math.min(CHUNK, bytes - sent)), 0));
        if (n > 0) sent += n;
      }
      if (rev[0] & POLLIN) {
        for (;;) {
          const n = Number(lib.symbols.recv(server, inb, BigInt(inb.length), 0));
          if (n <= 0) break;
          received += n;
        }
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    return (bytes * 8) / seconds / 1e9;
  } finally {
    lib.symbols.close(client);
    lib.symbols.close(server);
  }
}
