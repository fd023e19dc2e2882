/**
 * Persistent tap devices. The kernel does not create tun/tap devices over
 * rtnetlink; they are made with ioctls on /dev/net/tun, and land in the
 * namespace of whoever opened /dev/net/tun, so the open happens on the
 * calling thread inside the target namespace.
 *
 * @module
 */

import { check, closeFd, cstr, libc, O_RDWR, openFd } from "./ffi.ts";
import { type NetnsRef, withNetnsSync } from "./netns.ts";

const TUNSETIFF = 0x400454can;
const TUNSETPERSIST = 0x400454cbn;
const TUNSETOWNER = 0x400454ccn;
const TUNSETGROUP = 0x400454cen;
const IFF_TAP = 0x0002;
const IFF_MULTI_QUEUE = 0x0100;
const IFF_NO_PI = 0x1000;
const IFF_VNET_HDR = 0x4000;

/** Options of a persistent tap device. */
export interface TapOptions {
  owner?: number;
  group?: number;
  multiQueue?: boolean;
  vnetHdr?: boolean;
}

/**
 * Creates persistent tap `name` in namespace `netns` (default: the calling
 * thread's). It survives this process; delete it with `delLink`.
 */
export function createTap(netns: NetnsRef | undefined, name: string, opts: TapOptions = {}): void {
  withNetnsSync(netns, () => {
    const fd = openFd("/dev/net/tun", O_RDWR);
    try {
      const ifr = new Uint8Array(40); // struct ifreq: name[16], then flags
      const nameBytes = cstr(name);
      ifr.set(nameBytes.subarray(0, Math.min(15, nameBytes.length - 1)));
      let flags = IFF_TAP | IFF_NO_PI;
      if (opts.multiQueue) flags |= IFF_MULTI_QUEUE;
      if (opts.vnetHdr) flags |= IFF_VNET_HDR;
      new DataView(ifr.buffer).setUint16(16, flags, true);
      const op = `create tap ${JSON.stringify(name)}`;
      check(libc.ioctl(fd, TUNSETIFF, Deno.UnsafePointer.of(ifr)), op);
      if (opts.owner !== undefined) {
        check(libc.ioctl(fd, TUNSETOWNER, Deno.UnsafePointer.create(BigInt(opts.owner))), op);
      }
      if (opts.group !== undefined) {
        check(libc.ioctl(fd, TUNSETGROUP, Deno.UnsafePointer.create(BigInt(opts.group))), op);
      }
      check(libc.ioctl(fd, TUNSETPERSIST, Deno.UnsafePointer.create(1n)), op);
    } finally {
      closeFd(fd);
    }
  });
}
