/**
 * Moving a host NIC into a pod's network namespace and back.
 *
 * Into the pod: the link moves and takes its pod-side name in one request,
 * then gets its MTU, addresses, up state and routes there. The kernel
 * applies such a request in two steps (it moves the link under its own name
 * — or under the new one when its own is taken there — and renames it
 * after), so a name already taken in the pod is refused before anything
 * moves. The kernel drops a link's addresses when it changes namespace, so
 * the host's addresses are read first; the caller records them (and name,
 * MTU, up state) before the move.
 *
 * Back to the host: while the pod's namespace exists the link moves back
 * under its host name (a temporary name when that is taken meanwhile),
 * then gets its host MTU, addresses and up state again. When the namespace
 * is gone the kernel has already put a physical NIC back in the initial
 * namespace (a virtual one, such as a veth, died with the namespace): the
 * link is looked for by its hardware address and restored where it is.
 *
 * Everything here is synchronous netlink: a NIC is never half-handled
 * across an await.
 *
 * @module
 */

import { addAddr, listAddrs } from "../netlink/addr.ts";
import { RT_SCOPE } from "../netlink/constants.ts";
import { isExists } from "../netlink/errors.ts";
import { findLink, type Link, listLinks, setLink, setLinkMtu, setLinkUp } from "../netlink/link.ts";
import type { LinkRef } from "../netlink/link_kinds.ts";
import { THREAD_NETNS_PATH } from "../netlink/netns.ts";
import { addRoute } from "../netlink/route.ts";
import { closeHandle, type Handle, openHandle } from "../netlink/socket.ts";
import type { MovedNic, NicPlan } from "./state.ts";

/** What a NIC looks like in the pod after the move. */
export interface NicInPod {
  ifName: string;
  mac: string;
  mtu: number;
  /** CIDR addresses. */
  addresses: string[];
}

/** A NIC that cannot be moved; the message says which and why. */
export class NicError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NicError";
  }
}

function sameMac(l: Link, mac: string): boolean {
  const m = mac.toLowerCase();
  return l.mac?.toLowerCase() === m || l.permanentMac?.toLowerCase() === m;
}

/** The link named `name` with hardware address `mac`, else any link with that address. */
export function findNic(h: Handle, name: string, mac: string): Link | undefined {
  const byName = findLink(h, name);
  if (byName && sameMac(byName, mac)) return byName;
  return listLinks(h).find((l) => sameMac(l, mac));
}

/** The link's global addresses (CIDR), the ones that move with it. */
export function globalAddresses(h: Handle, index: number): string[] {
  return listAddrs(h, { link: index }).filter((a) => a.scope === RT_SCOPE.UNIVERSE).map((a) =>
    a.cidr
  );
}

function addAll(h: Handle, link: LinkRef, cidrs: readonly string[]): void {
  for (const cidr of cidrs) {
    try {
      addAddr(h, link, cidr, cidr.includes(":") ? { nodad: true } : {});
    } catch (err) {
      if (!isExists(err)) throw err;
    }
  }
}

/**
 * Moves the NIC at host index `index` into `podNetns` and sets it up as
 * `plan` says (`hostAddresses` when the plan keeps the host's). Throws
 * NicError; the caller puts it back with {@link moveNicBack}.
 */
export function moveNicIntoPod(
  host: Handle,
  index: number,
  podNetns: string,
  plan: NicPlan,
  hostAddresses: readonly string[],
): NicInPod {
  const pod = openHandle({ netnsPath: podNetns });
  try {
    if (findLink(pod, plan.ifName)) {
      throw new NicError(
        `moving NIC ${plan.hostName} into the pod: the pod already has an interface named "${plan.ifName}"`,
      );
    }
    try {
      setLink(host, index, { up: false });
      setLink(host, index, { netns: podNetns, name: plan.ifName });
    } catch (err) {
      throw new NicError(`moving NIC ${plan.hostName} into the pod: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const link = findLink(pod, plan.ifName);
    if (!link) {
      throw new NicError(`NIC ${plan.hostName} did not arrive in the pod as ${plan.ifName}`);
    }
    if (plan.mtu && plan.mtu !== link.mtu) setLinkMtu(pod, plan.ifName, plan.mtu);
    const addresses = plan.keepHostAddresses ? [...hostAddresses] : plan.addresses;
    addAll(pod, plan.ifName, addresses);
    setLinkUp(pod, plan.ifName);
    for (const r of plan.routes) {
      try {
        addRoute(pod, { dst: r.dst, gateway: r.gw, oif: plan.ifName });
      } catch (err) {
        if (!isExists(err)) throw err;
      }
    }
    return { ifName: plan.ifName, mac: link.mac ?? plan.mac, mtu: plan.mtu ?? link.mtu, addresses };
  } catch (err) {
    if (err instanceof NicError) throw err;
    throw new NicError(`setting up NIC ${plan.ifName} in the pod: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    closeHandle(pod);
  }
}

function netnsExists(path: string | undefined): path is string {
  if (!path) return false;
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function temporaryName(): string {
  return `hydra${crypto.getRandomValues(new Uint32Array(1))[0].toString(36).slice(0, 8)}`;
}

/**
 * Moves the NIC out of the pod's namespace into the host handle's, under
 * its host name when that is free there, else a temporary one. A move the
 * kernel did only half (moved, not renamed) is finished by the caller.
 */
function moveOut(host: Handle, podNetns: string, nic: MovedNic): void {
  const pod = openHandle({ netnsPath: podNetns });
  try {
    const link = findNic(pod, nic.ifName, nic.mac);
    if (!link) return;
    setLink(pod, link.index, { up: false });
    const name = findLink(host, nic.hostName) ? temporaryName() : nic.hostName;
    try {
      setLink(pod, link.index, { netns: host.netns ?? THREAD_NETNS_PATH, name });
    } catch (err) {
      if (!isExists(err)) throw err;
    }
  } finally {
    closeHandle(pod);
  }
}

/**
 * Puts a NIC back on the host as it was. Returns "restored", or "gone"
 * when it is nowhere to be found (a virtual link dies with the pod's
 * namespace). Throws on kernel refusals; the record stays for a retry.
 */
export function moveNicBack(
  host: Handle,
  podNetns: string | undefined,
  nic: MovedNic,
): "restored" | "gone" {
  if (netnsExists(podNetns)) moveOut(host, podNetns, nic);
  const link = findNic(host, nic.hostName, nic.mac);
  if (!link) return "gone";
  if (link.name !== nic.hostName && !findLink(host, nic.hostName)) {
    setLink(host, link.index, { up: false });
    setLink(host, link.index, { name: nic.hostName });
  }
  if (link.mtu !== nic.hostMtu) setLinkMtu(host, link.index, nic.hostMtu);
  addAll(host, link.index, nic.hostAddresses);
  if (nic.hostUp) setLinkUp(host, link.index);
  return "restored";
}
