/**
 * How a selected network turns into a delegate invocation, as Multus does
 * it: the interface name, the runtimeConfig (capability args) built from the
 * selection, the CNI_ARGS every delegate receives, `cni-args` merged into the
 * plugins' `args.cni`, and the default-route plan. Pure functions, no I/O.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { parseIpAddr } from "../ipaddr/ip.ts";
import { interfaceNameProblem, type NetworkSelection } from "./selection.ts";

/** The pod identity every delegate gets in CNI_ARGS. */
export interface PodArgs {
  namespace: string;
  name: string;
  uid: string;
  /** K8S_POD_INFRA_CONTAINER_ID: the sandbox ID. */
  infraContainerId: string;
}

/**
 * The interface name of delegate `index`: the selection's `interface`, else
 * the runtime's CNI_IFNAME for the default network, else `net<index>`
 * (index in the whole delegate list, so the first secondary is `net1`).
 */
export function delegateIfName(
  sel: NetworkSelection | undefined,
  index: number,
  isDefault: boolean,
  cniIfName: string,
): string {
  if (sel?.interface) return sel.interface;
  if (isDefault) return cniIfName;
  return `net${index}`;
}

/** The interface name containerd's CRI gives a pod's default network. */
export const DEFAULT_POD_IFNAME = "eth0";

/**
 * The interface names of a pod's secondary networks when the runtime made
 * its default one: each selection's `interface`, else `net<n>` by position
 * ({@link delegateIfName} with n counting from `first`). CNI code 7 for a
 * name the kernel would refuse, for the default network's
 * ({@link DEFAULT_POD_IFNAME}), or for two selections asking for one name.
 */
export function secondaryIfNames(
  selections: readonly NetworkSelection[],
  first = 1,
): string[] {
  const names = selections.map((sel, i) => delegateIfName(sel, first + i, false, ""));
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    const problem = interfaceNameProblem(name);
    if (problem) throw new CniError(ErrorCode.InvalidNetworkConfig, problem);
    if (name === DEFAULT_POD_IFNAME) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `network "${selections[i].name}": interface "${name}" belongs to the pod's default network`,
      );
    }
    const other = seen.get(name);
    if (other !== undefined) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `networks "${selections[other].name}" and "${
          selections[i].name
        }" both ask for interface "${name}"`,
      );
    }
    seen.set(name, i);
  });
  return names;
}

/** Where Multus-compatible device plugins and CNIs exchange device info. */
const DEVINFO_CNI_DIR = "/var/run/k8s.cni.cncf.io/devinfo/cni";

/**
 * The runtimeConfig (capability args) of a delegate: the meta-CNI's own
 * received runtimeConfig, overlaid for secondary networks with what the
 * selection requests (`portMappings`, `bandwidth`, `ips`, `mac`,
 * `infinibandGUID`, `deviceID`). The default network gets the received one
 * unchanged. The caller still filters it by each plugin's `capabilities`,
 * as libcni does.
 *
 * @param delegateName "ns/name" of the network, used for the device-info file name
 */
export function delegateRuntimeConfig(
  received: Record<string, unknown> | undefined,
  sel: NetworkSelection | undefined,
  isDefault: boolean,
  ids?: { containerId: string; ifName: string; delegateName: string },
): Record<string, unknown> {
  const rc: Record<string, unknown> = { ...(received ?? {}) };
  if (isDefault || !sel) return rc;
  // An empty request clears what was received, as Multus's merge does.
  const set = (key: string, value: unknown, present: boolean) => {
    if (present) rc[key] = value;
    else delete rc[key];
  };
  if (sel.portMappings) set("portMappings", sel.portMappings, sel.portMappings.length > 0);
  if (sel.bandwidth) rc.bandwidth = sel.bandwidth;
  if (sel.ips) set("ips", sel.ips, sel.ips.length > 0);
  if (sel.mac) rc.mac = sel.mac;
  if (sel.infinibandGuid) rc.infinibandGUID = sel.infinibandGuid;
  if (sel.deviceId) rc.deviceID = sel.deviceId;
  if (typeof rc.deviceID === "string" && rc.deviceID !== "" && ids) {
    const file = `${ids.delegateName}-${ids.containerId}_${ids.ifName}`.replaceAll("/", "-");
    rc.CNIDeviceInfoFile = `${DEVINFO_CNI_DIR}/${file}`;
  }
  return rc;
}

