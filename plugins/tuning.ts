/**
 * hydra-tuning: a chained plugin that adjusts the interface an earlier
 * plugin made, as the reference `tuning` plugin does:
 *
 * ```json
 * {
 *   "type": "hydra-tuning",
 *   "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1", "net/ipv6/conf/IFNAME/accept_ra": "0"},
 *   "mac": "0a:58:0a:00:00:05", "promisc": true, "mtu": 1400,
 *   "allmulti": true, "txQLen": 2000, "dataDir": "/run/cni/tuning"
 * }
 * ```
 *
 * - `sysctl` keys use dots or slashes; the first `IFNAME` becomes
 *   CNI_IFNAME; only keys under /proc/sys/net/ are allowed, and when
 *   /etc/cni/tuning/allowlist.conf exists each key must match one of its
 *   regular expressions (one per line). Written inside the container's
 *   namespace.
 * - MAC: `mac`, then CNI_ARGS `MAC`, then `runtimeConfig.mac`, then
 *   `args.cni.mac`; `args.cni` may also override `sysctl` entries,
 *   `promisc`, `mtu`, `allmulti` and `txQLen`.
 * - Before changing MAC, MTU, promisc, allmulti or txQLen the old values
 *   are saved in `<dataDir>/<containerID>_<ifname>.json` (the reference
 *   plugin's file format); DEL puts them back (sysctls are not restored) and
 *   ignores errors.
 *
 * The result is `prevResult` with the interface's new MAC. A failed ADD
 * puts back what it changed, sysctls included.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Plugin } from "../cni/types.ts";
import type { CmdArgs, Result } from "../cni/types.ts";
import { SUPPORTED_VERSIONS } from "../cni/types.ts";
import { getLink, type Handle, IFF, parseMac, setLink, sysctlRead } from "../netlink/mod.ts";
import { sysctlWrite } from "../netlink/sysctl.ts";
import { closeAll, createUndo, openNetnsForDel, openNetnsHandle } from "./links.ts";
import { TUNING_SHAPE } from "./schemas.ts";
import {
  argsCni,
  cniArgsMac,
  enforcePluginShape,
  invalidConfig,
  type Json,
  optBool,
  optInt,
  optObject,
  optString,
  requirePrevResult,
  runtimeConfig,
  syncVerb,
} from "./netconf.ts";
import { type LinkBackup, readBackup, removeBackup, writeBackup } from "./tuning_backup.ts";

/** Where backups go unless `dataDir` says otherwise. */
export const DEFAULT_TUNING_DIR = "/run/cni/tuning";
/** The optional list of allowed sysctl patterns. */
export const ALLOWLIST_FILE = "/etc/cni/tuning/allowlist.conf";

interface TuningConf {
  dataDir: string;
  sysctl: Map<string, string>;
  mac?: string;
  promisc: boolean;
  mtu: number;
  txQLen?: number;
  allmulti?: boolean;
}

function sysctlMap(raw: Json | undefined, into: Map<string, string>, where: string): void {
  if (!raw) return;
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== "string" && typeof v !== "number") {
      throw new CniError(ErrorCode.DecodingFailure, `${where}.${k} must be a string`);
    }
    into.set(k, String(v));
  }
}

function parseConf(args: CmdArgs): TuningConf {
  enforcePluginShape(args, TUNING_SHAPE);
  const c = args.config;
  const cni = argsCni(c);
  const sysctl = new Map<string, string>();
  sysctlMap(optObject(c, "sysctl"), sysctl, "sysctl");
  sysctlMap(optObject(cni, "sysctl"), sysctl, "args.cni.sysctl");
  const conf: TuningConf = {
    dataDir: optString(c, "dataDir") ?? DEFAULT_TUNING_DIR,
    sysctl,
    mac: optString(cni, "mac") ?? optString(runtimeConfig(c), "mac") ?? cniArgsMac(args) ??
      optString(c, "mac"),
    promisc: optBool(cni, "promisc") ?? optBool(c, "promisc") ?? false,
    mtu: optInt(cni, "mtu") ?? optInt(c, "mtu") ?? 0,
    txQLen: optInt(cni, "txQLen") ?? optInt(c, "txQLen"),
    allmulti: optBool(cni, "allmulti") ?? optBool(c, "allmulti"),
  };
  if (conf.mac !== undefined) {
    try {
      parseMac(conf.mac);
    } catch {
      throw invalidConfig(`invalid args ${conf.mac} for MAC addr`);
    }
  }
  if (conf.mtu < 0) throw invalidConfig(`invalid MTU ${conf.mtu}`);
  if (conf.txQLen !== undefined && conf.txQLen < 0) {
    throw invalidConfig(`invalid txQLen ${conf.txQLen}`);
  }
  return conf;
}

