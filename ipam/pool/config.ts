/**
 * The configuration of `hydra-pool`: whereabouts' keys, so a NAD that says
 * `"type": "whereabouts"` works by changing only the type, plus a few of
 * hydra's own (camelCase, like kube-node's).
 *
 * ```json
 * "ipam": {
 *   "type": "hydra-pool",
 *   "range": "10.10.0.0/16",            // or "10.10.0.50-10.10.0.200/16"
 *   "range_start": "10.10.1.0", "range_end": "10.10.9.255",
 *   "exclude": ["10.10.0.0/30", "10.10.5.5"],
 *   "ipRanges": [{"range": "fd10::/64", "exclude": ["fd10::1/128"]}],
 *   "network_name": "blue", "enable_overlapping_ranges": true,
 *   "gateway": "10.10.0.1", "routes": [{"dst": "0.0.0.0/0"}], "dns": {},
 *   "kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"},
 *   "kubeconfig": "...", "nodeName": "...", "daemonSocket": "/run/hydra/daemon.sock",
 *   "apiTimeout": 10, "importWhereabouts": true
 * }
 * ```
 *
 * Every range becomes one pool: the CIDR, the window between its first
 * and last allocatable address (the network and last address of the CIDR
 * and the gateway are never handed out, and `range_start`/`range_end` or
 * the `a-b/cidr` form narrow it), and the exclusions. One address is
 * allocated per range. Static addresses asked for by the pod's selection
 * (`ips`, passed as `runtimeConfig.ips`, `args.cni.ips` or CNI_ARGS `IP=`)
 * replace the allocation of the range that contains them; one outside
 * every range, or excluded, is an error.
 *
 * Keys whereabouts reads for its own machinery (leader election, log
 * files, the reconciler's schedule, `node_slice_size`, the flat file) are
 * accepted and ignored: hydra needs none of them.
 *
 * @module
 */

import { loadCniArgs } from "../../cni/args.ts";
import { CniError, ErrorCode } from "../../cni/errors.ts";
import type { CmdArgs, Dns, Route } from "../../cni/types.ts";
import {
  compareIpAddr,
  formatIpAddr,
  formatIpNet,
  type IpAddr,
  ipAddrEquals,
  type IpNet,
  ipNetContains,
  lastIpAddr,
  networkIpAddr,
  nextIpAddr,
  parseIpAddr,
  parseIpAddrOrCidr,
  parseIpNet,
  prevIpAddr,
} from "../../ipaddr/ip.ts";
import { invalidConfig, ipamFields } from "../config.ts";
import { parseRoutes } from "../routes.ts";
import { parseDnsBlock } from "../static.ts";
import { networkKey, poolName, type PoolSpec } from "./objects.ts";

/** Where the node daemon listens unless `daemonSocket` says otherwise. */
export const DEFAULT_DAEMON_SOCKET = "/run/hydra/daemon.sock";

/** The kubeconfig `hydra install` writes on each node (its ServiceAccount's token). */
export const INSTALLER_KUBECONFIG = "/etc/cni/net.d/hydra.d/hydra.kubeconfig";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Default deadline of a whole ADD's API work, in seconds. */
export const DEFAULT_API_TIMEOUT_S = 10;

/** The CNI_ARGS keys read (others need IgnoreUnknown, which runtimes set). */
const KNOWN_ARGS = [
  "IP",
  "GATEWAY",
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_UID",
  "K8S_POD_INFRA_CONTAINER_ID",
];

/** One range of the config: a pool and where a request may allocate in it. */
export interface PoolRange {
  /** The pool object's name. */
  readonly name: string;
  readonly spec: PoolSpec;
  /** The CIDR (host bits clear). */
  readonly cidr: IpNet;
  /** First and last allocatable address, inclusive. */
  readonly start: IpAddr;
  readonly end: IpAddr;
  readonly exclude: readonly IpNet[];
  /** The gateway for addresses of this range (never allocated), when configured. */
  readonly gateway?: IpAddr;
}

