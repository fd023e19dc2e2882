/**
 * hydra-bridge: attaches a container to a Linux bridge on the host through
 * a veth pair. Config and result follow the reference `bridge` plugin, so an
 * existing config works by changing only `type`:
 *
 * ```json
 * {
 *   "cniVersion": "1.1.0", "name": "pods", "type": "hydra-bridge",
 *   "bridge": "cni0", "isGateway": true, "isDefaultGateway": false,
 *   "forceAddress": false, "ipMasq": false, "ipMasqBackend": "iptables",
 *   "mtu": 1500, "hairpinMode": false, "promiscMode": false,
 *   "vlan": 0, "vlanTrunk": [{"id": 10}, {"minID": 20, "maxID": 30}],
 *   "preserveDefaultVlan": false, "enabledad": false, "portIsolation": false,
 *   "disableContainerInterface": false,
 *   "ipam": {"type": "hydra-ipam", "subnet": "10.22.0.0/16"}
 * }
 * ```
 *
 * The container's MAC comes from CNI_ARGS `MAC`, then `args.cni.mac`, then
 * `runtimeConfig.mac` (the last one set wins). `macspoofchk: true` is
 * refused (code 2): hydra does not implement it yet.
 *
 * Result: interfaces `[bridge, host veth, container]` (plus `<bridge>.<vlan>`
 * when a VLAN gateway is made), every address on interface 2. A failed ADD
 * undoes what it did; DEL releases the address even when the namespace or
 * link is gone.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Plugin } from "../cni/types.ts";
import type { CmdArgs, Result } from "../cni/types.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../cni/types.ts";
import {
  closeHandle,
  delAddr,
  delLink,
  findLink,
  getLink,
  type Handle,
  isNotFound,
  listAddrs,
  listLinks,
  openHandle,
  setLinkUp,
} from "../netlink/mod.ts";
import { ipFamily } from "../ipaddr/ip.ts";
import {
  createVethPair,
  ensureBridge,
  ensureGatewayAddr,
  ensureVlanGateway,
  pinBridgeMac,
  plugHostEnd,
} from "./bridge_port.ts";
import { addGateways, enableForwarding, waitPortUp } from "./bridge_gateway.ts";
import { configureIface, trySysctl, validatePrevResult } from "./iface.ts";
import { gcViaIpam, ipamAddWithUndo, ipamCheck, ipamDel, statusViaIpam } from "./ipam_delegate.ts";
import { setupIpMasq, teardownIpMasq } from "./ipmasq.ts";
import {
  assertIfNameFree,
  closeAll,
  createUndo,
  openNetnsForDel,
  openNetnsHandle,
} from "./links.ts";
import { configDns, invalidConfig, requirePrevResult } from "./netconf.ts";
import { type BridgeConf, parseBridgeConf } from "./bridge_conf.ts";
import { withHostLock } from "./host_lock.ts";
import { removePodLink } from "./link_removal.ts";

/** The bridge config reader, for plugins built on the bridge attachment (hydra-vxlan). */
export { type BridgeConf, parseBridgeConf } from "./bridge_conf.ts";

/** Host-side extras a caller (hydra-vxlan) runs once the bridge exists. */
export type BridgeHook = (host: Handle, bridge: { name: string; index: number }) => void;

/**
 * ADD: the bridge attachment, as hydra-bridge makes it. `beforeVeth` runs
 * after the bridge exists and before anything else is made.
 */
export function attachToBridge(
  args: CmdArgs,
  conf: BridgeConf,
  beforeVeth?: BridgeHook,
): Promise<Result> {
  if (conf.ipam && conf.disableContainerInterface) {
    throw invalidConfig("cannot use IPAM when disableContainerInterface flag is set");
  }
  if (conf.hairpinMode && conf.promiscMode) {
    throw invalidConfig("cannot set hairpin mode and promiscuous mode at the same time");
  }
  // One ADD at a time per bridge, so undoing a failed one cannot hurt another.
  return withHostLock(`bridge-${conf.bridge}`, () => attachLocked(args, conf, beforeVeth));
}

