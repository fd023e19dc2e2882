/**
 * hydra-host-device: moves an existing host interface into the container,
 * as the reference `host-device` plugin does:
 *
 * ```json
 * {
 *   "cniVersion": "1.1.0", "name": "nic", "type": "hydra-host-device",
 *   "device": "enp3s0f1"
 * }
 * ```
 *
 * The device is named by exactly one of `device` (interface name), `hwaddr`
 * (MAC), `kernelpath` (/sys/devices/… of the device) or `pciBusID`
 * ("0000:03:00.1"); `runtimeConfig.deviceID` (a PCI or auxiliary bus
 * address) overrides them. A PCI device bound to a user-space driver
 * (vfio-pci, uio_pci_generic, igb_uio) is left where it is (DPDK mode).
 *
 * ADD moves the device into the container namespace renamed to CNI_IFNAME
 * in one step (the kernel refuses when the name is taken there, leaving the
 * device untouched), keeps its host name in the interface alias, and brings
 * it up; with IPAM the addresses go on it. DEL moves it back under its
 * original name (left down, its previous state being unknown) and clears
 * the alias. Result: `[{name, mac, sandbox}]`, addresses on interface 0,
 * `dns` from the config.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Plugin } from "../cni/types.ts";
import type { CmdArgs, Result } from "../cni/types.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../cni/types.ts";
import {
  findLink,
  getLink,
  type Handle,
  type Link,
  listLinks,
  openHandle,
  parseMac,
  setLink,
  setLinkUp,
  THREAD_NETNS_PATH,
} from "../netlink/mod.ts";
import { configureIface, validatePrevResult } from "./iface.ts";
import { gcViaIpam, ipamAddWithUndo, ipamCheck, ipamDel, statusViaIpam } from "./ipam_delegate.ts";
import {
  assertIfNameFree,
  closeAll,
  createUndo,
  openNetnsForDel,
  openNetnsHandle,
  type Undo,
} from "./links.ts";
import { HOST_DEVICE_SHAPE } from "./schemas.ts";
import {
  configDns,
  enforcePluginShape,
  invalidConfig,
  ipamType,
  optString,
  requirePrevResult,
  runtimeConfig,
} from "./netconf.ts";

const SYS_BUS_PCI = "/sys/bus/pci/devices";
const SYS_BUS_AUX = "/sys/bus/auxiliary/devices";
const USERSPACE_DRIVERS = ["vfio-pci", "uio_pci_generic", "igb_uio"];

interface HostDeviceConf {
  device?: string;
  hwaddr?: string;
  kernelpath?: string;
  pciBusID?: string;
  auxDevice?: string;
  dpdk: boolean;
  ipam?: string;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function hasDpdkDriver(pciAddr: string): boolean {
  let driver: string;
  try {
    driver = Deno.realPathSync(`${SYS_BUS_PCI}/${pciAddr}/driver`);
  } catch (e) {
    throw invalidConfig(`error with host device: ${(e as Error).message}`);
  }
  return USERSPACE_DRIVERS.includes(driver.slice(driver.lastIndexOf("/") + 1));
}

function parseConf(args: CmdArgs, resolveDriver: boolean): HostDeviceConf {
  enforcePluginShape(args, HOST_DEVICE_SHAPE);
  const c = args.config;
  const conf: HostDeviceConf = {
    device: optString(c, "device"),
    hwaddr: optString(c, "hwaddr"),
    kernelpath: optString(c, "kernelpath"),
    pciBusID: optString(c, "pciBusID"),
    dpdk: false,
    ipam: ipamType(c, args.command),
  };
  const deviceId = optString(runtimeConfig(c), "deviceID");
  if (deviceId) {
    if (exists(`${SYS_BUS_PCI}/${deviceId}`)) conf.pciBusID = deviceId;
    else if (exists(`${SYS_BUS_AUX}/${deviceId}`)) {
      conf.pciBusID = undefined;
      conf.auxDevice = deviceId;
    } else {
      throw invalidConfig(`runtime config DeviceID ${deviceId} not found or unsupported`);
    }
  }
  if (!conf.device && !conf.hwaddr && !conf.kernelpath && !conf.pciBusID && !conf.auxDevice) {
    throw invalidConfig(`specify either "device", "hwaddr", "kernelpath" or "pciBusID"`);
  }
  if (resolveDriver && conf.pciBusID) conf.dpdk = hasDpdkDriver(conf.pciBusID);
  return conf;
}

/** The first network device listed in a sysfs `net` folder. */
function linkFromSysfs(h: Handle, dir: string): Link | undefined {
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch (e) {
    throw invalidConfig(`failed to read directory ${dir}: ${(e as Error).message}`);
  }
  if (names.length === 0) throw invalidConfig(`failed to find network device in path ${dir}`);
  return findLink(h, names[0]);
}

