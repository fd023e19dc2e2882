/**
 * hydra-ipam: a host-local compatible IPAM plugin. Same config, same
 * results, same files on disk, so a node can switch between the two in
 * either direction without losing or duplicating an address. Beyond
 * host-local it implements STATUS and GC, and holds the store lock for a
 * whole ADD (all range sets at once) rather than per set.
 *
 * @module
 */

import { fromInternal } from "../cni/convert.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Plugin } from "../cni/types.ts";
import type { AnyResult, Attachment, CmdArgs, IpConfig, Result } from "../cni/types.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../cni/types.ts";
import { allocate, type Allocation } from "./allocator.ts";
import { enforceIpamShape, loadHostLocalConfig, loadStoreLocation } from "./config.ts";
import { HOST_LOCAL_SHAPE } from "./schemas.ts";
import { formatIpAddr, type IpAddr, ipAddrEquals, parseIpAddrOrCidr } from "../ipaddr/ip.ts";
import { rangeSetContains } from "./range.ts";
import { readResolvConf } from "./resolv.ts";
import {
  listReservations,
  ownedBy,
  probeWritable,
  releaseByOwner,
  removeReservations,
  reservationsOf,
  withStore,
} from "./store.ts";

function toIpConfig(a: Allocation): IpConfig {
  return {
    address: `${formatIpAddr(a.ip)}/${a.range.subnet.prefix}`,
    gateway: formatIpAddr(a.range.gateway),
  };
}

async function add(args: CmdArgs): Promise<AnyResult> {
  enforceIpamShape(args, HOST_LOCAL_SHAPE);
  const config = loadHostLocalConfig(args.config, args.args);
  const dns = config.resolvConf ? await readResolvConf(config.resolvConf) : undefined;
  const allocations = await withStore(
    config.dataDir,
    config.name,
    (store) =>
      allocate(store, config.rangeSets, config.requestedIps, args.containerId, args.ifName),
    args.signal,
  );
  const result: Result = { cniVersion: CURRENT_VERSION, ips: allocations.map(toIpConfig) };
  if (config.routes.length > 0) result.routes = config.routes;
  if (dns && Object.keys(dns).length > 0) result.dns = dns;
  return fromInternal(result, config.cniVersion);
}

async function del(args: CmdArgs): Promise<void> {
  const { name, dataDir } = loadStoreLocation(args.config);
  // The previous result's addresses let a reservation a crash cut short go too.
  const held = previousAddresses(args.config.prevResult);
  await withStore(
    dataDir,
    name,
    (store) => releaseByOwner(store, args.containerId, args.ifName, held),
  );
}

/** Addresses of a prevResult in any version's shape. */
function previousAddresses(prev: unknown): IpAddr[] {
  if (typeof prev !== "object" || prev === null) return [];
  const p = prev as Record<string, unknown>;
  const texts: unknown[] = [];
  if (Array.isArray(p.ips)) texts.push(...p.ips.map((c) => (c as IpConfig | null)?.address));
  for (const key of ["ip4", "ip6"]) {
    const block = p[key] as { ip?: unknown } | undefined;
    if (block && typeof block === "object") texts.push(block.ip);
  }
  return texts.flatMap((t) => {
    const ip = typeof t === "string" ? parseIpAddrOrCidr(t) : undefined;
    return ip ? [ip] : [];
  });
}

async function check(args: CmdArgs): Promise<void> {
  enforceIpamShape(args, HOST_LOCAL_SHAPE);
  const config = loadHostLocalConfig(args.config, args.args);
  const expected = previousAddresses(args.config.prevResult)
    .filter((ip) => config.rangeSets.some((set) => rangeSetContains(set, ip)));
  await withStore(config.dataDir, config.name, async (store) => {
    const mine = reservationsOf(await listReservations(store), args.containerId, args.ifName);
    if (mine.length === 0) {
      throw new CniError(
        ErrorCode.Internal,
        `failed to find an address reserved for container ${args.containerId} ` +
          `interface ${args.ifName} in ${store.dir}`,
      );
    }
    const missing = expected.filter((ip) => !mine.some((r) => ipAddrEquals(r.ip, ip)));
    if (missing.length > 0) {
      throw new CniError(
        ErrorCode.Internal,
        `address ${missing.map(formatIpAddr).join(", ")} of the previous result is not reserved ` +
          `for container ${args.containerId} interface ${args.ifName}`,
      );
    }
  });
}

/** The `cni.dev/valid-attachments` list of a GC request. */
function validAttachments(args: CmdArgs): Attachment[] {
  const raw = args.config["cni.dev/valid-attachments"];
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, "cni.dev/valid-attachments must be a list");
  }
  return raw.filter((a): a is Attachment =>
    typeof a === "object" && a !== null && typeof a.containerID === "string" &&
    typeof a.ifname === "string"
  );
}

async function gc(args: CmdArgs): Promise<void> {
  const { name, dataDir } = loadStoreLocation(args.config);
  const valid = validAttachments(args);
  await withStore(dataDir, name, async (store) => {
    const stale = (await listReservations(store)).filter((r) =>
      // An empty file is a reservation torn by a crash: it belongs to nobody.
      r.containerId === "" ||
      !valid.some((a) =>
        ownedBy(r, a.containerID, a.ifname, false) || ownedBy(r, a.containerID, a.ifname, true)
      )
    );
    await removeReservations(store, stale);
  });
}

async function status(args: CmdArgs): Promise<void> {
  const config = loadHostLocalConfig(args.config, args.args);
  try {
    await withStore(config.dataDir, config.name, probeWritable);
  } catch (err) {
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `address store ${config.dataDir}/${config.name} is not writable`,
      err instanceof Error ? err.message : String(err),
    );
  }
}

/** The host-local compatible IPAM plugin (invoked as `hydra-ipam`). */
export const plugin: Plugin = {
  kind: "host-local",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del,
  check,
  status,
  gc,
};
