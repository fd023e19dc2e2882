/**
 * Shared pieces of the built-in plugin tests: a test "host" namespace in
 * which plugins are exec'd (so nothing of the real host is touched), CNI
 * invocations as a runtime makes them, and a normalized view of kernel state
 * for comparing hydra's plugins with the reference ones.
 *
 * Plugins run with `ip netns exec <host>`: the whole process, its threads
 * and the iptables it starts live in the test host namespace, exactly as a
 * plugin started by a runtime lives in the node's.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { cniEnv, type CniInvocation, type ExecOutput, execWithStdin } from "../helpers/cni.ts";
import { createNetns, deleteNetns, run, type TestNetns } from "../helpers/netns.ts";
import { peersDir } from "../infra/peers.ts";

/** The repository root. */
export const repoRoot: string = fileURLToPath(new URL("../../", import.meta.url)).replace(
  /\/$/,
  "",
);
/** hydra's role symlinks. */
export const hydraBin = `${repoRoot}/bin`;
/** Debian's reference plugins (speak up to CNI 1.0.0). */
export const debianDir = "/usr/lib/cni";

/** Where the current reference plugins are, and the newest version they speak. */
export interface Reference {
  dir: string;
  version: string;
}

/**
 * The current reference plugins (CNI 1.1.0) when they have been built,
 * else Debian's (1.0.0).
 */
export function reference(): Reference {
  try {
    const dir = `${peersDir()}/cni-bin`;
    if (Deno.statSync(`${dir}/bridge`).isFile) return { dir, version: "1.1.0" };
  } catch {
    // not built: fall back to the distribution's
  }
  return { dir: debianDir, version: "1.0.0" };
}

/** The CNI_* of one invocation; CNI_PATH defaults to the reference plugins'. */
export type Invocation = Omit<CniInvocation, "path"> & { path?: string[] };

/** What a plugin printed (stdout trimmed) and how it exited. */
export type Outcome = ExecOutput;

const IP = "/usr/sbin/ip";

/**
 * Execs `binary` as a runtime would (minimal environment, config on stdin),
 * inside namespace `host` when given.
 */
export async function invoke(
  host: TestNetns | undefined,
  binary: string,
  inv: Invocation,
  config: unknown,
): Promise<Outcome> {
  const env = cniEnv({ ...inv, path: inv.path ?? [reference().dir] });
  const [cmd, args] = host ? [IP, ["netns", "exec", host.name, binary]] : [binary, []];
  const out = await execWithStdin(cmd, args, env, JSON.stringify(config));
  return { ...out, stdout: out.stdout.trim() };
}

/** Like {@link invoke}, failing the test when the plugin fails. */
export async function mustInvoke(
  host: TestNetns | undefined,
  binary: string,
  inv: Invocation,
  config: unknown,
): Promise<Record<string, unknown> | undefined> {
  const out = await invoke(host, binary, inv, config);
  if (out.code !== 0) {
    throw new Error(
      `${binary} ${inv.command} failed (${out.code}): ${out.stdout} ${out.stderr}`.trim(),
    );
  }
  return out.json;
}

/** A test world: a host namespace, pod namespaces and a scratch folder. */
export interface World {
  host: TestNetns;
  pods: TestNetns[];
  dir: string;
}