function pciNetDir(addr: string): string {
  const direct = `${SYS_BUS_PCI}/${addr}/net`;
  if (exists(direct)) return direct;
  try {
    for (const e of Deno.readDirSync(`${SYS_BUS_PCI}/${addr}`)) {
      if (e.name.startsWith("virtio") && exists(`${SYS_BUS_PCI}/${addr}/${e.name}/net`)) {
        return `${SYS_BUS_PCI}/${addr}/${e.name}/net`;
      }
    }
  } catch {
    // fall through
  }
  throw invalidConfig(`no net directory under pci device ${addr}`);
}

/** The host link the config names; CniError 7 when there is none. */
function findHostDevice(h: Handle, conf: HostDeviceConf): Link {
  let link: Link | undefined;
  let what: string;
  if (conf.device) {
    what = `device "${conf.device}"`;
    link = findLink(h, conf.device);
  } else if (conf.hwaddr) {
    what = `hwaddr ${conf.hwaddr}`;
    let mac: string;
    try {
      mac = parseMac(conf.hwaddr).join();
    } catch {
      throw invalidConfig(`failed to parse MAC address "${conf.hwaddr}"`);
    }
    // Tunnels and other links carry hardware addresses that are not MACs: skip them.
    link = listLinks(h).find((l) => l.mac?.length === 17 && parseMac(l.mac).join() === mac);
  } else if (conf.kernelpath) {
    what = `kernelpath ${conf.kernelpath}`;
    if (!conf.kernelpath.startsWith("/sys/devices/") || conf.kernelpath.includes("/../")) {
      throw invalidConfig(
        `kernel device path "${conf.kernelpath}" must be absolute and begin with /sys/devices/`,
      );
    }
    link = linkFromSysfs(h, `${conf.kernelpath.replace(/\/+$/, "")}/net`);
  } else if (conf.pciBusID) {
    what = `pciBusID ${conf.pciBusID}`;
    link = linkFromSysfs(h, pciNetDir(conf.pciBusID));
  } else {
    what = `auxiliary device ${conf.auxDevice}`;
    link = linkFromSysfs(h, `${SYS_BUS_AUX}/${conf.auxDevice}/net`);
  }
  if (!link) throw invalidConfig(`failed to find host device: ${what} not found`);
  return link;
}

function internal(msg: string): CniError {
  return new CniError(ErrorCode.Internal, msg);
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseConf(args, true);
  const pod = openNetnsHandle(args.netns);
  const host = openHandle();
  const undo = createUndo();
  try {
    const result: Result = {
      cniVersion: CURRENT_VERSION,
      interfaces: [{ name: args.ifName, sandbox: args.netns }],
    };
    if (!conf.dpdk) {
      const dev = findHostDevice(host, conf);
      assertIfNameFree(pod, args.ifName, args.netns);
      moveIn(host, pod, dev, args.ifName, args.netns, undo);
      result.interfaces![0].mac = getLink(pod, args.ifName).mac;
    }
    if (conf.ipam) {
      const fromIpam = await ipamAddWithUndo(args, conf.ipam, undo);
      result.ips = fromIpam.ips!.map((ip) => ({ ...ip, interface: 0 }));
      if (fromIpam.routes?.length) result.routes = fromIpam.routes;
      if (!conf.dpdk) await configureIface(pod, args.netns, args.ifName, result);
      const dns = configDns(args.config);
      if (dns) result.dns = dns;
    }
    return result;
  } catch (err) {
    await undo.run();
    throw err;
  } finally {
    closeAll(pod, host);
  }
}

