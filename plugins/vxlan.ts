/**
 * hydra-vxlan: attaches a container to a network that spans nodes over a
 * VXLAN overlay. There is no reference plugin of this kind; the design
 * follows the bridge plugin plus one shared tunnel device per network:
 *
 * ```
 *  pod eth0 ──veth── hydrabr<vni> (gateway of this node's pod range)
 *                        │ host routing
 *                    hydravx<vni> (vxlan, learning off) ══ UDP ══> other nodes
 * ```
 *
 * ```json
 * {
 *   "cniVersion": "1.1.0", "name": "blue", "type": "hydra-vxlan",
 *   "vni": 42, "port": 4789, "dev": "eth1", "local": "192.168.0.10",
 *   "vxlan": "hydravx42", "bridge": "hydrabr42", "mtu": 1450,
 *   "isDefaultGateway": false, "ipMasq": false, "hairpinMode": false,
 *   "ipam": {"type": "hydra-ipam", "subnet": "10.42.1.0/24",
 *            "routes": [{"dst": "10.42.0.0/16"}]}
 * }
 * ```
 *
 * - `vni` (required, 1–16777215); `port` (UDP, default 4789); `dev`: the
 *   underlay device (default: the default-route interface); `local`: the
 *   underlay address (default: the first global address of `dev`, IPv4
 *   first); `group` (multicast) or `remote` (unicast): optional default
 *   destination for frames to unknown MACs — normally unset, every remote
 *   being programmed explicitly.
 * - `vxlan`/`bridge`: device names (default `hydravx<vni>`/`hydrabr<vni>`);
 *   `mtu`: of the bridge, the pod interface and the tunnel (default: the
 *   underlay MTU minus 50 for an IPv4 underlay, 70 for IPv6).
 * - Every bridge field of hydra-bridge applies except the VLAN ones; the
 *   bridge is always the pod's gateway (`isGateway` is implied).
 *
 * The tunnel is created (up, learning off, MAC {@link vtepMac} of `local`)
 * on first use and shared by every pod of the network; DEL leaves it, as it
 * leaves the bridge. Its forwarding database stays empty: `hydra route sync`
 * programs, per remote node R with underlay address U and pod range C,
 * `C via gw(C) dev hydravx<vni> onlink`, the neighbour `gw(C) lladdr
 * vtepMac(U)` and the FDB entry `vtepMac(U) dst U`, where gw(C) is the first
 * address of C (R's bridge gateway). No flooding or learning is needed.
 *
 * Result: as hydra-bridge (`[bridge, host veth, container]`, addresses on
 * interface 2) with the tunnel appended as a fourth, host-side interface.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Plugin } from "../cni/types.ts";
import type { CmdArgs, Result } from "../cni/types.ts";
import { SUPPORTED_VERSIONS } from "../cni/types.ts";
import {
  addLink,
  findLink,
  type Handle,
  isExists,
  listAddrs,
  openHandle,
  setLinkUp,
} from "../netlink/mod.ts";
import { ipFamily, isIp } from "../ipaddr/ip.ts";
import { vtepMac } from "./vtep_mac.ts";
import {
  attachToBridge,
  type BridgeConf,
  checkBridgeAttachment,
  detachFromBridge,
  parseBridgeConf,
} from "./bridge.ts";
import { gcViaIpam, statusViaIpam } from "./ipam_delegate.ts";
import { closeAll, defaultRouteInterface } from "./links.ts";
import { enforcePluginShape, invalidConfig, optInt, optString } from "./netconf.ts";
import { VXLAN_SHAPE } from "./schemas.ts";

/** The IANA VXLAN port, hydra's default. */
export const DEFAULT_VXLAN_PORT = 4789;
const MAX_VNI = 0xffffff;

/** The tunnel settings of a hydra-vxlan config. */
export interface VxlanConf {
  vni: number;
  port: number;
  /** Underlay device; undefined: the default-route interface. */
  dev?: string;
  local?: string;
  group?: string;
  remote?: string;
  /** Tunnel device name. */
  vxlan: string;
  /** Pod/bridge MTU as configured (0: derived from the underlay). */
  mtu: number;
}

/** The default tunnel device name of VNI `vni`. */
export function vxlanDeviceName(vni: number): string {
  return `hydravx${vni}`;
}

/** The default bridge name of VNI `vni`. */
export function vxlanBridgeName(vni: number): string {
  return `hydrabr${vni}`;
}

export { vtepMac };

function optAddress(c: Record<string, unknown>, key: string): string | undefined {
  const v = optString(c, key);
  if (v !== undefined && !isIp(v)) throw invalidConfig(`"${key}" is not an IP address: "${v}"`);
  return v;
}

/** Reads the tunnel part of a hydra-vxlan config (CniError 6/7 on bad input). */
export function parseVxlanConf(args: CmdArgs): VxlanConf {
  enforcePluginShape(args, VXLAN_SHAPE);
  const c = args.config;
  const vni = optInt(c, "vni");
  if (vni === undefined) throw invalidConfig('"vni" is required');
  if (vni < 1 || vni > MAX_VNI) throw invalidConfig(`invalid vni ${vni} (1-${MAX_VNI})`);
  const port = optInt(c, "port") ?? DEFAULT_VXLAN_PORT;
  if (port < 1 || port > 65535) throw invalidConfig(`invalid port ${port}`);
  const conf: VxlanConf = {
    vni,
    port,
    dev: optString(c, "dev"),
    local: optAddress(c, "local"),
    group: optAddress(c, "group"),
    remote: optAddress(c, "remote"),
    vxlan: optString(c, "vxlan") ?? vxlanDeviceName(vni),
    mtu: optInt(c, "mtu") ?? 0,
  };
  if (conf.group && conf.remote) throw invalidConfig('"group" and "remote" exclude each other');
  if (conf.vxlan.length > 15) throw invalidConfig(`device name "${conf.vxlan}" is too long`);
  for (const key of ["vlan", "vlanTrunk"]) {
    if (c[key] !== undefined && c[key] !== null && c[key] !== 0) {
      throw new CniError(
        ErrorCode.UnsupportedField,
        `unsupported config field "${key}" for hydra-vxlan`,
      );
    }
  }
  return conf;
}

