/**
 * Kernel-layer test bodies: run in fresh network namespaces through a
 * netlink handle, which is closed and the namespaces deleted afterwards,
 * also when the body fails.
 *
 * @module
 */

import {
  addLink,
  closeHandle,
  delLink,
  type Handle,
  openHandle,
  setLink,
} from "../../netlink/mod.ts";
import { type TestNetns, withNetns } from "./netns.ts";

/** A test function running `fn` with `count` fresh namespaces and a handle in the first. */
export function inNetns(
  count: number,
  fn: (h: Handle, ...ns: TestNetns[]) => void | Promise<void>,
): () => Promise<void> {
  return () =>
    withNetns(count, async (...ns) => {
      const h = openHandle({ netnsPath: ns[0].path });
      try {
        await fn(h, ...ns);
      } finally {
        closeHandle(h);
      }
    });
}

/** A test function running `fn` in a fresh namespace holding the veth pair va/vb, up. */
export function inVethNetns(
  fn: (h: Handle, ns: TestNetns) => void | Promise<void>,
): () => Promise<void> {
  return inNetns(1, async (h, ns) => {
    addLink(h, { kind: "veth", name: "va", peer: { name: "vb" }, up: true });
    await fn(h, ns);
  });
}

/**
 * Whether this kernel renames a link that is up (Linux 6.2 and later), tried
 * on a veth pair made and removed in the namespace of `h`.
 */
export function kernelRenamesRunningLinks(h: Handle): boolean {
  addLink(h, { kind: "veth", name: "hy-rr0", peer: { name: "hy-rr1" }, up: true });
  try {
    setLink(h, "hy-rr0", { name: "hy-rr2" });
    return true;
  } catch {
    return false;
  } finally {
    delLink(h, "hy-rr1");
  }
}