/**
 * Moves `dev` into the container as `ifName` with its host name as alias,
 * and brings it up. Registers on `undo` how to move it back.
 */
function moveIn(
  host: Handle,
  pod: Handle,
  dev: Link,
  ifName: string,
  netns: string,
  undo: Undo,
): void {
  const hostName = dev.name;
  const oldAlias = dev.alias ?? "";
  try {
    setLink(host, dev.index, { alias: hostName });
  } catch (e) {
    throw internal(`failed to set alias to "${hostName}": ${(e as Error).message}`);
  }
  try {
    setLink(host, dev.index, { netns, name: ifName });
  } catch (e) {
    setLink(host, dev.index, { alias: oldAlias });
    throw internal(
      `failed to move "${hostName}" into the container as "${ifName}": ${(e as Error).message}`,
    );
  }
  undo.push(`move ${ifName} back to the host as ${hostName}`, () => {
    setLink(pod, ifName, { up: false });
    setLink(pod, ifName, { netns: THREAD_NETNS_PATH, name: hostName });
    setLink(host, hostName, { alias: oldAlias });
    if (dev.up) setLinkUp(host, hostName);
  });
  try {
    setLinkUp(pod, ifName);
  } catch (e) {
    throw internal(`failed to set "${ifName}" up: ${(e as Error).message}`);
  }
}

async function del(args: CmdArgs): Promise<void> {
  const conf = parseConf(args, false);
  const pod = openNetnsForDel(args.netns);
  try {
    if (conf.ipam) await ipamDel(args, conf.ipam);
    if (!pod) return;
    const dev = findLink(pod, args.ifName);
    // Gone already (a virtual device dies with its namespace): nothing to move.
    if (!dev) return;
    if (conf.pciBusID && hasDpdkDriverQuiet(conf.pciBusID)) return;
    const hostName = dev.alias;
    if (!hostName) {
      throw internal(`failed to find original ifname for "${args.ifName}" (alias is not set)`);
    }
    try {
      setLink(pod, dev.index, { netns: THREAD_NETNS_PATH, name: hostName });
    } catch (e) {
      throw internal(
        `failed to move "${args.ifName}" back to the host as "${hostName}": ${
          (e as Error).message
        }`,
      );
    }
    const host = openHandle();
    try {
      setLink(host, hostName, { alias: "" });
    } finally {
      closeAll(host);
    }
  } finally {
    closeAll(pod);
  }
}

function hasDpdkDriverQuiet(pciAddr: string): boolean {
  try {
    return hasDpdkDriver(pciAddr);
  } catch {
    return false;
  }
}

async function check(args: CmdArgs): Promise<void> {
  const conf = parseConf(args, true);
  const pod = openNetnsHandle(args.netns);
  try {
    if (conf.ipam) await ipamCheck(args, conf.ipam);
    const prev = requirePrevResult(args.config);
    if (conf.dpdk) return;
    const contIf = (prev.interfaces ?? []).find((i) =>
      i.name === args.ifName && i.sandbox === args.netns
    );
    if (!contIf) {
      throw internal(`Sandbox in prevResult doesn't match configured netns: ${args.netns}`);
    }
    const link = findLink(pod, args.ifName);
    if (!link) throw internal(`Container Interface name in prevResult: ${args.ifName} not found`);
    if (contIf.mac && contIf.mac !== link.mac) {
      throw internal(
        `Interface ${args.ifName} Mac ${contIf.mac} doesn't match container Mac: ${link.mac}`,
      );
    }
    validatePrevResult(pod, args.ifName, prev);
  } finally {
    closeAll(pod);
  }
}

/** The hydra-host-device plugin. */
export const plugin: Plugin = {
  kind: "host-device",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del,
  check,
  status: statusViaIpam,
  gc: gcViaIpam,
};