/** The underlay address of `dev`: its first global address, IPv4 first. */
function underlayAddress(h: Handle, dev: string): string {
  for (const family of [4, 6] as const) {
    const a = listAddrs(h, { link: dev, family }).find((x) => x.scope === 0);
    if (a) return a.address;
  }
  throw invalidConfig(`underlay device "${dev}" has no global address: set "local"`);
}

/** What the tunnel needs from the host: underlay link, address and MTU. */
interface Underlay {
  index: number;
  local: string;
  mtu: number;
}

function resolveUnderlay(h: Handle, conf: VxlanConf): Underlay {
  const name = conf.dev ?? defaultRouteInterface(h);
  const link = findLink(h, name);
  if (!link) throw invalidConfig(`underlay device "${name}" not found`);
  const local = conf.local ?? underlayAddress(h, name);
  const overhead = ipFamily(local) === 4 ? 50 : 70;
  return { index: link.index, local, mtu: link.mtu - overhead };
}

/**
 * Creates the network's tunnel device unless it exists; an existing one
 * must be a vxlan device with the same VNI and port (CniError 7 otherwise).
 * Returns whether it was created.
 */
export function ensureTunnel(h: Handle, conf: VxlanConf, underlay: Underlay, mtu: number): boolean {
  const existing = findLink(h, conf.vxlan);
  if (existing) {
    if (
      existing.kind !== "vxlan" || existing.vxlan?.vni !== conf.vni ||
      existing.vxlan.port !== conf.port
    ) {
      throw invalidConfig(
        `"${conf.vxlan}" already exists but is not the vxlan device of vni ${conf.vni} port ${conf.port}`,
      );
    }
    if (!existing.up) setLinkUp(h, existing.index);
    return false;
  }
  try {
    addLink(h, {
      kind: "vxlan",
      name: conf.vxlan,
      vni: conf.vni,
      port: conf.port,
      parent: underlay.index,
      local: underlay.local,
      group: conf.group,
      remote: conf.remote,
      learning: false,
      mtu,
      mac: vtepMac(underlay.local),
      up: true,
    });
    return true;
  } catch (e) {
    if (isExists(e)) return ensureTunnel(h, conf, underlay, mtu);
    throw new CniError(
      ErrorCode.Internal,
      `could not add "${conf.vxlan}": ${(e as Error).message}`,
    );
  }
}

function bridgeConfFor(args: CmdArgs, tunnel: VxlanConf): BridgeConf {
  const c = args.config;
  const withBridge = { ...c, bridge: optString(c, "bridge") ?? vxlanBridgeName(tunnel.vni) };
  const conf = parseBridgeConf({ ...args, config: withBridge }, null);
  conf.isGateway = true;
  return conf;
}

async function add(args: CmdArgs): Promise<Result> {
  const tunnel = parseVxlanConf(args);
  const host = openHandle();
  let underlay: Underlay;
  try {
    underlay = resolveUnderlay(host, tunnel);
  } finally {
    closeAll(host);
  }
  const mtu = tunnel.mtu || underlay.mtu;
  if (mtu > underlay.mtu) {
    throw invalidConfig(`mtu ${mtu} leaves no room for the vxlan header (at most ${underlay.mtu})`);
  }
  const conf = bridgeConfFor(args, tunnel);
  conf.mtu = mtu;
  let tunnelMac: string | undefined;
  const result = await attachToBridge(args, conf, (h) => {
    ensureTunnel(h, tunnel, underlay, mtu);
    tunnelMac = findLink(h, tunnel.vxlan)?.mac;
  });
  result.interfaces!.push({ name: tunnel.vxlan, mac: tunnelMac });
  return result;
}

async function del(args: CmdArgs): Promise<void> {
  const tunnel = parseVxlanConf(args);
  await detachFromBridge(args, bridgeConfFor(args, tunnel));
}

async function check(args: CmdArgs): Promise<void> {
  const tunnel = parseVxlanConf(args);
  await checkBridgeAttachment(args, bridgeConfFor(args, tunnel));
  const host = openHandle();
  try {
    const link = findLink(host, tunnel.vxlan);
    if (link?.kind !== "vxlan" || link.vxlan?.vni !== tunnel.vni) {
      throw new CniError(
        ErrorCode.Internal,
        `vxlan device ${tunnel.vxlan} of vni ${tunnel.vni} not found`,
      );
    }
    if (!link.up) throw new CniError(ErrorCode.Internal, `vxlan device ${tunnel.vxlan} is down`);
  } finally {
    closeAll(host);
  }
}

/** The hydra-vxlan plugin. */
export const plugin: Plugin = {
  kind: "vxlan",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del,
  check,
  status: statusViaIpam,
  gc: gcViaIpam,
};
