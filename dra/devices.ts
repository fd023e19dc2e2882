/**
 * The devices hydra publishes in its node's ResourceSlices
 * (`resource.k8s.io/v1`): one per host NIC of the pool, with attributes
 * from netlink and sysfs (absent where sysfs has nothing), and a fixed
 * number of network slots, each of which carries one attachment of a hydra
 * network (the claim's config names which).
 *
 * @module
 */

import type { NicInfo } from "./inventory.ts";
import {
  ATTR,
  type DeviceKind,
  NETWORK_SLOT_PREFIX,
  nicDeviceName,
  PCIE_ROOT_ATTR,
} from "../drasandbox/names.ts";

/** One attribute value, as the API spells it. */
export type AttributeValue = { string: string } | { int: number } | { bool: boolean };

/** A device of a ResourceSlice. */
export interface Device {
  name: string;
  attributes: Record<string, AttributeValue>;
}

const str = (v: string): AttributeValue => ({ string: v });
const int = (v: number): AttributeValue => ({ int: v });
const bool = (v: boolean): AttributeValue => ({ bool: v });

/** The device of a host NIC. */
export function nicDevice(nic: NicInfo): Device {
  const a: Record<string, AttributeValue> = {
    [ATTR.kind]: str("nic" satisfies DeviceKind),
    [ATTR.ifName]: str(nic.name),
    [ATTR.mac]: str(nic.permanentMac ?? nic.mac),
    [ATTR.mtu]: int(nic.mtu),
    [ATTR.linkKind]: str(nic.linkKind),
  };
  const s = nic.sysfs;
  if (s.driver) a[ATTR.driver] = str(s.driver);
  if (s.pciAddress) a[ATTR.pciAddress] = str(s.pciAddress);
  if (s.pcieRoot) a[PCIE_ROOT_ATTR] = str(s.pcieRoot);
  if (s.numaNode !== undefined) a[ATTR.numaNode] = int(s.numaNode);
  if (s.sriovTotalVfs !== undefined) a[ATTR.sriovTotalVfs] = int(s.sriovTotalVfs);
  if (s.sriovVf) a[ATTR.sriovVf] = bool(true);
  if (s.sriovPfName) a[ATTR.sriovPfName] = str(s.sriovPfName);
  if (s.rdma !== undefined) a[ATTR.rdma] = bool(s.rdma);
  return { name: nicDeviceName(nic.name), attributes: a };
}

/** `count` network slots, `net-0` … */
export function networkSlots(count: number): Device[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `${NETWORK_SLOT_PREFIX}${i}`,
    attributes: { [ATTR.kind]: str("network" satisfies DeviceKind), [ATTR.slot]: int(i) },
  }));
}

/** Devices in a stable order (slices compare equal when nothing changed). */
export function sortDevices(devices: readonly Device[]): Device[] {
  return [...devices].sort((a, b) => a.name.localeCompare(b.name));
}
