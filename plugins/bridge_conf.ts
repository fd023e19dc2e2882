/**
 * hydra-bridge's configuration: the reference bridge plugin's fields, read
 * and checked, defaults applied.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { CmdArgs } from "../cni/types.ts";
import { parseMac } from "../netlink/mac.ts";
import { type MasqBackend, parseMasqBackend } from "./ipmasq.ts";
import type { Shape } from "../pkg/schema.ts";
import { BRIDGE_SHAPE } from "./schemas.ts";
import {
  argsCni,
  cniArgsMac,
  enforcePluginShape,
  invalidConfig,
  ipamType,
  isObject,
  optArray,
  optBool,
  optInt,
  optString,
  runtimeConfig,
} from "./netconf.ts";

/** The bridge plugin's settings, defaults applied. */
export interface BridgeConf {
  network: string;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  ipMasqBackend?: MasqBackend;
  mtu: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  vlanTrunk: number[];
  preserveDefaultVlan: boolean;
  enableDad: boolean;
  disableContainerInterface: boolean;
  portIsolation: boolean;
  mac?: string;
  ipam?: string;
}

/** The reference bridge's default bridge name. */
export const DEFAULT_BRIDGE = "cni0";

function vlanId(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > 4094) {
    throw invalidConfig(`incorrect trunk ${what} parameter: ${JSON.stringify(v)}`);
  }
  return v;
}

/** Expands `vlanTrunk` entries ({id} or {minID, maxID}) into sorted unique VLAN IDs. */
export function parseVlanTrunk(raw: unknown[] | undefined): number[] {
  if (!raw) return [];
  const ids = new Set<number>();
  for (const item of raw) {
    if (!isObject(item)) throw invalidConfig("vlanTrunk entries must be objects");
    const hasMin = item.minID !== undefined && item.minID !== null;
    const hasMax = item.maxID !== undefined && item.maxID !== null;
    if (hasMin !== hasMax) {
      throw invalidConfig(
        `minID and maxID should be configured simultaneously, ${
          hasMin ? "maxID" : "minID"
        } is missing`,
      );
    }
    if (hasMin) {
      const min = vlanId(item.minID, "minID");
      const max = vlanId(item.maxID, "maxID");
      if (max < min) throw invalidConfig("minID is greater than maxID in trunk parameter");
      for (let v = min; v <= max; v++) ids.add(v);
    }
    if (item.id !== undefined && item.id !== null) ids.add(vlanId(item.id, "id"));
  }
  return [...ids].sort((a, b) => a - b);
}

function checkMac(mac: string | undefined): string | undefined {
  if (mac === undefined) return undefined;
  try {
    parseMac(mac);
  } catch {
    throw invalidConfig(`invalid MAC address ${JSON.stringify(mac)}`);
  }
  return mac;
}

/**
 * Reads and validates a bridge config (CniError 6/7 on bad input), checked
 * first against `shape` (null: the caller has checked it, as hydra-vxlan does).
 */
export function parseBridgeConf(args: CmdArgs, shape: Shape | null = BRIDGE_SHAPE): BridgeConf {
  if (shape) enforcePluginShape(args, shape);
  const c = args.config;
  const vlan = optInt(c, "vlan") ?? 0;
  if (vlan < 0 || vlan > 4094) {
    throw invalidConfig(`invalid VLAN ID ${vlan} (must be between 0 and 4094)`);
  }
  const mtu = optInt(c, "mtu") ?? 0;
  if (mtu < 0) throw invalidConfig(`invalid MTU ${mtu}`);
  const mac = optString(runtimeConfig(c), "mac") ?? optString(argsCni(c), "mac") ??
    cniArgsMac(args);
  const conf: BridgeConf = {
    network: c.name ?? "",
    bridge: optString(c, "bridge") ?? DEFAULT_BRIDGE,
    isGateway: optBool(c, "isGateway") ?? false,
    isDefaultGateway: optBool(c, "isDefaultGateway") ?? false,
    forceAddress: optBool(c, "forceAddress") ?? false,
    ipMasq: optBool(c, "ipMasq") ?? false,
    ipMasqBackend: parseMasqBackend(optString(c, "ipMasqBackend")),
    mtu,
    hairpinMode: optBool(c, "hairpinMode") ?? false,
    promiscMode: optBool(c, "promiscMode") ?? false,
    vlan,
    vlanTrunk: parseVlanTrunk(optArray(c, "vlanTrunk")),
    preserveDefaultVlan: optBool(c, "preserveDefaultVlan") ?? false,
    enableDad: optBool(c, "enabledad") ?? false,
    disableContainerInterface: optBool(c, "disableContainerInterface") ?? false,
    portIsolation: optBool(c, "portIsolation") ?? false,
    mac: checkMac(mac),
    ipam: ipamType(c, args.command),
  };
  if (conf.isDefaultGateway) conf.isGateway = true;
  if (conf.bridge.length > 15) throw invalidConfig(`bridge name "${conf.bridge}" is too long`);
  if (optBool(c, "macspoofchk")) {
    throw new CniError(
      ErrorCode.UnsupportedField,
      'unsupported config field "macspoofchk": true',
      "hydra-bridge does not implement MAC spoof checking",
    );
  }
  return conf;
}