/** Splits CNI_ARGS ("K=V;K2=V2") into pairs, keeping `=` inside values; malformed items are skipped. */
export function parseCniArgs(args: string): [string, string][] {
  const out: [string, string][] = [];
  if (args === "") return out;
  for (const item of args.split(";")) {
    const eq = item.indexOf("=");
    if (eq < 0) continue;
    out.push([item.slice(0, eq), item.slice(eq + 1)]);
  }
  return out;
}

/**
 * The CNI_ARGS of a delegate: `IgnoreUnknown=true` and the four K8S_* keys
 * first, then the meta-CNI's own CNI_ARGS (filling an empty value, else
 * appended), then on ADD the selection's `MAC=` and `IP=` requests.
 */
export function delegateCniArgs(
  pod: PodArgs,
  incoming: string,
  sel: NetworkSelection | undefined,
  command: string,
): string {
  const pairs: [string, string][] = [
    ["IgnoreUnknown", "true"],
    ["K8S_POD_NAMESPACE", pod.namespace],
    ["K8S_POD_NAME", pod.name],
    ["K8S_POD_INFRA_CONTAINER_ID", pod.infraContainerId],
    ["K8S_POD_UID", pod.uid],
  ];
  for (const [key, value] of parseCniArgs(incoming)) {
    const empty = pairs.find(([k, v]) => k === key && v === "");
    if (empty && value !== "") empty[1] = value;
    else pairs.push([key, value]);
  }
  if (command === "ADD" && sel) {
    if (sel.mac) pairs.push(["MAC", sel.mac]);
    if (sel.ips && sel.ips.length > 0) pairs.push(["IP", sel.ips.join(",")]);
  }
  return pairs.map(([k, v]) => `${k}=${v}`).join(";");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Merges a selection's `cni-args` into `args.cni` of a plugin config, or of
 * every plugin of a conflist (the selection wins over keys already there).
 * Returns a new object; throws CNI code 7 when `args`/`args.cni` is not an object.
 *
 * @param networkName named in errors
 */
export function injectCniArgs(
  conf: Record<string, unknown>,
  cniArgs: Record<string, unknown>,
  networkName: string,
): Record<string, unknown> {
  const into = (plugin: unknown, where: string): Record<string, unknown> => {
    if (!isObject(plugin)) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `${where} is not an object`);
    }
    const args = plugin.args ?? {};
    if (!isObject(args)) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: "args" is not an object`);
    }
    const cni = args.cni ?? {};
    if (!isObject(cni)) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: "args.cni" is not an object`);
    }
    return { ...plugin, args: { ...args, cni: { ...cni, ...cniArgs } } };
  };
  if (Array.isArray(conf.plugins)) {
    return {
      ...conf,
      plugins: conf.plugins.map((p, i) => into(p, `network "${networkName}" plugins[${i}]`)),
    };
  }
  return into(conf, `network "${networkName}"`);
}

/** What to do with default routes on one delegate after its ADD. */
export interface DefaultRoutePlan {
  /** Remove every default route (both families) via this delegate's interface. */
  removeDefaultRoutes: boolean;
  /** Gateways to install as default routes via this interface (from `default-route`). */
  gateways: string[];
}

/**
 * The default-route plan for a delegate list, given each delegate's
 * `default-route` request (undefined when it made none). Returns undefined
 * when no delegate asked: every delegate keeps the routes its plugin set.
 * Once any delegate asks (even with an empty list), every delegate's
 * interface loses its default routes and the named gateways are added on
 * theirs, as Multus does. At most one IPv4 and one IPv6 gateway may be
 * named overall (no ECMP), else CNI code 7.
 */
export function planDefaultRoutes(
  requests: readonly (readonly string[] | undefined)[],
): DefaultRoutePlan[] | undefined {
  if (requests.every((r) => r === undefined)) return undefined;
  let v4 = 0;
  let v6 = 0;
  for (const r of requests) for (const gw of r ?? []) parseIpAddr(gw)?.family === 4 ? v4++ : v6++;
  if (v4 > 1 || v6 > 1) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `default-route: ${v4} IPv4 and ${v6} IPv6 gateways requested across the pod's networks; ` +
        "at most one of each is supported (no ECMP)",
    );
  }
  // A family a delegate names a gateway for is replaced, any other is filtered out:
  // either way the interface's existing default routes go (also from its cached result).
  return requests.map((r) => ({ removeDefaultRoutes: true, gateways: [...(r ?? [])] }));
}
