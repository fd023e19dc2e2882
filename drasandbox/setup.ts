/**
 * The steps of setting a sandbox's claimed devices up and taking them
 * down, each writing the sandbox record as it goes (state.ts), so that a
 * crash at any point leaves a record the next run can undo from:
 *
 * - host NICs: each one's host state (name, MTU, addresses, up) is
 *   recorded before it moves, then it moves and is set up (nic.ts);
 *   taking down puts them back in reverse and shrinks the record;
 * - hydra networks: attached through the engine (networks.ts), which keeps
 *   its own records; what each got becomes the device's report.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Result } from "../cni/types.ts";
import type { Logger } from "../pkg/log.ts";
import type { Handle } from "../netlink/socket.ts";
import { findNic, globalAddresses, moveNicBack, moveNicIntoPod } from "./nic.ts";
import { attachClaimNetworks, type EngineSettings, type SandboxRef } from "./networks.ts";
import {
  type DeviceReport,
  type MovedNic,
  type NetworkPlan,
  type NicPlan,
  type PreparedClaim,
  type PreparedDevice,
  type SandboxRecord,
  saveSandbox,
  type StateDirs,
} from "./state.ts";

/** What the steps share. */
export interface SetupContext {
  dirs: StateDirs;
  /** A netlink handle in the node's namespace, where NICs live. */
  host: Handle;
  engine: EngineSettings;
  log: Logger;
}

interface Claimed<T> {
  claim: PreparedClaim;
  dev: PreparedDevice;
  plan: T;
}

/** The NIC devices of the pod's claims, in a stable order. */
export function claimedNics(claims: readonly PreparedClaim[]): Claimed<NicPlan>[] {
  return claims.flatMap((claim) =>
    claim.devices.filter((d) => d.nic).map((dev) => ({ claim, dev, plan: dev.nic! }))
  );
}

/** The network devices of the pod's claims, in a stable order. */
export function claimedNetworks(claims: readonly PreparedClaim[]): Claimed<NetworkPlan>[] {
  return claims.flatMap((claim) =>
    claim.devices.filter((d) => d.network).map((dev) => ({ claim, dev, plan: dev.network! }))
  );
}

function report(c: Claimed<unknown>, kind: DeviceReport["kind"], networkName: string) {
  return {
    claim: c.claim.claim,
    request: c.dev.request,
    pool: c.dev.pool,
    device: c.dev.device,
    kind,
    networkName,
  };
}

/** Moves one claimed NIC into the sandbox, recording it first. */
function moveOne(ctx: SetupContext, rec: SandboxRecord, c: Claimed<NicPlan>): DeviceReport {
  const { claim, dev, plan } = c;
  const link = findNic(ctx.host, plan.hostName, plan.mac);
  if (!link) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `claim ${claim.claim.namespace}/${claim.claim.name}: NIC ${dev.device} (${plan.hostName}, ${plan.mac}) is no longer on the host`,
    );
  }
  const hostAddresses = globalAddresses(ctx.host, link.index);
  const moved: MovedNic = {
    claimUid: claim.claim.uid,
    device: dev.device,
    hostName: link.name,
    mac: plan.mac,
    hostMtu: link.mtu,
    hostAddresses,
    hostUp: link.up,
    ifName: plan.ifName,
    phase: "moving",
  };
  rec.nics.push(moved);
  saveSandbox(ctx.dirs, rec);
  const inPod = moveNicIntoPod(ctx.host, link.index, rec.netns, plan, hostAddresses);
  moved.phase = "attached";
  saveSandbox(ctx.dirs, rec);
  return {
    ...report(c, "nic", `${claim.claim.namespace}/${claim.claim.name}`),
    ifName: inPod.ifName,
    ips: inPod.addresses,
    mac: inPod.mac,
    mtu: inPod.mtu,
  };
}

/** Moves every claimed NIC into the sandbox; the record lists each before it moves. */
export function moveClaimedNics(
  ctx: SetupContext,
  rec: SandboxRecord,
  claims: readonly PreparedClaim[],
): DeviceReport[] {
  return claimedNics(claims).map((c) => moveOne(ctx, rec, c));
}

/** The pod-side interface of a network's CNI result: MAC, MTU and addresses. */
function resultIface(result: Result | undefined, ifName: string) {
  const ifaces = result?.interfaces ?? [];
  const idx = ifaces.findIndex((i) => i.name === ifName && i.sandbox);
  const ips = (result?.ips ?? [])
    .filter((ip) => ip.interface === undefined || ip.interface === idx)
    .map((ip) => ip.address);
  return { mac: ifaces[idx]?.mac, mtu: ifaces[idx]?.mtu, ips };
}

/** Attaches every claimed network in the sandbox; their reports. */
export async function attachClaimedNetworks(
  ctx: SetupContext,
  sandbox: SandboxRef,
  netns: string,
  claims: readonly PreparedClaim[],
): Promise<DeviceReport[]> {
  const nets = claimedNetworks(claims);
  if (!nets.length) return [];
  const got = await attachClaimNetworks(ctx.engine, sandbox, netns, nets.map((n) => n.plan));
  return nets.map((c) => {
    const result = got.find((g) => g.ifName === c.plan.ifName)?.result;
    const r = resultIface(result, c.plan.ifName);
    const out: DeviceReport = {
      ...report(c, "network", c.plan.name),
      ifName: c.plan.ifName,
      ips: r.ips,
    };
    if (r.mac) out.mac = r.mac;
    if (r.mtu) out.mtu = r.mtu;
    if (result) out.result = result;
    return out;
  });
}

/** Puts back every NIC the record holds, last first; the record shrinks as each is back. */
export function restoreNics(ctx: SetupContext, rec: SandboxRecord, netns?: string): void {
  while (rec.nics.length) {
    const nic = rec.nics[rec.nics.length - 1];
    const fields = { sandbox: rec.sandboxId, nic: nic.hostName, mac: nic.mac };
    if (moveNicBack(ctx.host, netns ?? rec.netns, nic) === "gone") {
      ctx.log.warn(
        "NIC not found to put back (a virtual link dies with the pod's namespace)",
        fields,
      );
    } else {
      ctx.log.info("NIC back on the host", fields);
    }
    rec.nics.pop();
    if (rec.nics.length) saveSandbox(ctx.dirs, rec);
  }
}