/** The pod an invocation is for, from CNI_ARGS. */
export interface PodRef {
  namespace: string;
  name: string;
  /** K8S_POD_UID when the runtime passed it. */
  uid?: string;
}

/** A validated `hydra-pool` configuration. */
export interface PoolConfig {
  readonly cniVersion: string;
  /** `network_name` ("" when none) and its key in object names and labels. */
  readonly networkName: string;
  readonly networkKey: string;
  readonly ranges: readonly PoolRange[];
  /** Static addresses asked for, each inside exactly one range (by index). */
  readonly statics: ReadonlyMap<number, IpAddr>;
  readonly routes: Route[];
  readonly dns?: Dns;
  /** `enable_overlapping_ranges` (default true, as in whereabouts). */
  readonly overlapping: boolean;
  readonly importWhereabouts: boolean;
  readonly pod?: PodRef;
  readonly kubeconfig?: string;
  /** `nodeName`, else $NODENAME / $NODE_NAME, else the host name. */
  readonly nodeName: string;
  /** The node daemon's socket; undefined to never use one. */
  readonly daemonSocket?: string;
  readonly apiTimeoutMs: number;
}

function ipamOf(args: Pick<CmdArgs, "config">): Record<string, unknown> {
  const ipam = args.config.ipam;
  if (!ipam || typeof ipam !== "object") throw invalidConfig("IPAM config missing 'ipam' key");
  return ipam as Record<string, unknown>;
}

function bool(ipam: Record<string, unknown>, key: string, fallback: boolean): boolean {
  return ipamFields(ipam, "ipam").boolean(key) ?? fallback;
}

function seconds(ipam: Record<string, unknown>, key: string, fallback: number): number {
  const v = ipamFields(ipam, "ipam").number(key) ?? fallback;
  if (!(v > 0) || v > 3600) {
    throw invalidConfig(`ipam.${key} must be a number of seconds between 0 and 3600`);
  }
  return v * 1000;
}

function ipOrThrow(text: unknown, where: string): IpAddr {
  const ip = typeof text === "string" ? parseIpAddr(text.trim()) : undefined;
  if (!ip) throw invalidConfig(`${where}: invalid IP address ${JSON.stringify(text)}`);
  return ip;
}

/** A CIDR, or a single address as /32 or /128 (whereabouts' `exclude` takes both). */
function excludeEntry(text: unknown, where: string): IpNet {
  if (typeof text === "string") {
    const net = text.includes("/") ? parseIpNet(text.trim()) : undefined;
    if (net && !net.mappedV6) return { ip: networkIpAddr(net.ip, net.prefix), prefix: net.prefix };
    const ip = text.includes("/") ? undefined : parseIpAddr(text.trim());
    if (ip) return { ip, prefix: ip.family === 4 ? 32 : 128 };
  }
  throw invalidConfig(`${where}: ${JSON.stringify(text)} is neither a CIDR nor an IP address`);
}

/** The raw keys of one range, as `range`/`ipRanges[i]` give them. */
interface RangeInput {
  range: unknown;
  rangeStart: unknown;
  rangeEnd: unknown;
  exclude: unknown[];
  where: string;
}