async function attachLocked(
  args: CmdArgs,
  conf: BridgeConf,
  beforeVeth?: BridgeHook,
): Promise<Result> {
  const pod = openNetnsHandle(args.netns);
  let host: Handle | undefined;
  const undo = createUndo();
  try {
    assertIfNameFree(pod, args.ifName, args.netns);
    host = openHandle();
    const h = host;
    const br = ensureBridge(h, {
      name: conf.bridge,
      mtu: conf.mtu,
      promisc: conf.promiscMode,
      vlanFiltering: conf.vlan !== 0 || conf.vlanTrunk.length > 0,
    });
    if (br.created) {
      undo.push(`delete bridge ${conf.bridge}`, () => {
        if (listLinks(h, { master: br.link.index }).length === 0) delLink(h, br.link.index);
      });
    } else {
      undo.push(`restore bridge ${conf.bridge}`, br.restore);
    }
    beforeVeth?.(h, { name: br.link.name, index: br.link.index });
    const pair = createVethPair(h, pod, args.netns, args.ifName, conf.mtu, conf.mac);
    undo.push(`delete ${args.ifName}`, () => delLink(pod, args.ifName));
    plugHostEnd(h, pair.hostIndex, {
      ifName: args.ifName,
      mtu: conf.mtu,
      bridgeIndex: br.link.index,
      hairpin: conf.hairpinMode,
      isolated: conf.portIsolation,
      vlan: conf.vlan,
      trunk: conf.vlanTrunk,
      preserveDefaultVlan: conf.preserveDefaultVlan,
    }, pair.host.name);
    const result: Result = {
      cniVersion: CURRENT_VERSION,
      interfaces: [{ name: br.link.name, mac: br.link.mac }, pair.host, pair.container],
    };
    if (conf.ipam) {
      const fromIpam = await ipamAddWithUndo(args, conf.ipam, undo);
      result.ips = fromIpam.ips;
      if (fromIpam.routes?.length) result.routes = fromIpam.routes;
      if (fromIpam.dns) result.dns = fromIpam.dns;
      const gateways = addGateways(result, conf);
      if (conf.enableDad) {
        trySysctl(args.netns, `net/ipv6/conf/${args.ifName}/enhanced_dad`, "1");
        trySysctl(args.netns, `net/ipv6/conf/${args.ifName}/accept_dad`, "1");
      } else {
        trySysctl(args.netns, `net/ipv6/conf/${args.ifName}/accept_dad`, "0");
      }
      trySysctl(args.netns, `net/ipv4/conf/${args.ifName}/arp_notify`, "1");
      await configureIface(pod, args.netns, args.ifName, result);
      if (conf.isGateway) {
        let target = br.link;
        if (conf.vlan !== 0 && gateways.length) {
          const vg = ensureVlanGateway(h, br.link, conf.vlan, conf.preserveDefaultVlan);
          if (vg.created) undo.push(`delete ${vg.link.name}`, () => delLink(h, vg.link.index));
          target = vg.link;
          result.interfaces!.push({ name: vg.link.name, mac: vg.link.mac });
        }
        for (const gw of gateways) {
          if (ensureGatewayAddr(h, target.index, gw, conf.forceAddress)) {
            undo.push(`remove ${gw}`, () => delAddr(h, target.index, gw));
            pinBridgeMac(h, target.index, target.mac);
          }
        }
        enableForwarding(gateways.map((g) => ipFamily(g.split("/")[0])), undo);
      }
      if (conf.ipMasq) {
        const owner = { network: conf.network, ifName: args.ifName, containerId: args.containerId };
        undo.push("remove masquerading", () => teardownIpMasq(owner));
        await setupIpMasq(conf.ipMasqBackend, result.ips!.map((i) => i.address), owner);
      }
    } else if (!conf.disableContainerInterface) {
      setLinkUp(pod, args.ifName);
    }
    const port = conf.disableContainerInterface ? undefined : await waitPortUp(h, pair.hostIndex);
    result.interfaces![1].mac = (port ?? getLink(h, pair.hostIndex)).mac;
    result.interfaces![0].mac = getLink(h, br.link.index).mac;
    const dns = configDns(args.config);
    if (dns) result.dns = dns;
    return result;
  } catch (err) {
    await undo.run();
    throw err;
  } finally {
    closeAll(pod, host);
  }
}

