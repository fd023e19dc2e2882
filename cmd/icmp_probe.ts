/**
 * ICMP echo probes sent from inside a network namespace, for the demo's
 * reachability table. A raw socket is opened while the calling thread is in
 * the source namespace, so it stays bound to that namespace; requests to all
 * targets go out at once and replies are collected until a deadline, so one
 * unreachable address costs no more than the whole batch.
 *
 * IPv4 only (the demo's networks are IPv4).
 *
 * @module
 */

import { withNetnsSync } from "../netlink/netns.ts";
import { parseIp } from "../ipaddr/ip.ts";

const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_ICMP = 1;
const POLLIN = 1;

const lib = Deno.dlopen("libc.so.6", {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
});

function checksum(buf: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (buf.length % 2) sum += buf[buf.length - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

function echoRequest(id: number, seq: number): Uint8Array<ArrayBuffer> {
  const pkt = new Uint8Array(16);
  const view = new DataView(pkt.buffer);
  pkt[0] = 8; // echo request
  view.setUint16(4, id);
  view.setUint16(6, seq);
  view.setUint32(8, 0x68796472); // payload marker
  view.setUint16(2, checksum(pkt));
  return pkt;
}

function sockaddrIn(ip: string): Uint8Array<ArrayBuffer> {
  const sa = new Uint8Array(16);
  new DataView(sa.buffer).setUint16(0, AF_INET, true);
  sa.set(parseIp(ip), 4);
  return sa;
}

/**
 * Sends one echo request from namespace `netnsPath` to each of `targets` and
 * returns which answered within `timeoutMs`.
 */
export function probeAll(
  netnsPath: string,
  targets: string[],
  timeoutMs = 1000,
): Map<string, boolean> {
  const answered = new Map<string, boolean>(targets.map((t) => [t, false]));
  if (targets.length === 0) return answered;
  const fd = withNetnsSync(
    netnsPath,
    () => lib.symbols.socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP),
  );
  if (fd < 0) throw new Error(`cannot open an ICMP socket in ${netnsPath}`);
  try {
    const id = (Deno.pid ^ Math.floor(Math.random() * 0xffff)) & 0xffff;
    targets.forEach((target, seq) => {
      const pkt = echoRequest(id, seq);
      const sa = sockaddrIn(target);
      lib.symbols.sendto(fd, pkt, BigInt(pkt.length), 0, sa, sa.length);
    });
    const pollfd = new Uint8Array(8);
    const pv = new DataView(pollfd.buffer);
    pv.setInt32(0, fd, true);
    pv.setInt16(4, POLLIN, true);
    const buf = new Uint8Array(1500);
    const deadline = Date.now() + timeoutMs;
    let remaining = targets.length;
    while (remaining > 0) {
      const wait = deadline - Date.now();
      if (wait <= 0) break;
      pv.setInt16(6, 0, true);
      if (lib.symbols.poll(pollfd, 1n, wait) <= 0) continue;
      for (;;) {
        const n = Number(lib.symbols.recv(fd, buf, BigInt(buf.length), 0));
        if (n <= 0) break;
        const ihl = (buf[0] & 0x0f) * 4;
        if (n < ihl + 8 || buf[ihl] !== 0) continue; // not an echo reply
        const view = new DataView(buf.buffer, ihl);
        if (view.getUint16(4) !== id) continue;
        const seq = view.getUint16(6);
        const src = `${buf[12]}.${buf[13]}.${buf[14]}.${buf[15]}`;
        if (seq < targets.length && targets[seq] === src && !answered.get(src)) {
          answered.set(src, true);
          remaining--;
        }
      }
    }
  } finally {
    lib.symbols.close(fd);
  }
  return answered;
}
