/**
 * hydra's kernel layer: rtnetlink over Deno FFI to libc, network namespaces
 * and sysctls. No `ip` command involved.
 *
 * Everything is synchronous and acts through a {@link Handle} bound to one
 * network namespace:
 *
 * ```ts
 * import * as nl from "./netlink/mod.ts";
 *
 * const h = nl.openHandle({ netnsPath: "/var/run/netns/pod1" });
 * try {
 *   nl.setLinkUp(h, "lo");
 *   nl.addAddr(h, "eth0", "10.1.0.5/24");
 *   nl.addRoute(h, { dst: "default", gateway: "10.1.0.1" });
 * } finally {
 *   nl.closeHandle(h);
 * }
 * ```
 *
 * Kernel refusals throw {@link NetlinkError} (`errno`, `code` such as
 * "EEXIST"); {@link isExists} and {@link isNotFound} classify them.
 *
 * The IP helpers of `ipaddr/ip.ts` and the MAC helpers of `mac.ts` are re-exported here; import them
 * directly to use them without loading the FFI.
 *
 * Worth knowing:
 * - Open one handle per namespace and reuse it; each request is a
 *   send/recv pair of syscalls on the calling thread, with no thread hop.
 * - Code that must run inside a namespace without a handle (files under
 *   /proc/sys/net, /dev/net/tun) goes through {@link withNetnsSync} with a
 *   synchronous function; Deno's own file APIs run on other threads.
 * - Routes default to protocol "boot" and to `ip route`'s scope choice (link
 *   for a device route without gateway); pass `scope` to choose otherwise.
 * - IPv4 addresses get a broadcast address only when asked
 *   (`broadcast: true` derives it from the prefix).
 * - Kernels before 6.2 refuse to rename a link that is up (EBUSY), and a
 *   link moved to another namespace arrives down.
 *
 * @module
 */

export * from "./errors.ts";
export * from "../ipaddr/ip.ts";
export * from "./mac.ts";
export * from "./constants.ts";
export {
  closeHandle,
  type Handle,
  openHandle,
  type OpenHandleOptions,
  withHandle,
} from "./socket.ts";
export {
  createAnonymousNetns,
  createNamedNetns,
  currentNetnsId,
  deleteNamedNetns,
  enterNetns,
  namedNetnsPath,
  NETNS_RUN_DIR,
  type NetnsId,
  netnsId,
  type NetnsRef,
  openNetnsFd,
  sameNetns,
  THREAD_NETNS_PATH,
  withNetnsSync,
} from "./netns.ts";
export { closeFd } from "./ffi.ts";
export type { Writer } from "./message.ts";
export type { BridgePortInfo } from "./bridge_port.ts";
export type {
  BridgeInfo,
  IpvlanMode,
  KindInfo,
  LinkCommon,
  LinkKind,
  LinkNetns,
  LinkRef,
  LinkSpec,
  MacvlanMode,
  VethPeer,
  VxlanInfo,
} from "./link_kinds.ts";
export {
  addLink,
  delLink,
  findLink,
  getLink,
  isValidIfname,
  type Link,
  type LinkChanges,
  type LinkFilter,
  linkIndex,
  listLinks,
  setBridgePort,
  setLink,
  setLinkAlias,
  setLinkDown,
  setLinkHairpin,
  setLinkMac,
  setLinkMaster,
  setLinkMtu,
  setLinkName,
  setLinkNetns,
  setLinkPromisc,
  setLinkUp,
} from "./link.ts";
export { delLinkGroup, delLinkGroupOffThread, setLinkGroup } from "./link_group.ts";
export {
  addAddr,
  type Addr,
  type AddrFilter,
  type AddrOptions,
  delAddr,
  listAddrs,
  replaceAddr,
} from "./addr.ts";
export {
  addRoute,
  delRoute,
  listRoutes,
  lookupRoute,
  type NextHop,
  replaceRoute,
  type Route,
  type RouteFilter,
  type RouteSpec,
} from "./route.ts";
export { sysctlPath, sysctlRead, sysctlWrite } from "./sysctl.ts";
export {
  addFdb,
  addNeigh,
  appendFdb,
  delFdb,
  delNeigh,
  type FdbEntry,
  type FdbFilter,
  type FdbSpec,
  listFdb,
  listNeighs,
  type Neigh,
  type NeighFilter,
  type NeighSpec,
  replaceFdb,
  replaceNeigh,
} from "./neigh.ts";
export { addBridgeVlan, type BridgeVlan, delBridgeVlan, listBridgeVlans } from "./bridge_vlan.ts";
