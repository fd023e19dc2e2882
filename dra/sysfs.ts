/**
 * What sysfs says about a network interface's hardware: its driver, PCI
 * address and PCIe root, NUMA node, SR-IOV role, RDMA capability. Virtual
 * links (veth, macvlan, …) have no `device` and get none of these.
 *
 * sysfs shows the links of the network namespace it was mounted in, not
 * of the reader's: a reader in another namespace (a DaemonSet pod without
 * host networking, `nsenter --net` without a fresh mount) could read
 * another link of the same name. So the link's `ifindex` in sysfs must
 * match the index netlink reported, or nothing is read.
 *
 * @module
 */

import { baseName } from "../pkg/fsutil.ts";

/** Hardware facts of one interface; absent fields are unknown or do not apply. */
export interface SysfsInfo {
  /** Kernel driver bound to the device ("mlx5_core", "virtio_net", …). */
  driver?: string;
  /** PCI address of the device or of its nearest PCI ancestor ("0000:03:00.1"). */
  pciAddress?: string;
  /** PCIe root complex ("pci0000:00"), for aligning devices of several drivers. */
  pcieRoot?: string;
  /** NUMA node of the PCI device (absent when the platform reports -1). */
  numaNode?: number;
  /** Virtual functions a physical function can have (SR-IOV PF). */
  sriovTotalVfs?: number;
  /** True for an SR-IOV virtual function. */
  sriovVf?: boolean;
  /** The interface of a VF's physical function, when it has one. */
  sriovPfName?: string;
  /** True when the device has an RDMA (InfiniBand verbs) device. */
  rdma?: boolean;
}

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const PCIE_ROOT = /^pci[0-9a-f]{4}:[0-9a-f]{2}$/;

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

function realPath(path: string): string | undefined {
  try {
    return Deno.realPathSync(path);
  } catch {
    return undefined;
  }
}

function entries(path: string): string[] {
  try {
    return [...Deno.readDirSync(path)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The PCI device path of `devicePath` (itself, or its nearest PCI ancestor). */
function pciDevicePath(devicePath: string): string | undefined {
  const parts = devicePath.split("/");
  for (let i = parts.length; i > 0; i--) {
    if (PCI_ADDRESS.test(parts[i - 1])) return parts.slice(0, i).join("/");
  }
  return undefined;
}

/**
 * Reads the hardware facts of interface `name` (netlink index `index`)
 * under the sysfs mount `root` ("/sys").
 */
export function readSysfs(root: string, name: string, index: number): SysfsInfo {
  const base = `${root}/class/net/${name}`;
  if (readText(`${base}/ifindex`) !== String(index)) return {};
  const device = realPath(`${base}/device`);
  if (!device) return {};
  const info: SysfsInfo = {};
  const driver = realPath(`${base}/device/driver`);
  if (driver) info.driver = baseName(driver);
  const pci = pciDevicePath(device);
  if (pci) {
    info.pciAddress = baseName(pci);
    const root = pci.split("/").find((p) => PCIE_ROOT.test(p));
    if (root) info.pcieRoot = root;
    const numa = Number(readText(`${pci}/numa_node`));
    if (Number.isInteger(numa) && numa >= 0) info.numaNode = numa;
    const total = Number(readText(`${pci}/sriov_totalvfs`));
    if (Number.isInteger(total) && total > 0) info.sriovTotalVfs = total;
    if (exists(`${pci}/physfn`)) {
      info.sriovVf = true;
      const pf = entries(`${pci}/physfn/net`)[0];
      if (pf) info.sriovPfName = pf;
    }
    if (entries(`${pci}/infiniband`).length > 0) info.rdma = true;
  }
  if (info.rdma === undefined && entries(`${base}/device/infiniband`).length > 0) info.rdma = true;
  return info;
}
