/**
 * hydra-macvlan: gives the container a macvlan device on a host interface.
 * Config and result follow the reference `macvlan` plugin:
 *
 * ```json
 * {
 *   "cniVersion": "1.1.0", "name": "lan", "type": "hydra-macvlan",
 *   "master": "eth0", "mode": "bridge", "mtu": 1500, "mac": "0a:58:0a:01:00:05",
 *   "linkInContainer": false,
 *   "ipam": {"type": "hydra-ipam", "subnet": "192.168.1.0/24"}
 * }
 * ```
 *
 * - `master` defaults to the interface of the default route (of the
 *   container's namespace with `linkInContainer`); a missing master is
 *   CniError 7.
 * - `mode`: bridge (default), private, vepa or passthru.
 * - `mtu`: 0 (inherit) up to the master's MTU.
 * - MAC: `mac`, then CNI_ARGS `MAC`, then `runtimeConfig.mac`.
 * - `bcqueuelen` other than 0 is refused (code 2): not supported yet.
 *
 * The device is created as CNI_IFNAME straight into the container's
 * namespace: the kernel checks the name there, so a host link of that name
 * does not clash and no rename is needed. Result: `[{name, mac, sandbox}]`,
 * addresses on interface 0, `dns` from the config only (as the reference
 * plugin).
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Plugin } from "../cni/types.ts";
import type { CmdArgs, Result } from "../cni/types.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../cni/types.ts";
import {
  addLink,
  delLink,
  findLink,
  getLink,
  type Handle,
  isNotFound,
  type Link,
  type MacvlanMode,
  openHandle,
  parseMac,
  setLinkUp,
} from "../netlink/mod.ts";
import { configureIface, trySysctl, validatePrevResult } from "./iface.ts";
import { gcViaIpam, ipamAddWithUndo, ipamCheck, ipamDel, statusViaIpam } from "./ipam_delegate.ts";
import {
  assertIfNameFree,
  closeAll,
  createUndo,
  defaultRouteInterface,
  openNetnsForDel,
  openNetnsHandle,
} from "./links.ts";
import { removePodLink } from "./link_removal.ts";
import { MACVLAN_SHAPE } from "./schemas.ts";
import {
  cniArgsMac,
  configDns,
  enforcePluginShape,
  invalidConfig,
  ipamType,
  optBool,
  optInt,
  optString,
  requirePrevResult,
  runtimeConfig,
} from "./netconf.ts";

/** The macvlan plugin's settings, defaults applied (master resolved later). */
interface MacvlanConf {
  master?: string;
  mode: Exclude<MacvlanMode, "source">;
  mtu: number;
  mac?: string;
  linkInContainer: boolean;
  ipam?: string;
}

const MODES = ["bridge", "private", "vepa", "passthru"] as const;

function parseMode(v: string | undefined): MacvlanConf["mode"] {
  if (v === undefined) return "bridge";
  if ((MODES as readonly string[]).includes(v)) return v as MacvlanConf["mode"];
  throw invalidConfig(`unknown macvlan mode: "${v}"`, `use one of ${MODES.join(", ")}`);
}

function parseConf(args: CmdArgs): MacvlanConf {
  enforcePluginShape(args, MACVLAN_SHAPE);
  const c = args.config;
  const bcqueuelen = optInt(c, "bcqueuelen") ?? 0;
  if (bcqueuelen !== 0) {
    throw new CniError(
      ErrorCode.UnsupportedField,
      `unsupported config field "bcqueuelen": ${bcqueuelen}`,
    );
  }
  const mac = optString(runtimeConfig(c), "mac") ?? cniArgsMac(args) ?? optString(c, "mac");
  if (mac !== undefined) {
    try {
      parseMac(mac);
    } catch {
      throw invalidConfig(`invalid args ${mac} for MAC addr`);
    }
  }
  return {
    master: optString(c, "master"),
    mode: parseMode(optString(c, "mode")),
    mtu: optInt(c, "mtu") ?? 0,
    mac,
    linkInContainer: optBool(c, "linkInContainer") ?? false,
    ipam: ipamType(c, args.command),
  };
}

