/**
 * hydra-loopback: brings the container's `lo` up, as the reference
 * `loopback` plugin (CNI_IFNAME is ignored). In a chain it passes
 * `prevResult` through; alone it reports
 * `{interfaces: [{name: "lo", mac: "00:00:00:00:00:00", sandbox}], ips}`
 * with the first IPv4 and first IPv6 address of `lo`. DEL brings `lo` down
 * (nothing to do when the namespace is gone); CHECK wants it up.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Plugin } from "../cni/types.ts";
import type { CmdArgs, IpConfig, Result } from "../cni/types.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../cni/types.ts";
import { getLink, listAddrs, setLinkDown, setLinkUp } from "../netlink/mod.ts";
import { parseCidr } from "../ipaddr/ip.ts";
import { closeAll, openNetnsForDel, openNetnsHandle } from "./links.ts";
import { enforcePluginShape, prevResultOf, syncVerb } from "./netconf.ts";
import { LOOPBACK_SHAPE } from "./schemas.ts";

const LO = "lo";

function isLoopbackIp(cidr: string): boolean {
  const c = parseCidr(cidr);
  return c.family === 4 ? c.bytes[0] === 127 : c.ip === "::1";
}

function addSync(args: CmdArgs): Result {
  enforcePluginShape(args, LOOPBACK_SHAPE);
  // Parsed first, so a bad prevResult fails before anything changes.
  const prev = prevResultOf(args.config);
  const h = openNetnsHandle(args.netns);
  const ips: IpConfig[] = [];
  try {
    setLinkUp(h, LO);
    for (const family of [4, 6] as const) {
      const addrs = listAddrs(h, { link: LO, family });
      const odd = addrs.find((a) => !isLoopbackIp(a.cidr));
      if (odd) {
        throw new CniError(
          ErrorCode.Internal,
          `loopback interface found with non-loopback address "${odd.address}"`,
        );
      }
      if (addrs.length) ips.push({ interface: 0, address: addrs[0].cidr });
    }
  } finally {
    closeAll(h);
  }
  if (prev) return prev;
  const result: Result = {
    cniVersion: CURRENT_VERSION,
    interfaces: [{ name: LO, mac: "00:00:00:00:00:00", sandbox: args.netns }],
  };
  if (ips.length) result.ips = ips;
  return result;
}

function delSync(args: CmdArgs): void {
  const h = openNetnsForDel(args.netns);
  if (!h) return;
  try {
    setLinkDown(h, LO);
  } finally {
    closeAll(h);
  }
}

function checkSync(args: CmdArgs): void {
  const h = openNetnsHandle(args.netns);
  try {
    if (!getLink(h, LO).up) throw new CniError(ErrorCode.Internal, "loopback interface is down");
  } finally {
    closeAll(h);
  }
}

/** The hydra-loopback plugin. */
export const plugin: Plugin = {
  kind: "loopback",
  supportedVersions: SUPPORTED_VERSIONS,
  add: syncVerb(addSync),
  del: syncVerb(delSync),
  check: syncVerb(checkSync),
};
