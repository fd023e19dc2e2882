/**
 * Kernel parameters under /proc/sys, read and written inside a given network
 * namespace. Per-namespace keys (net.ipv4.ip_forward,
 * net.ipv6.conf.eth0.disable_ipv6, …) resolve against the namespace of the
 * thread that opens the file, so the open happens on the calling thread,
 * through FFI, between entering and leaving the namespace.
 *
 * @module
 */

import { NetlinkError } from "./errors.ts";
import { closeFd, O_RDONLY, O_TRUNC, O_WRONLY, openFd, readAll, writeAll } from "./ffi.ts";
import { type NetnsRef, withNetnsSync } from "./netns.ts";

const EINVAL = 22;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * The /proc/sys path of `key`. Dotted keys ("net.ipv4.ip_forward") have
 * dots turned into slashes; keys containing a slash are taken as written
 * ("net/ipv4/conf/eth0.100/forwarding"), which is how to name an interface
 * with a dot in it. A full "/proc/sys/..." path is accepted too. Anything
 * that would leave /proc/sys is refused with EINVAL.
 */
export function sysctlPath(key: string): string {
  let rel = key.startsWith("/proc/sys/") ? key.slice("/proc/sys/".length) : key;
  if (!rel.includes("/")) rel = rel.replaceAll(".", "/");
  const parts = rel.split("/");
  if (!rel || parts.some((p) => p === "" || p === "." || p === "..") || rel.includes("\0")) {
    throw new NetlinkError(`invalid sysctl key ${JSON.stringify(key)}`, EINVAL);
  }
  return `/proc/sys/${rel}`;
}

/**
 * Writes `value` to sysctl `key` inside namespace `netns` (undefined: the
 * calling thread's namespace). ENOENT when the key does not exist there.
 */
export function sysctlWrite(
  netns: NetnsRef | undefined,
  key: string,
  value: string | number,
): void {
  const path = sysctlPath(key);
  const data = encoder.encode(String(value));
  withNetnsSync(netns, () => {
    const fd = openFd(path, O_WRONLY | O_TRUNC);
    try {
      writeAll(fd, data, `write sysctl ${key}`);
    } finally {
      closeFd(fd);
    }
  });
}

/** Reads sysctl `key` inside namespace `netns`, without the trailing newline. */
export function sysctlRead(netns: NetnsRef | undefined, key: string): string {
  const path = sysctlPath(key);
  const bytes = withNetnsSync(netns, () => {
    const fd = openFd(path, O_RDONLY);
    try {
      return readAll(fd, `read sysctl ${key}`);
    } finally {
      closeFd(fd);
    }
  });
  return decoder.decode(bytes).replace(/\n$/, "");
}