/** The master link, looked up where it lives; CniError 7 when it is missing. */
function resolveMaster(conf: MacvlanConf, where: Handle): Link {
  const name = conf.master ?? defaultRouteInterface(where);
  const link = findLink(where, name);
  if (!link) {
    throw invalidConfig(
      `master device "${name}" not found` +
        (conf.linkInContainer ? " in the container namespace" : ""),
    );
  }
  if (conf.mtu < 0 || conf.mtu > link.mtu) {
    throw invalidConfig(`invalid MTU ${conf.mtu}, must be [0, master MTU(${link.mtu})]`);
  }
  return link;
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseConf(args);
  const pod = openNetnsHandle(args.netns);
  let host: Handle | undefined;
  const undo = createUndo();
  try {
    host = conf.linkInContainer ? undefined : openHandle();
    const masterNs = host ?? pod;
    const master = resolveMaster(conf, masterNs);
    assertIfNameFree(pod, args.ifName, args.netns);
    try {
      addLink(masterNs, {
        kind: "macvlan",
        name: args.ifName,
        parent: master.index,
        mode: conf.mode,
        mtu: conf.mtu || undefined,
        mac: conf.mac,
        netns: host ? args.netns : undefined,
      });
    } catch (e) {
      throw new CniError(ErrorCode.Internal, `failed to create macvlan: ${(e as Error).message}`);
    }
    undo.push(`delete ${args.ifName}`, () => delLink(pod, args.ifName));
    const link = getLink(pod, args.ifName);
    const result: Result = {
      cniVersion: CURRENT_VERSION,
      interfaces: [{ name: args.ifName, mac: link.mac, sandbox: args.netns }],
    };
    if (conf.ipam) {
      const fromIpam = await ipamAddWithUndo(args, conf.ipam, undo);
      result.ips = fromIpam.ips!.map((ip) => ({ ...ip, interface: 0 }));
      if (fromIpam.routes?.length) result.routes = fromIpam.routes;
      trySysctl(args.netns, `net/ipv4/conf/${args.ifName}/arp_notify`, "1");
      trySysctl(args.netns, `net/ipv6/conf/${args.ifName}/ndisc_notify`, "1");
      await configureIface(pod, args.netns, args.ifName, result);
    } else {
      setLinkUp(pod, args.ifName);
    }
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

/**
 * Whether a DEL may park the macvlan running (see link_removal.ts), which
 * spares it a grace period. Not when its MAC was fixed: a master brings up
 * only one macvlan with a given MAC, and the next ADD may want it at once;
 * a link that is down no longer holds it. A DEL's config is the ADD's.
 */
function parksUp(args: CmdArgs): boolean {
  try {
    return parseConf(args).mac === undefined;
  } catch {
    return false;
  }
}

async function del(args: CmdArgs): Promise<void> {
  const type = ipamType(args.config, args.command);
  if (type) await ipamDel(args, type);
  const pod = openNetnsForDel(args.netns);
  if (!pod) return;
  try {
    removePodLink(pod, args.containerId, args.netns, args.ifName, { keepUp: parksUp(args) });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  } finally {
    closeAll(pod);
  }
}

function failCheck(msg: string): never {
  throw new CniError(ErrorCode.Internal, msg);
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseConf(args);
  const pod = openNetnsHandle(args.netns);
  let host: Handle | undefined;
  try {
    if (conf.ipam) await ipamCheck(args, conf.ipam);
    const prev = requirePrevResult(args.config);
    const contIf = (prev.interfaces ?? []).find((i) =>
      i.name === args.ifName && i.sandbox === args.netns
    );
    if (!contIf) failCheck(`sandbox in prevResult doesn't match configured netns: ${args.netns}`);
    host = conf.linkInContainer ? undefined : openHandle();
    const masterNs = host ?? pod;
    const masterName = conf.master ?? defaultRouteInterface(masterNs);
    if (!findLink(masterNs, masterName)) failCheck(`failed to lookup master "${masterName}"`);
    const link = findLink(pod, args.ifName);
    if (!link) failCheck(`container Interface name in prevResult: ${args.ifName} not found`);
    if (link.kind !== "macvlan") {
      failCheck(`error: Container interface ${args.ifName} not of type macvlan`);
    }
    if (link.macvlan?.mode !== conf.mode) {
      failCheck(
        `container macvlan mode ${link.macvlan?.mode} does not match expected value: ${conf.mode}`,
      );
    }
    if (contIf.mac && contIf.mac !== link.mac) {
      failCheck(
        `interface ${args.ifName} Mac ${contIf.mac} doesn't match container Mac: ${link.mac}`,
      );
    }
    validatePrevResult(pod, args.ifName, prev);
  } finally {
    closeAll(pod, host);
  }
}

/** The hydra-macvlan plugin. */
export const plugin: Plugin = {
  kind: "macvlan",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del,
  check,
  status: statusViaIpam,
  gc: gcViaIpam,
};
