/**
 * Names the DRA driver publishes and reads: the driver, device kinds,
 * device attributes, and how a host interface name becomes a device name.
 *
 * @module
 */

/** The driver name (a DNS subdomain of hydra's domain). */
export const DRIVER_NAME = "hydra.clusternet.io";

/** Device kinds, the `kind` attribute. */
export type DeviceKind = "nic" | "network";

/** Attribute names (qualified by the driver name in CEL: `device.attributes["hydra.clusternet.io"].kind`). */
export const ATTR = {
  kind: "kind",
  ifName: "ifName",
  mac: "mac",
  mtu: "mtu",
  linkKind: "linkKind",
  driver: "driver",
  pciAddress: "pciAddress",
  numaNode: "numaNode",
  sriovTotalVfs: "sriovTotalVfs",
  sriovVf: "sriovVf",
  sriovPfName: "sriovPfName",
  rdma: "rdma",
  slot: "slot",
} as const;

/** Kubernetes' standard attribute for PCIe root alignment across drivers. */
export const PCIE_ROOT_ATTR = "resource.kubernetes.io/pcieRoot";

/** Prefix of a network slot device; slots are `net-0`, `net-1`, … */
export const NETWORK_SLOT_PREFIX = "net-";

/** Prefix of a host NIC device. */
export const NIC_PREFIX = "nic-";

/** FNV-1a, enough to keep sanitized names apart. */
function shortHash(text: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(text)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0").slice(0, 6);
}

/**
 * The device name of a host interface: `nic-<name>` when the interface name
 * is already a DNS label in lower case, else a sanitized form with a hash of
 * the real name appended (so `Eth_1` and `eth-1` stay apart).
 */
export function nicDeviceName(ifName: string): string {
  const plain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ifName);
  if (plain) return `${NIC_PREFIX}${ifName}`;
  const safe = ifName.toLowerCase().replace(/[^a-z0-9-]/g, "-").replace(/^-+|-+$/g, "");
  return `${NIC_PREFIX}${safe ? `${safe}-` : ""}${shortHash(ifName)}`;
}

/** The kind a device name belongs to, from its prefix. */
export function kindOfDevice(device: string): DeviceKind | undefined {
  if (device.startsWith(NIC_PREFIX)) return "nic";
  if (device.startsWith(NETWORK_SLOT_PREFIX)) return "network";
  return undefined;
}
