/**
 * The kernel side of attaching a container to a Linux bridge, shared by
 * hydra-bridge and hydra-vxlan: make sure the bridge exists, create the veth
 * pair (container end in the pod namespace under CNI_IFNAME, host end
 * `veth<8 hex>` in the host namespace) and plug the host end into the bridge
 * with its port settings and VLANs, and put gateway addresses on the bridge.
 *
 * Host-side calls act through a handle opened in the plugin's own
 * namespace (the runtime's), container-side ones through a handle opened in
 * the pod's.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Interface } from "../cni/types.ts";
import {
  addAddr,
  addBridgeVlan,
  addLink,
  cidrContains,
  delAddr,
  delBridgeVlan,
  findLink,
  getLink,
  type Handle,
  IFF,
  isExists,
  type Link,
  listAddrs,
  listBridgeVlans,
  parseCidr,
  setBridgePort,
  setLink,
  setLinkMac,
  setLinkUp,
  sysctlRead,
  THREAD_NETNS_PATH,
} from "../netlink/mod.ts";
import { trySysctl } from "./iface.ts";
import { randomVethName } from "./links.ts";

/** What {@link ensureBridge} makes sure of. */
export interface BridgeSpec {
  name: string;
  /** MTU for a new bridge (0: kernel default). */
  mtu: number;
  promisc: boolean;
  /** Turn VLAN filtering on when creating the bridge. */
  vlanFiltering: boolean;
}

/** The bridge, whether this call created it, and how to take back its changes. */
export interface EnsuredBridge {
  link: Link;
  created: boolean;
  /** Puts an existing bridge's up state, promiscuous mode and accept_ra back. */
  restore: () => void;
}

function internal(msg: string): CniError {
  return new CniError(ErrorCode.Internal, msg);
}

/**
 * Creates bridge `spec.name` unless it exists, checks that an existing link
 * of that name is a bridge (CniError 7 otherwise, nothing changed), sets
 * promiscuous mode when asked, turns off IPv6 router advertisements on it
 * (the plugin owns its routes) and brings it up.
 */
export function ensureBridge(h: Handle, spec: BridgeSpec): EnsuredBridge {
  let link = findLink(h, spec.name);
  let created = false;
  if (!link) {
    try {
      addLink(h, {
        kind: "bridge",
        name: spec.name,
        mtu: spec.mtu || undefined,
        vlanFiltering: spec.vlanFiltering || undefined,
      });
      created = true;
    } catch (e) {
      if (!isExists(e)) throw internal(`could not add "${spec.name}": ${(e as Error).message}`);
    }
    link = getLink(h, spec.name);
  }
  if (link.kind !== "bridge") {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `"${spec.name}" already exists but is not a bridge` +
        (link.kind ? ` (it is a ${link.kind})` : ""),
    );
  }
  const before = link;
  const raKey = `net/ipv6/conf/${spec.name}/accept_ra`;
  let raBefore: string | undefined;
  try {
    raBefore = sysctlRead(undefined, raKey);
  } catch {
    raBefore = undefined;
  }
  // Only what differs is written: on the common path (a bridge already up,
  // router advertisements off) a pod's ADD costs one lookup here instead of
  // two writes and a second lookup, each queued behind whatever else holds
  // the kernel's RTNL lock at that moment.
  const changed = spec.promisc || !link.up;
  if (spec.promisc) setLink(h, link.index, { promisc: true, up: true });
  else if (!link.up) setLinkUp(h, link.index);
  if (raBefore !== "0") trySysctl(undefined, raKey, "0");
  const restore = () => {
    if (created) return;
    const promiscBefore = (before.flags & IFF.PROMISC) !== 0;
    setLink(h, before.index, { up: before.up, promisc: promiscBefore });
    if (raBefore !== undefined) trySysctl(undefined, raKey, raBefore);
  };
  return { link: changed ? getLink(h, link.index) : link, created, restore };
}

/** How the veth pair is made and plugged into the bridge. */
export interface VethSpec {
  /** Container-side name (CNI_IFNAME). */
  ifName: string;
  /** 0: kernel default. */
  mtu: number;
  /** MAC for the container end. */
  mac?: string;
  bridgeIndex: number;
  hairpin: boolean;
  isolated: boolean;
  /** Port VLAN (PVID, untagged); 0 for none. */
  vlan: number;
  /** Trunk VLANs (tagged). */
  trunk: readonly number[];
  /** Keep VLAN 1 on the port when VLANs are configured. */
  preserveDefaultVlan: boolean;
}

/** The two ends of a pair made by {@link createVethPair}. */
export interface VethPair {
  /** The host end (no sandbox). */
  host: Interface;
  /** The container end. */
  container: Interface;
  /** Index of the host end in the host namespace. */
  hostIndex: number;
}

/**
 * Creates the veth pair from inside the container namespace, the peer going
 * straight to the host namespace under a random `veth<8 hex>` name (a new
 * name is drawn when one is taken). The container end stays down.
 */
export function createVethPair(
  host: Handle,
  pod: Handle,
  podNetns: string,
  ifName: string,
  mtu: number,
  mac: string | undefined,
): VethPair {
  for (let attempt = 0;; attempt++) {
    const hostName = randomVethName();
    try {
      addLink(pod, {
        kind: "veth",
        name: ifName,
        mtu: mtu || undefined,
        mac,
        peer: { name: hostName, mtu: mtu || undefined, netns: THREAD_NETNS_PATH },
      });
    } catch (e) {
      // The container name was checked to be free: a clash is the host name.
      if (isExists(e) && attempt < 10 && !findLink(pod, ifName)) continue;
      throw internal(`failed to make veth pair: ${(e as Error).message}`);
    }
    const cont = getLink(pod, ifName);
    const hostLink = getLink(host, hostName);
    return {
      host: { name: hostName, mac: hostLink.mac },
      container: { name: ifName, mac: cont.mac, sandbox: podNetns },
      hostIndex: hostLink.index,
    };
  }
}