/** Runs `fn` in a fresh world with `pods` pod namespaces; everything is removed afterwards. */
export async function withWorld<T>(pods: number, fn: (w: World) => Promise<T>): Promise<T> {
  const made: TestNetns[] = [];
  const dir = await Deno.makeTempDir({ prefix: "hydra-plugins-" });
  try {
    const host = await createNetns("hyh");
    made.push(host);
    const podNs: TestNetns[] = [];
    for (let i = 0; i < pods; i++) {
      const p = await createNetns("hyp");
      made.push(p);
      podNs.push(p);
    }
    return await fn({ host, pods: podNs, dir });
  } finally {
    for (const ns of made.reverse()) await deleteNetns(ns);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** A unique container ID. */
export function containerId(): string {
  return `c${crypto.randomUUID().replaceAll("-", "")}`;
}

/** Runs `cmd` inside namespace `ns`. */
export function inNs(ns: TestNetns, cmd: string, ...args: string[]): Promise<string> {
  return run(IP, "netns", "exec", ns.name, cmd, ...args);
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const RANDOM_VETH = /^veth[0-9a-f]{8}$/;

/**
 * A result with what legitimately differs between two runs replaced: MACs
 * (other than all zeros) by "MAC", random veth names by "veth*", sandbox
 * paths by "SANDBOX".
 */
export function normalizeResult(result: unknown): unknown {
  return JSON.parse(JSON.stringify(result), (key, value) => {
    // Older reference builds print an empty dns object; it says nothing.
    if (key === "dns" && value && typeof value === "object" && !Object.keys(value).length) {
      return undefined;
    }
    if (typeof value !== "string") return value;
    if (key === "mac" && MAC.test(value) && value !== "00:00:00:00:00:00") return "MAC";
    if (key === "name" && RANDOM_VETH.test(value)) return "veth*";
    if (key === "sandbox") return "SANDBOX";
    return value;
  });
}

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  txqlen?: number;
  master?: string;
  promiscuity?: number;
  allmulti?: number;
  ifalias?: string;
  link_type?: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: Record<string, unknown>;
    info_slave_kind?: string;
    info_slave_data?: Record<string, unknown>;
  };
}

const KIND_DATA: Record<string, string[]> = {
  bridge: ["vlan_filtering", "stp_state", "vlan_protocol", "mcast_snooping"],
  macvlan: ["mode"],
  vxlan: ["id", "port", "learning", "local", "link", "group", "remote", "ttl"],
  veth: [],
};
const SLAVE_DATA = ["hairpin", "isolated", "state", "learning", "flood", "guard"];

function pick(obj: Record<string, unknown> | undefined, keys: string[]) {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (obj && obj[k] !== undefined) out[k] = obj[k];
  return out;
}

/** Maps random veth names to stable ones (by interface index). */
function nameMap(links: IpLink[]): (name: string | undefined) => string | undefined {
  const veths = links.filter((l) => RANDOM_VETH.test(l.ifname)).sort((a, b) =>
    a.ifindex - b.ifindex
  );
  const map = new Map(veths.map((l, i) => [l.ifname, `veth*${i}`]));
  return (name) => (name === undefined ? undefined : map.get(name) ?? name);
}

/** True when every link's operational state agrees with its carrier flag. */
function consistent(links: IpLink[]): boolean {
  return links.every((l) =>
    l.operstate === "UNKNOWN" || l.flags.includes("LOWER_UP") === (l.operstate === "UP")
  );
}

/**
 * The links of `ns` once carrier and operational state have settled: the
 * kernel updates them asynchronously (up to a second for a bridge), so a
 * snapshot taken right after a plugin returns could catch them half-way.
 */
async function settledLinks(ns: TestNetns): Promise<IpLink[]> {
  let last = "";
  for (let i = 0; i < 30; i++) {
    const links = await ns.ipJson<IpLink[]>("-d", "link", "show");
    const view = JSON.stringify(links.map((l) => [l.ifname, l.flags, l.operstate]));
    if (consistent(links) && view === last) return links;
    last = view;
    await new Promise((r) => setTimeout(r, 100));
  }
  return await ns.ipJson<IpLink[]>("-d", "link", "show");
}

/**
 * The addresses of `ns` once IPv6 duplicate address detection is over (up
 * to 5 s): the routes of a tentative address only appear when it ends.
 */
async function settledAddrs<T>(ns: TestNetns): Promise<T[]> {
  for (let i = 0; i < 50; i++) {
    const addrs = await ns.ipJson<{ addr_info: { tentative?: boolean }[] }[]>("addr", "show");
    if (!addrs.some((l) => l.addr_info.some((a) => a.tentative))) return addrs as T[];
    await new Promise((r) => setTimeout(r, 100));
  }
  return await ns.ipJson<T[]>("addr", "show");
}

/** What a plugin may set and the comparison looks at. */
export interface StateOptions {
  /** /proc/sys/… keys (relative, slash form) to read. */
  sysctls?: string[];
  /** Include `iptables -t nat -S`. */
  nat?: boolean;
  /** Include bridge port VLANs. */
  vlans?: boolean;
  /** Include the rules of the nftables masquerade table (comments of table and chains left out). */
  nftMasq?: boolean;
}

/** The kernel state of `ns` that matters to a plugin, without MACs and random names. */
export async function kernelState(ns: TestNetns, opts: StateOptions = {}) {
  const links = await settledLinks(ns);
  const rename = nameMap(links);
  const linkView = links.map((l) => ({
    name: rename(l.ifname),
    type: l.link_type,
    flags: [...l.flags].sort(),
    mtu: l.mtu,
    operstate: l.operstate,
    txqlen: l.txqlen ?? 0,
    master: rename(l.master),
    promiscuity: l.promiscuity ?? 0,
    allmulti: l.allmulti ?? 0,
    alias: l.ifalias,
    kind: l.linkinfo?.info_kind,
    data: pick(l.linkinfo?.info_data, KIND_DATA[l.linkinfo?.info_kind ?? ""] ?? []),
    slave: l.linkinfo?.info_slave_kind,
    slaveData: pick(l.linkinfo?.info_slave_data, SLAVE_DATA),
  })).sort((a, b) => String(a.name).localeCompare(String(b.name)));
  type IpAddr = {
    ifname: string;
    addr_info: {
      family: string;
      local: string;
      prefixlen: number;
      scope: string;
      broadcast?: string;
      valid_life_time?: number;
    }[];
  };
  const addrs = (await settledAddrs<IpAddr>(ns)).flatMap((i) =>
    i.addr_info.filter((a) => !(a.family === "inet6" && a.scope === "link")).map((a) => ({
      dev: rename(i.ifname),
      address: `${a.local}/${a.prefixlen}`,
      scope: a.scope,
      broadcast: a.broadcast,
      forever: a.valid_life_time === 4294967295,
    }))
  ).sort((a, b) => `${a.dev} ${a.address}`.localeCompare(`${b.dev} ${b.address}`));
  type IpRoute = Record<string, unknown> & { dst: string; dev?: string };
  const routes = [
    ...await ns.ipJson<IpRoute[]>("-4", "route", "show", "table", "all"),
    ...await ns.ipJson<IpRoute[]>("-6", "route", "show", "table", "all"),
  ].filter((r) => !/^(fe80:|ff00::)/.test(r.dst)).map((r) => ({
    ...pick(r, [
      "type",
      "dst",
      "gateway",
      "table",
      "protocol",
      "scope",
      "metric",
      "prefsrc",
      "mtu",
    ]),
    dev: rename(r.dev),
  })).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
  const state: Record<string, unknown> = { links: linkView, addrs, routes };
  if (opts.sysctls?.length) state.sysctls = await readSysctls(ns, opts.sysctls);
  if (opts.nat) {
    state.nat = (await inNs(ns, "iptables", "-w", "-t", "nat", "-S")).split("\n").filter(Boolean);
  }
  if (opts.nftMasq) state.nftMasq = await nftMasquerades(ns);
  if (opts.vlans) {
    const text = await inNs(ns, "bridge", "-j", "vlan", "show");
    const vlans = (text.trim() ? JSON.parse(text) : []) as { ifname: string; vlans: unknown[] }[];
    state.vlans = vlans.map((v) => ({ dev: rename(v.ifname), vlans: v.vlans }))
      .sort((a, b) => String(a.dev).localeCompare(String(b.dev)));
  }
  return state;
}

/** The text of an nftables table in `ns`, "" when it is not there. */
async function nftTable(ns: TestNetns, table: string): Promise<string> {
  const out = await new Deno.Command(IP, {
    args: ["netns", "exec", ns.name, "nft", "list", "table", "inet", table],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(out.stdout);
}

/**
 * What nftables masquerades in `ns`, whichever table holds the rules (the
 * reference plugins' `cni_plugins_masquerade` or hydra's
 * `hydra_masquerade`): one line per masquerade rule, comment left out, and
 * whether multicast is kept out of it (by a `return` before the rules in the
 * reference's layout, by a match in each rule in hydra's).
 */
async function nftMasquerades(ns: TestNetns): Promise<string[]> {
  const out: string[] = [];
  for (const table of ["cni_plugins_masquerade", "hydra_masquerade"]) {
    const text = await nftTable(ns, table);
    const returns = /ip daddr 224\.0\.0\.0\/4 return/.test(text) &&
      /ip6 daddr ff00::\/8 return/.test(text);
    for (const line of text.split("\n").map((l) => l.trim())) {
      if (!/^ip6? saddr .* masquerade/.test(line)) continue;
      const rule = line.replace(/ comment ".*"$/, "");
      const multicast = / ip6? daddr != (224\.0\.0\.0\/4|ff00::\/8) /;
      const excluded = returns || multicast.test(rule);
      out.push(`${rule.replace(multicast, " ")}${excluded ? " (multicast excluded)" : ""}`);
    }
  }
  return out.sort();
}

/** Reads sysctls (slash form, relative to /proc/sys) inside `ns`; "-" for a missing key. */
export async function readSysctls(ns: TestNetns, keys: string[]): Promise<Record<string, string>> {
  const script = 'for k; do v=$(cat "/proc/sys/$k" 2>/dev/null || echo -); echo "$k=$v"; done';
  const text = await inNs(ns, "sh", "-c", script, "_", ...keys);
  return Object.fromEntries(
    text.split("\n").filter(Boolean).map((
      l,
    ) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
}

/** A random /24 in 100.64.0.0/10 for a test network. */
export function randomSubnet24(): string {
  const [a, b] = crypto.getRandomValues(new Uint8Array(2));
  return `100.${64 + (a % 64)}.${b}.0/24`;
}

/** A random /64 in fd00::/8. */
export function randomSubnet64(): string {
  const [a, b, c] = crypto.getRandomValues(new Uint16Array(3));
  return `fd${(a & 0xff).toString(16).padStart(2, "0")}:${b.toString(16)}:${c.toString(16)}::/64`;
}

/**
 * True when `ip` answers from inside `ns`: a TCP connection attempt to a
 * closed port is refused by the peer's kernel, which proves the round trip
 * without needing a listener (or ping) anywhere.
 */
export async function reaches(ns: TestNetns, ip: string): Promise<boolean> {
  const family = ip.includes(":") ? "AF_INET6" : "AF_INET";
  const script = [
    "import socket, sys",
    `s = socket.socket(socket.${family}, socket.SOCK_STREAM)`,
    "s.settimeout(3)",
    "rc = s.connect_ex((sys.argv[1], 9))",
    "sys.exit(0 if rc in (0, 111) else 1)",
  ].join("\n");
  const out = await new Deno.Command(IP, {
    args: ["netns", "exec", ns.name, "python3", "-c", script, ip],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/** True when this kernel's bridges support VLAN filtering. */
export async function bridgeVlanFilteringSupported(): Promise<boolean> {
  const ns = await createNetns("hyv");
  try {
    const out = await new Deno.Command(IP, {
      args: ["-n", ns.name, "link", "add", "probe", "type", "bridge", "vlan_filtering", "1"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } finally {
    await deleteNetns(ns);
  }
}
