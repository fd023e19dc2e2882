/**
 * Addresses of a host NIC from any IPAM plugin (hydra-ipam, host-local,
 * the Kubernetes node range, …), reserved when the claim is prepared and
 * released when it is unprepared: the reservation belongs to the claim
 * (CNI_CONTAINERID = claim UID, CNI_IFNAME = the NIC's name in the pod), so
 * a pod restarted with the same claim keeps its address, and no IPAM work
 * sits inside the runtime's sandbox budget.
 *
 * IPAM plugins never touch the namespace, but CNI asks for one: the
 * driver's own is passed with CNI_NETNS_OVERRIDE.
 *
 * @module
 */

import { toInternal } from "../cni/convert.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { invokePlugin } from "../cni/invoke.ts";
import { BUILTINS } from "../engine/builtins.ts";
import type { IpamLease, RouteConf } from "../drasandbox/state.ts";

/** What a reservation gave. */
export interface Reservation {
  lease: IpamLease;
  /** CIDR addresses. */
  addresses: string[];
  routes: RouteConf[];
}

const SELF_NETNS = "/proc/self/ns/net";

function env(): Record<string, string> {
  return { ...Deno.env.toObject(), CNI_NETNS_OVERRIDE: "1" };
}

/** Reserves addresses with `ipam` (an IPAM config with a `type`). */
export async function reserveAddresses(
  ipam: Record<string, unknown>,
  name: string,
  claimUid: string,
  ifName: string,
  cniPath: readonly string[],
): Promise<Reservation> {
  const type = String(ipam.type);
  const lease: IpamLease = {
    type,
    conf: { cniVersion: "1.1.0", name, ipam },
    containerId: claimUid,
    ifName,
  };
  const raw = await invokePlugin({
    command: "ADD",
    type,
    config: lease.conf,
    containerId: claimUid,
    ifName,
    netns: SELF_NETNS,
    path: cniPath,
    baseEnv: env(),
    builtins: BUILTINS,
  });
  const result = raw ? toInternal(raw) : undefined;
  const addresses = (result?.ips ?? []).map((ip) => ip.address);
  if (!addresses.length) {
    await releaseAddresses(lease, cniPath).catch(() => {});
    throw new CniError(ErrorCode.Internal, `IPAM plugin "${type}" gave no address`);
  }
  const routes = (result?.routes ?? []).map((r) =>
    r.gw ? { dst: r.dst, gw: r.gw } : { dst: r.dst }
  );
  return { lease, addresses, routes };
}

/** Releases a reservation; throws the plugin's error. */
export async function releaseAddresses(
  lease: IpamLease,
  cniPath: readonly string[],
): Promise<void> {
  await invokePlugin({
    command: "DEL",
    type: lease.type,
    config: lease.conf,
    containerId: lease.containerId,
    ifName: lease.ifName,
    netns: SELF_NETNS,
    path: cniPath,
    baseEnv: env(),
    builtins: BUILTINS,
  });
}