/**
 * The /proc/sys path of a tuning sysctl key: dots become slashes, the first
 * `IFNAME` becomes `ifName`, and the result must stay under /proc/sys/net/.
 */
export function sysctlFile(key: string, ifName: string): string {
  const rel = key.replaceAll(".", "/").replace("IFNAME", ifName);
  const parts: string[] = [];
  for (const p of `/proc/sys/${rel}`.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  const path = "/" + parts.join("/");
  if (!path.startsWith("/proc/sys/net/")) throw invalidConfig(`invalid net sysctl key: "${rel}"`);
  return path;
}

async function checkAllowlist(keys: Iterable<string>): Promise<void> {
  let text: string;
  try {
    text = await Deno.readTextFile(ALLOWLIST_FILE);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new CniError(
      ErrorCode.IoFailure,
      `cannot read ${ALLOWLIST_FILE}: ${(e as Error).message}`,
    );
  }
  const patterns = text.split("\n").map((l) => l.trim()).filter(Boolean);
  for (const key of keys) {
    const ok = patterns.some((p) => {
      try {
        return new RegExp(p).test(key);
      } catch {
        throw invalidConfig(`invalid pattern ${JSON.stringify(p)} in ${ALLOWLIST_FILE}`);
      }
    });
    if (!ok) {
      throw invalidConfig(
        `Sysctl ${key} is not allowed. Only the following sysctls are allowed: [${
          patterns.join(" ")
        }]`,
      );
    }
  }
}

function needsBackup(conf: TuningConf): boolean {
  return conf.mac !== undefined || conf.mtu !== 0 || conf.promisc ||
    conf.allmulti !== undefined || conf.txQLen !== undefined;
}

/** What the link looks like now, for the attributes `conf` is about to change. */
function snapshot(h: Handle, ifName: string, conf: TuningConf): LinkBackup {
  const link = getLink(h, ifName);
  const b: LinkBackup = {};
  if (conf.mac !== undefined) b.mac = link.mac;
  if (conf.promisc) b.promisc = (link.flags & IFF.PROMISC) !== 0;
  if (conf.mtu !== 0) b.mtu = link.mtu;
  if (conf.allmulti !== undefined) b.allmulti = (link.flags & IFF.ALLMULTI) !== 0;
  if (conf.txQLen !== undefined) b.txQLen = link.txqlen ?? 0;
  return b;
}

/** Applies a backup's values to the link, each on its own so one failure does not stop the rest. */
function restore(h: Handle, ifName: string, b: LinkBackup): string[] {
  const errors: string[] = [];
  const step = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (e) {
      errors.push(`failed to restore ${what}: ${(e as Error).message}`);
    }
  };
  if (b.mtu) step("MTU", () => setLink(h, ifName, { mtu: b.mtu }));
  if (b.mac) step("MAC address", () => setLink(h, ifName, { mac: b.mac }));
  if (b.promisc !== undefined) {
    step("promiscuous mode", () => setLink(h, ifName, { promisc: b.promisc }));
  }
  if (b.allmulti !== undefined) {
    step("all-multicast mode", () => setLink(h, ifName, { allmulti: b.allmulti }));
  }
  if (b.txQLen !== undefined) {
    step("transmit queue length", () => setLink(h, ifName, { txqlen: b.txQLen }));
  }
  return errors;
}

function internal(msg: string): CniError {
  return new CniError(ErrorCode.Internal, msg);
}