function rangeInputs(ipam: Record<string, unknown>): RangeInput[] {
  const out: RangeInput[] = [];
  const top = ipam.range;
  if (top !== undefined && top !== null && top !== "") {
    out.push({
      range: top,
      rangeStart: ipam.range_start,
      rangeEnd: ipam.range_end,
      exclude: ipamFields(ipam, "ipam").list("exclude") ?? [],
      where: "ipam.range",
    });
  }
  (ipamFields(ipam, "ipam").list("ipRanges") ?? []).forEach((entry, i) => {
    const where = `ipam.ipRanges[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      throw invalidConfig(`${where} must be an object`);
    }
    const e = entry as Record<string, unknown>;
    out.push({
      range: e.range,
      rangeStart: e.range_start,
      rangeEnd: e.range_end,
      exclude: ipamFields(e, where).list("exclude") ?? [],
      where,
    });
  });
  return out;
}

/** The CIDR and the start/end the text fixes: `cidr` or `first-last/prefix`. */
function parseRangeText(text: unknown, where: string): { cidr: IpNet; from?: IpAddr; to?: IpAddr } {
  if (typeof text !== "string" || text.trim() === "") {
    throw invalidConfig(
      `${where} must be a CIDR such as "10.1.0.0/24" or "10.1.0.10-10.1.0.99/24"`,
    );
  }
  const dash = text.indexOf("-");
  const cidrText = (dash >= 0 ? text.slice(dash + 1) : text).trim();
  const net = parseIpNet(cidrText);
  if (!net || net.mappedV6) {
    throw invalidConfig(`${where}: invalid CIDR ${JSON.stringify(cidrText)}`);
  }
  const cidr: IpNet = { ip: networkIpAddr(net.ip, net.prefix), prefix: net.prefix };
  if (dash < 0) return { cidr };
  const from = ipOrThrow(text.slice(0, dash), `${where} (range start)`);
  return { cidr, from, to: net.ip };
}

function bits(net: IpNet): number {
  return net.ip.family === 4 ? 32 : 128;
}

/** Validates one range: window inside the CIDR, start <= end, at least one address left. */
function buildRange(
  input: RangeInput,
  key: string,
  networkName: string,
  overlapping: boolean,
  gateway: IpAddr | undefined,
): PoolRange {
  const { where } = input;
  const { cidr, from, to } = parseRangeText(input.range, where);
  const cidrName = formatIpNet(cidr);
  if (cidr.prefix > bits(cidr) - 2) {
    throw invalidConfig(`${where}: ${cidrName} is too small to allocate from`);
  }
  const first = nextIpAddr(cidr.ip)!;
  const last = prevIpAddr(lastIpAddr(cidr.ip, cidr.prefix))!;
  const explicitStart = input.rangeStart === undefined || input.rangeStart === null ||
      input.rangeStart === ""
    ? undefined
    : ipOrThrow(input.rangeStart, `${where} range_start`);
  const explicitEnd = input.rangeEnd === undefined || input.rangeEnd === null ||
      input.rangeEnd === ""
    ? undefined
    : ipOrThrow(input.rangeEnd, `${where} range_end`);
  const wanted: [string, IpAddr | undefined][] = [
    ["range start", from ?? explicitStart],
    ["range end", to ?? explicitEnd],
  ];
  for (const [what, ip] of wanted) {
    if (ip && !ipNetContains(cidr, ip)) {
      throw invalidConfig(`${where}: ${what} ${formatIpAddr(ip)} is not inside ${cidrName}`);
    }
  }
  const maxIp = (a: IpAddr, b: IpAddr) => (compareIpAddr(a, b) >= 0 ? a : b);
  const minIp = (a: IpAddr, b: IpAddr) => (compareIpAddr(a, b) <= 0 ? a : b);
  const start = maxIp(wanted[0][1] ?? first, first);
  const end = minIp(wanted[1][1] ?? last, last);
  if (compareIpAddr(start, end) > 0) {
    throw invalidConfig(
      `${where}: range start ${formatIpAddr(start)} is after range end ${formatIpAddr(end)} ` +
        `(the network and last address of ${cidrName} are never allocated)`,
    );
  }
  const exclude = input.exclude.map((e, i) => excludeEntry(e, `${where} exclude[${i}]`));
  for (const [i, e] of exclude.entries()) {
    if (e.ip.family !== cidr.ip.family) {
      throw invalidConfig(
        `${where} exclude[${i}]: ${formatIpNet(e)} is not of the family of ${cidrName}`,
      );
    }
  }
  const gw = gateway && gateway.family === cidr.ip.family ? gateway : undefined;
  const excludeText = exclude.map(formatIpNet).sort();
  const spec: PoolSpec = {
    network: key,
    ...(networkName ? { networkName } : {}),
    cidr: cidrName,
    rangeStart: formatIpAddr(start),
    rangeEnd: formatIpAddr(end),
    ...(excludeText.length ? { exclude: excludeText } : {}),
    overlapping,
  };
  const whole = ipAddrEquals(start, first) && ipAddrEquals(end, last) && exclude.length === 0;
  return { name: poolName(spec, cidr, whole), spec, cidr, start, end, exclude, gateway: gw };
}

/** True when `ip` may be allocated from `range`: inside the window, not excluded, not the gateway. */
export function rangeAllows(range: PoolRange, ip: IpAddr): boolean {
  if (!ipNetContains(range.cidr, ip)) return false;
  if (compareIpAddr(ip, range.start) < 0 || compareIpAddr(ip, range.end) > 0) return false;
  if (range.gateway && ipAddrEquals(range.gateway, ip)) return false;
  return !range.exclude.some((e) => ipNetContains(e, ip));
}

/** True when two ranges' windows share an address (exclusions not considered). */
export function windowsOverlap(
  a: Pick<PoolRange, "start" | "end">,
  b: Pick<PoolRange, "start" | "end">,
): boolean {
  return a.start.family === b.start.family && compareIpAddr(a.start, b.end) <= 0 &&
    compareIpAddr(b.start, a.end) <= 0;
}

/** The static addresses asked for: CNI_ARGS `IP=`, then `args.cni.ips`, then `runtimeConfig.ips`. */
function requestedStatics(args: Pick<CmdArgs, "config" | "args">): IpAddr[] {
  const texts: { text: unknown; where: string }[] = [];
  const env = loadCniArgs(args.args, KNOWN_ARGS);
  for (const t of env.IP ? env.IP.split(",") : []) {
    texts.push({ text: t.trim(), where: "CNI_ARGS IP" });
  }
  const cni = args.config.args ? ipamFields(args.config.args, "args").object("cni") : undefined;
  for (const t of (cni ? ipamFields(cni, "args.cni").list("ips") : undefined) ?? []) {
    texts.push({ text: t, where: "args.cni.ips" });
  }
  const rc = args.config.runtimeConfig;
  for (const t of (rc ? ipamFields(rc, "runtimeConfig").list("ips") : undefined) ?? []) {
    texts.push({ text: t, where: "runtimeConfig.ips" });
  }
  const out: IpAddr[] = [];
  for (const { text, where } of texts) {
    const ip = typeof text === "string" ? parseIpAddrOrCidr(text) : undefined;
    if (!ip) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `${where}: invalid static address ${JSON.stringify(text)}`,
      );
    }
    if (!out.some((o) => ipAddrEquals(o, ip))) out.push(ip);
  }
  return out;
}

/** Each static address matched to the one range it may be allocated from. */
function matchStatics(ranges: readonly PoolRange[], statics: IpAddr[]): Map<number, IpAddr> {
  const out = new Map<number, IpAddr>();
  for (const ip of statics) {
    const text = formatIpAddr(ip);
    const i = ranges.findIndex((r) => ipNetContains(r.cidr, ip));
    if (i < 0) {
      throw invalidConfig(
        `static address ${text} is outside every range of this network ` +
          `(${ranges.map((r) => r.spec.cidr).join(", ")})`,
      );
    }
    const r = ranges[i];
    if (!rangeAllows(r, ip)) {
      const why = r.gateway && ipAddrEquals(r.gateway, ip)
        ? "is the gateway"
        : r.exclude.some((e) => ipNetContains(e, ip))
        ? "is excluded"
        : `is outside ${r.spec.rangeStart}-${r.spec.rangeEnd}`;
      throw invalidConfig(`static address ${text} ${why} in pool ${r.name} (${r.spec.cidr})`);
    }
    if (out.has(i)) {
      throw invalidConfig(
        `static addresses ${formatIpAddr(out.get(i)!)} and ${text} are both in pool ${r.name}: ` +
          "one address per range",
      );
    }
    out.set(i, ip);
  }
  return out;
}

/** The pod named by CNI_ARGS, when it names one. */
export function podRefOf(cniArgs: string): PodRef | undefined {
  const env = loadCniArgs(cniArgs, KNOWN_ARGS);
  if (!env.K8S_POD_NAMESPACE || !env.K8S_POD_NAME) return undefined;
  return {
    namespace: env.K8S_POD_NAMESPACE,
    name: env.K8S_POD_NAME,
    ...(env.K8S_POD_UID ? { uid: env.K8S_POD_UID } : {}),
  };
}

/** Where and how to reach the API, and the node: what DEL and GC need besides the ranges. */
export interface Access {
  readonly kubeconfig?: string;
  readonly nodeName: string;
  readonly daemonSocket?: string;
  readonly apiTimeoutMs: number;
}

/** The access keys of a config (valid even when its ranges are not). */
export function loadAccess(args: Pick<CmdArgs, "config">, env = Deno.env): Access {
  const ipam = ipamOf(args);
  const k8s = ipamFields(ipam, "ipam").object("kubernetes");
  // hydra's own account first: whereabouts' kubeconfig (kept in NADs switched over) belongs to
  // an account that has no rights on hydra's objects.
  const kubeconfig = ipamFields(ipam, "ipam").string("kubeconfig") ||
    (exists(INSTALLER_KUBECONFIG) ? INSTALLER_KUBECONFIG : undefined) ||
    (k8s ? ipamFields(k8s, "ipam.kubernetes").string("kubeconfig") : undefined) || undefined;
  const socket = ipamFields(ipam, "ipam").string("daemonSocket") ?? DEFAULT_DAEMON_SOCKET;
  const nodeName = ipamFields(ipam, "ipam").string("nodeName") || env.get("NODENAME") ||
    env.get("NODE_NAME") || Deno.hostname();
  return {
    kubeconfig,
    nodeName: nodeName.trim().toLowerCase(),
    daemonSocket: socket || undefined,
    apiTimeoutMs: seconds(ipam, "apiTimeout", DEFAULT_API_TIMEOUT_S),
  };
}

/**
 * Loads and validates the configuration of one invocation. Throws CniError
 * 7 naming the key at fault (4 for malformed CNI_ARGS).
 */
export function loadPoolConfig(args: Pick<CmdArgs, "config" | "args">, env = Deno.env): PoolConfig {
  const ipam = ipamOf(args);
  const networkName = ipamFields(ipam, "ipam").string("network_name") ?? "";
  const key = networkKey(networkName);
  const overlapping = bool(ipam, "enable_overlapping_ranges", true);
  const gwText = ipamFields(ipam, "ipam").string("gateway");
  const gateway = gwText ? ipOrThrow(gwText, "ipam.gateway") : undefined;
  const inputs = rangeInputs(ipam);
  if (inputs.length === 0) {
    throw invalidConfig('no range: set ipam.range or ipam.ipRanges (e.g. "10.1.0.0/24")');
  }
  const ranges = inputs.map((input) => buildRange(input, key, networkName, overlapping, gateway));
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      if (windowsOverlap(ranges[i], ranges[j])) {
        throw invalidConfig(
          `ranges ${i} (${ranges[i].spec.cidr}) and ${j} (${ranges[j].spec.cidr}) overlap: ` +
            "one address per range would give a pod two addresses of the same range",
        );
      }
    }
  }
  const access = loadAccess(args, env);
  return {
    cniVersion: typeof args.config.cniVersion === "string" ? args.config.cniVersion : "",
    networkName,
    networkKey: key,
    ranges,
    statics: matchStatics(ranges, requestedStatics(args)),
    routes: parseRoutes(ipam.routes),
    dns: parseDnsBlock(ipamFields(ipam, "ipam").object("dns")),
    overlapping,
    importWhereabouts: bool(ipam, "importWhereabouts", true),
    pod: podRefOf(args.args),
    ...access,
  };
}