async function add(args: CmdArgs): Promise<Result> {
  return await attachToBridge(args, parseBridgeConf(args));
}

/**
 * DEL: removes the container's veth (its host end goes with it), releases
 * the address and the masquerading. Succeeds when the namespace or the link
 * is already gone.
 */
export async function detachFromBridge(args: CmdArgs, conf: BridgeConf): Promise<void> {
  const families = new Set<4 | 6>();
  const pod = openNetnsForDel(args.netns);
  if (pod) {
    try {
      const link = findLink(pod, args.ifName);
      if (link) {
        for (const a of listAddrs(pod, { link: link.index })) {
          if (a.scope === 0) families.add(a.family);
        }
        try {
          removePodLink(pod, args.containerId, args.netns, link.index);
        } catch (e) {
          if (!isNotFound(e)) throw e;
        }
      }
    } finally {
      closeHandle(pod);
    }
  }
  if (conf.ipam) await ipamDel(args, conf.ipam);
  if (conf.ipMasq) {
    const owner = { network: conf.network, ifName: args.ifName, containerId: args.containerId };
    await teardownIpMasq(owner, families.size ? [...families] : [4, 6]);
  }
}

async function del(args: CmdArgs): Promise<void> {
  await detachFromBridge(args, parseBridgeConf(args));
}

function failCheck(msg: string): never {
  throw new CniError(ErrorCode.Internal, msg);
}

/** CHECK: the bridge, both veth ends and the container's addresses and routes are as ADD left them. */
export async function checkBridgeAttachment(args: CmdArgs, conf: BridgeConf): Promise<void> {
  const pod = openNetnsHandle(args.netns);
  const host = openHandle();
  try {
    if (conf.ipam) await ipamCheck(args, conf.ipam);
    const prev = requirePrevResult(args.config);
    const ifaces = prev.interfaces ?? [];
    const brIf = ifaces.find((i) => i.name === conf.bridge);
    const contIf = ifaces.find((i) => i.name === args.ifName && i.sandbox === args.netns);
    if (!brIf) failCheck(`CNI created bridge ${conf.bridge} in host namespace was not found`);
    const br = findLink(host, conf.bridge);
    if (!br || br.kind !== "bridge") {
      failCheck(`Interface ${conf.bridge} does not have link type of bridge`);
    }
    if (brIf.mac && brIf.mac !== br.mac) {
      failCheck(`Bridge interface ${conf.bridge} Mac doesn't match: ${brIf.mac}`);
    }
    if ((br.promiscuity > 0) !== conf.promiscMode) {
      failCheck(
        `Bridge interface ${conf.bridge} configured Promisc Mode ${conf.promiscMode} ` +
          `doesn't match current state: ${br.promiscuity > 0}`,
      );
    }
    if (!contIf) {
      failCheck(`Sandbox in prevResult doesn't match configured netns: ${args.netns}`);
    }
    const cont = findLink(pod, args.ifName);
    if (!cont) failCheck(`CNI created interface in container ${args.ifName} not found`);
    if (cont.kind !== "veth") failCheck(`Container interface ${args.ifName} not of type veth`);
    if (contIf.mac && contIf.mac !== cont.mac) {
      failCheck(
        `Interface ${args.ifName} Mac ${contIf.mac} doesn't match container Mac: ${cont.mac}`,
      );
    }
    const hostVeth = ifaces.find((i) => {
      if (i === brIf || i === contIf || i.sandbox) return false;
      const l = findLink(host, i.name);
      return l?.kind === "veth" && l.link === cont.index && l.index === cont.link &&
        l.master === br.index && (!i.mac || i.mac === l.mac);
    });
    if (!hostVeth) failCheck(`CNI veth created for bridge ${conf.bridge} was not found`);
    validatePrevResult(pod, args.ifName, prev);
  } finally {
    closeAll(pod, host);
  }
}

async function check(args: CmdArgs): Promise<void> {
  await checkBridgeAttachment(args, parseBridgeConf(args));
}

/** The hydra-bridge plugin. */
export const plugin: Plugin = {
  kind: "bridge",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del,
  check,
  status: statusViaIpam,
  gc: gcViaIpam,
};