/**
 * Brings the host end up and makes it a port of the bridge with the
 * spec's hairpin, isolation and VLAN settings. `name` is the host end's
 * name when the caller knows it (saves a lookup).
 */
export function plugHostEnd(h: Handle, hostIndex: number, spec: VethSpec, name?: string): void {
  name ??= getLink(h, hostIndex).name;
  // Router advertisements off before the port comes up.
  trySysctl(undefined, `net/ipv6/conf/${name}/accept_ra`, "0");
  // One request: up, the master, and a queue length of 0 on the host end,
  // as the reference plugin leaves it (veth devices send without a queue
  // either way).
  try {
    setLink(h, hostIndex, { up: true, master: spec.bridgeIndex, txqlen: 0 });
  } catch (e) {
    throw internal(`failed to connect "${name}" to bridge: ${(e as Error).message}`);
  }
  // A port just made has hairpin and isolation off: only turning one on
  // needs a request.
  if (spec.hairpin || spec.isolated) {
    try {
      setBridgePort(h, hostIndex, { hairpin: spec.hairpin, isolated: spec.isolated });
    } catch (e) {
      throw internal(`failed to set up hairpin/isolation for "${name}": ${(e as Error).message}`);
    }
  }
  setPortVlans(h, hostIndex, name, spec);
}

function setPortVlans(h: Handle, index: number, name: string, spec: VethSpec): void {
  const wanted = spec.vlan !== 0 || spec.trunk.length > 0;
  try {
    if (wanted && !spec.preserveDefaultVlan) {
      for (const v of listBridgeVlans(h, index)) delBridgeVlan(h, index, { vid: v.vid });
    }
    if (spec.vlan !== 0) addBridgeVlan(h, index, { vid: spec.vlan, pvid: true, untagged: true });
    for (const vid of spec.trunk) addBridgeVlan(h, index, { vid, pvid: false, untagged: false });
    // A trunk without a port VLAN carries VLAN 1 untagged, as it always did.
    if (spec.vlan === 0 && spec.trunk.length > 0) {
      addBridgeVlan(h, index, { vid: 1, pvid: true, untagged: true });
    }
  } catch (e) {
    throw internal(`failed to set up vlans on interface "${name}": ${(e as Error).message}`);
  }
}

/**
 * Puts gateway address `cidr` on link `index` (the bridge). Another IPv4
 * address, or an overlapping IPv6 one, is replaced when `force`, else it
 * is an error (CniError 7). Returns whether the address was added.
 */
export function ensureGatewayAddr(
  h: Handle,
  index: number,
  cidr: string,
  force: boolean,
): boolean {
  const want = parseCidr(cidr);
  const wantText = `${want.ip}/${want.prefixLen}`;
  // The name is only needed for error messages.
  const linkName = () => getLink(h, index).name;
  for (const a of listAddrs(h, { link: index, family: want.family })) {
    if (a.cidr === wantText) return false;
    // Link-local IPv6 addresses live beside any gateway.
    if (want.family === 6 && a.scope !== 0) continue;
    const overlaps = want.family === 4 || cidrContains(a.cidr, want.ip) ||
      cidrContains(wantText, a.address);
    if (!overlaps) continue;
    if (!force) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `"${linkName()}" already has an IP address different from ${wantText} (${a.cidr}); ` +
          `set forceAddress to replace it`,
      );
    }
    delAddr(h, index, a.cidr);
  }
  try {
    addAddr(h, index, wantText, {
      broadcast: want.family === 4 && want.prefixLen < 31 ? true : undefined,
    });
  } catch (e) {
    if (!isExists(e)) {
      throw internal(
        `could not add IP address ${wantText} to "${linkName()}": ${(e as Error).message}`,
      );
    }
  }
  return true;
}

/**
 * Pins the bridge's MAC to `mac`, so it no longer follows the lowest MAC of
 * its ports as they come and go.
 */
export function pinBridgeMac(h: Handle, index: number, mac: string | undefined): void {
  if (!mac) return;
  try {
    setLinkMac(h, index, mac);
  } catch (e) {
    throw internal(`could not set bridge's mac: ${(e as Error).message}`);
  }
}

/**
 * The host interface carrying the gateway of VLAN `vlan`: a veth pair
 * `<bridge>.<vlan>` / `veth<8 hex>` in the host namespace, the latter a port
 * of the bridge in that VLAN. Created when missing; returns it and whether
 * it was created.
 */
export function ensureVlanGateway(
  h: Handle,
  bridge: Link,
  vlan: number,
  preserveDefaultVlan: boolean,
): { link: Link; created: boolean } {
  const name = `${bridge.name}.${vlan}`;
  const existing = findLink(h, name);
  if (existing) return { link: existing, created: false };
  for (let attempt = 0;; attempt++) {
    const peer = randomVethName();
    try {
      addLink(h, { kind: "veth", name, mtu: bridge.mtu, peer: { name: peer, mtu: bridge.mtu } });
    } catch (e) {
      if (isExists(e) && attempt < 10 && !findLink(h, name)) continue;
      throw internal(`failed to create vlan gateway "${name}": ${(e as Error).message}`);
    }
    plugHostEnd(h, getLink(h, peer).index, {
      ifName: name,
      mtu: bridge.mtu,
      bridgeIndex: bridge.index,
      hairpin: false,
      isolated: false,
      vlan,
      trunk: [],
      preserveDefaultVlan,
    });
    setLinkUp(h, name);
    return { link: getLink(h, name), created: true };
  }
}
