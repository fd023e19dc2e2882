/**
 * The configs of hydra's built-in interface plugins as {@link Shape}s: the
 * CNI spec's keys plus each plugin's own. Each plugin enforces its shape on
 * its exec path (a key of the wrong type is its usual error, an unknown key
 * a warning); doctor and the installer check configs against them. The
 * reference plugins hydra's follow read the same keys, so their configs
 * are checked with the same shapes. Data only, cheap to load.
 *
 * @module
 */

import { extendShape, PLUGIN_KEYS } from "../cni/conf_schema.ts";
import type { KeySpec, Shape } from "../pkg/schema.ts";

const BOOL: KeySpec = { type: "boolean" };
const INT: KeySpec = { type: "integer" };
const STRING: KeySpec = { type: "string" };

/** Masquerading, as bridge and vxlan have it. */
const MASQ_KEYS: Readonly<Record<string, KeySpec>> = {
  ipMasq: BOOL,
  ipMasqBackend: { type: "string", values: ["iptables", "nftables"] },
};

/**
 * Handing the invocation to the node daemon (docs/node-daemon.md), which
 * the exec'd side reads before the plugin runs: hydra's own keys, which
 * the reference twins ignore.
 */
const DAEMON_EXEC_KEYS: Readonly<Record<string, KeySpec>> = {
  daemonExec: BOOL,
  daemonExecTimeout: { type: "number" },
  daemonSocket: STRING,
};

/** The bridge-side keys hydra-bridge and hydra-vxlan share. */
const BRIDGE_SIDE_KEYS: Readonly<Record<string, KeySpec>> = {
  bridge: STRING,
  isGateway: BOOL,
  isDefaultGateway: BOOL,
  forceAddress: BOOL,
  ...MASQ_KEYS,
  mtu: INT,
  hairpinMode: BOOL,
  promiscMode: BOOL,
  macspoofchk: BOOL,
  enabledad: BOOL,
  disableContainerInterface: BOOL,
  portIsolation: BOOL,
  ...DAEMON_EXEC_KEYS,
};

const VLAN_TRUNK: KeySpec = {
  type: "list",
  items: {
    type: "object",
    shape: { name: "vlanTrunk entry", keys: { id: INT, minID: INT, maxID: INT } },
  },
};

/** hydra-bridge (and the reference bridge). */
export const BRIDGE_SHAPE: Shape = extendShape(PLUGIN_KEYS, "bridge config", {
  ...BRIDGE_SIDE_KEYS,
  vlan: INT,
  vlanTrunk: VLAN_TRUNK,
  preserveDefaultVlan: BOOL,
});

const NO_VLAN = "hydra-vxlan's bridge carries no VLANs";

/** hydra-vxlan. */
export const VXLAN_SHAPE: Shape = extendShape(PLUGIN_KEYS, "hydra-vxlan config", {
  ...BRIDGE_SIDE_KEYS,
  vni: INT,
  port: INT,
  dev: STRING,
  local: STRING,
  group: STRING,
  remote: STRING,
  vxlan: STRING,
  vlan: { type: "any", unsupported: NO_VLAN },
  vlanTrunk: { type: "any", unsupported: NO_VLAN },
  preserveDefaultVlan: { type: "any", unsupported: NO_VLAN },
});

/** hydra-macvlan (and the reference macvlan). */
export const MACVLAN_SHAPE: Shape = extendShape(PLUGIN_KEYS, "macvlan config", {
  master: STRING,
  mode: { type: "string", values: ["bridge", "private", "vepa", "passthru"] },
  mtu: INT,
  mac: STRING,
  linkInContainer: BOOL,
  bcqueuelen: INT,
  ...DAEMON_EXEC_KEYS,
});

/** hydra-host-device (and the reference host-device). */
export const HOST_DEVICE_SHAPE: Shape = extendShape(PLUGIN_KEYS, "host-device config", {
  device: STRING,
  hwaddr: STRING,
  kernelpath: STRING,
  pciBusID: STRING,
  ...DAEMON_EXEC_KEYS,
});

/** hydra-tuning (and the reference tuning). */
export const TUNING_SHAPE: Shape = extendShape(PLUGIN_KEYS, "tuning config", {
  sysctl: { type: "object", shape: { name: "sysctl map", keys: {}, open: true } },
  dataDir: STRING,
  mac: STRING,
  promisc: BOOL,
  mtu: INT,
  txQLen: INT,
  allmulti: BOOL,
});

/** hydra-loopback (and the reference loopback). */
export const LOOPBACK_SHAPE: Shape = extendShape(PLUGIN_KEYS, "loopback config", {});

/** hydra-hybrid: a pod on a hybrid network (docs/hybrid.md). */
export const HYBRID_SHAPE: Shape = extendShape(PLUGIN_KEYS, "hydra-hybrid config", {
  network: STRING,
  kind: STRING,
  kubeconfig: STRING,
  nodeName: STRING,
  dataDir: STRING,
  defaultRoute: BOOL,
  extraRoutes: { type: "list", items: STRING },
  apiTimeout: { type: "number" },
});

/** The interface plugins' shapes by `type`: hydra's built-ins and the reference twins. */
export const PLUGIN_SHAPES: Readonly<Record<string, Shape>> = {
  "hydra-bridge": BRIDGE_SHAPE,
  bridge: BRIDGE_SHAPE,
  "hydra-vxlan": VXLAN_SHAPE,
  "hydra-macvlan": MACVLAN_SHAPE,
  macvlan: MACVLAN_SHAPE,
  "hydra-host-device": HOST_DEVICE_SHAPE,
  "host-device": HOST_DEVICE_SHAPE,
  "hydra-tuning": TUNING_SHAPE,
  tuning: TUNING_SHAPE,
  "hydra-loopback": LOOPBACK_SHAPE,
  loopback: LOOPBACK_SHAPE,
  "hydra-hybrid": HYBRID_SHAPE,
};