async function add(args: CmdArgs): Promise<Result> {
  const conf = parseConf(args);
  const files = [...conf.sysctl].map(([k, v]) => [sysctlFile(k, args.ifName), v] as const);
  await checkAllowlist(conf.sysctl.keys());
  const prev = requirePrevResult(args.config);
  const h = openNetnsHandle(args.netns);
  const undo = createUndo();
  try {
    for (const [file, value] of files) {
      let before: string | undefined;
      try {
        before = sysctlRead(args.netns, file);
      } catch {
        before = undefined;
      }
      try {
        sysctlWrite(args.netns, file, value);
      } catch (e) {
        throw internal(`failed to set ${file} to ${value}: ${(e as Error).message}`);
      }
      if (before !== undefined) {
        const old = before;
        undo.push(`restore ${file}`, () => sysctlWrite(args.netns, file, old));
      }
    }
    if (needsBackup(conf)) {
      const backup = snapshot(h, args.ifName, conf);
      await writeBackup(conf.dataDir, args.containerId, args.ifName, backup);
      undo.push("put the link back", async () => {
        restore(h, args.ifName, backup);
        await removeBackup(conf.dataDir, args.containerId, args.ifName);
      });
    }
    const change = (what: string, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        throw internal(`failed to change ${what} of "${args.ifName}": ${(e as Error).message}`);
      }
    };
    if (conf.mac !== undefined) change("MAC", () => setLink(h, args.ifName, { mac: conf.mac }));
    if (conf.promisc) change("promisc", () => setLink(h, args.ifName, { promisc: true }));
    if (conf.mtu) change("MTU", () => setLink(h, args.ifName, { mtu: conf.mtu }));
    if (conf.allmulti !== undefined) {
      change("allmulti", () => setLink(h, args.ifName, { allmulti: conf.allmulti }));
    }
    if (conf.txQLen !== undefined) {
      change("txQLen", () => setLink(h, args.ifName, { txqlen: conf.txQLen }));
    }
  } catch (err) {
    await undo.run();
    throw err;
  } finally {
    closeAll(h);
  }
  if (conf.mac !== undefined) {
    for (const i of prev.interfaces ?? []) if (i.name === args.ifName) i.mac = conf.mac;
  }
  return prev;
}

/**
 * DEL puts back what the backup holds while the interface is still there,
 * then removes the backup whatever happened: one cut short by a crash, or
 * kept for an interface or namespace that is gone, could never be used, and
 * a DEL that answered success is not asked again.
 */
async function del(args: CmdArgs): Promise<void> {
  const conf = parseConf(args);
  try {
    const backup = await readBackup(conf.dataDir, args.containerId, args.ifName);
    if (backup) restoreIfThere(args, backup);
  } finally {
    await removeBackup(conf.dataDir, args.containerId, args.ifName).catch(() => {});
  }
}

/** Restores `backup` on the interface when namespace and interface still exist. */
function restoreIfThere(args: CmdArgs, backup: LinkBackup): void {
  const h = openNetnsForDel(args.netns);
  if (!h) return;
  try {
    if (getLinkOrUndefined(h, args.ifName)) restore(h, args.ifName, backup);
  } catch {
    // DEL of a chained tuning step never fails, as the reference plugin's.
  } finally {
    closeAll(h);
  }
}

function getLinkOrUndefined(h: Handle, ifName: string) {
  try {
    return getLink(h, ifName);
  } catch {
    return undefined;
  }
}

function checkSync(args: CmdArgs): void {
  const conf = parseConf(args);
  requirePrevResult(args.config);
  const h = openNetnsHandle(args.netns);
  try {
    for (const [key, want] of conf.sysctl) {
      const file = sysctlFile(key, args.ifName);
      const have = sysctlRead(args.netns, file);
      if (have !== want) {
        throw internal(`Tuning configured value of ${file} is ${want}, current value is ${have}`);
      }
    }
    const link = getLinkOrUndefined(h, args.ifName);
    if (!link) throw internal(`Cannot find container link ${args.ifName}`);
    const promisc = (link.flags & IFF.PROMISC) !== 0;
    const allmulti = (link.flags & IFF.ALLMULTI) !== 0;
    const mismatch = (what: string, want: unknown, have: unknown) =>
      internal(`Tuning configured ${what} of ${args.ifName} is ${want}, current value is ${have}`);
    if (conf.mac !== undefined && conf.mac.toLowerCase() !== link.mac) {
      throw mismatch("Ethernet", conf.mac, link.mac);
    }
    if (conf.promisc !== promisc) throw mismatch("promisc", conf.promisc, promisc);
    if (conf.mtu && conf.mtu !== link.mtu) throw mismatch("MTU", conf.mtu, link.mtu);
    if (conf.allmulti !== undefined && conf.allmulti !== allmulti) {
      throw mismatch("all-multicast mode", conf.allmulti, allmulti);
    }
    if (conf.txQLen !== undefined && conf.txQLen !== link.txqlen) {
      throw mismatch("Transmit Queue Length", conf.txQLen, link.txqlen);
    }
  } finally {
    closeAll(h);
  }
}

/** The hydra-tuning plugin. */
export const plugin: Plugin = {
  kind: "tuning",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del,
  check: syncVerb(checkSync),
};
