/**
 * What the DRA driver and the NRI hook share on disk, under one state
 * folder (default /var/lib/hydra/dra, mode 0700, root only):
 *
 * - `claims/<claim UID>.json` — a prepared claim: its pods, and for each of
 *   our devices what the sandbox needs (the NIC and how to set it up, or
 *   the network's resolved conf). Written by NodePrepareResources before it
 *   answers, removed by NodeUnprepareResources. Written durably (fsync of
 *   the file and the folder): the kubelet does not prepare a claim again
 *   after it was told it is prepared, even across reboots of the node.
 * - `sandboxes/<sandbox id>.json` — what the NRI hook did in one sandbox:
 *   each NIC with what it was on the host (name, MTU, addresses), written
 *   before the NIC moves, so any later run can put it back; and what each
 *   device looks like in the pod, for the claim status. Removed once every
 *   NIC is back. Atomic (temp file, rename), not fsynced: after a power
 *   loss no sandbox survives either.
 * - `cni/` — records and result caches of the network attachments (the
 *   engine's, see engine/record.ts).
 *
 * A file that cannot be parsed is treated as absent and logged by callers;
 * every writer writes whole files, so that only happens to a damaged disk.
 *
 * @module
 */

import { writeFileAtomicSync } from "../pkg/fsutil.ts";
import type { Result } from "../cni/types.ts";
import type { DeviceKind } from "./names.ts";

/** `kind` of a prepared-claim file. */
export const CLAIM_KIND = "hydraDraClaimV1";
/** `kind` of a sandbox file. */
export const SANDBOX_KIND = "hydraDraSandboxV1";

/** A pod a claim is reserved for. */
export interface PodRef {
  namespace: string;
  name: string;
  uid: string;
}

/** A route to add in the pod (`gw` omitted: a device route). */
export interface RouteConf {
  dst: string;
  gw?: string;
}

/** An address reservation made at prepare time, released at unprepare. */
export interface IpamLease {
  /** The IPAM plugin type. */
  type: string;
  /** The stdin the plugin got (`{cniVersion, name, ipam}`). */
  conf: Record<string, unknown>;
  /** CNI_CONTAINERID and CNI_IFNAME of the reservation. */
  containerId: string;
  ifName: string;
}

/** How a host NIC is set up in the pod. */
export interface NicPlan {
  /** The link's name on the host when the claim was prepared. */
  hostName: string;
  /** Its hardware address (finds it again under another name). */
  mac: string;
  /** Its name in the pod. */
  ifName: string;
  /** MTU to set in the pod; the NIC's own when absent. */
  mtu?: number;
  /** Addresses (CIDR) to put on it in the pod. */
  addresses: string[];
  /** Neither addresses nor IPAM were asked for: it keeps the addresses it has on the host. */
  keepHostAddresses?: boolean;
  routes: RouteConf[];
  /** Where `addresses` came from when IPAM assigned them. */
  ipam?: IpamLease;
}

/** How a hydra network is attached in the pod. */
export interface NetworkPlan {
  /** "namespace/name" of the NetworkAttachmentDefinition, or the conf's name. */
  name: string;
  /** Its interface in the pod. */
  ifName: string;
  /** The network's conf list, as resolved (`cni-args` merged in). */
  conf: Record<string, unknown>;
  /** Capability arguments (runtimeConfig) for the plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

/** One of our devices in a prepared claim. */
export interface PreparedDevice {
  request: string;
  pool: string;
  device: string;
  kind: DeviceKind;
  nic?: NicPlan;
  network?: NetworkPlan;
}

/** A prepared claim. */
export interface PreparedClaim {
  kind: typeof CLAIM_KIND;
  claim: { namespace: string; name: string; uid: string };
  pods: PodRef[];
  devices: PreparedDevice[];
  preparedAt: string;
}

/** A NIC as the NRI hook moved it into a sandbox. */
export interface MovedNic {
  claimUid: string;
  device: string;
  /** What it was on the host, to put back. */
  hostName: string;
  mac: string;
  hostMtu: number;
  /** Addresses (CIDR) it had on the host. */
  hostAddresses: string[];
  hostUp: boolean;
  /** Its name in the pod. */
  ifName: string;
  /** "moving" until the move and setup are done. */
  phase: "moving" | "attached";
}

/** What one device looks like in the pod (for the claim status and network-status). */
export interface DeviceReport {
  claim: { namespace: string; name: string; uid: string };
  request: string;
  pool: string;
  device: string;
  kind: DeviceKind;
  /** Network-status name: the NAD ("ns/name") for networks, "ns/claim" for NICs. */
  networkName: string;
  ifName: string;
  /** Addresses in CIDR form. */
  ips: string[];
  mac?: string;
  mtu?: number;
  /** A network's CNI result (for network-status, as the annotation path writes it). */
  result?: Result;
}

/** A claim whose devices a running pod lacks. */
export interface FailedClaim {
  namespace: string;
  name: string;
  uid: string;
  devices: { pool: string; device: string }[];
}

/** What the NRI hook did in one sandbox. */
export interface SandboxRecord {
  kind: typeof SANDBOX_KIND;
  sandboxId: string;
  pod: PodRef;
  netns: string;
  nics: MovedNic[];
  /** Filled once everything is attached. */
  reports: DeviceReport[];
  /**
   * "attaching" until every device is in place; "failed" when a pod that
   * started without its devices could not get them (retried).
   */
  phase: "attaching" | "attached" | "failed";
  /** Why, when "failed". */
  error?: string;
  /** The claims concerned, when "failed". */
  failedClaims?: FailedClaim[];
  updatedAt: string;
}

/** Paths of a state folder. */
export interface StateDirs {
  root: string;
  claims: string;
  sandboxes: string;
  cni: string;
}

/** The folders under `root`, created (0700) when missing. */
export function stateDirs(root: string): StateDirs {
  const base = root.replace(/\/+$/, "") || "/";
  const dirs = {
    root: base,
    claims: `${base}/claims`,
    sandboxes: `${base}/sandboxes`,
    cni: `${base}/cni`,
  };
  for (const d of [dirs.root, dirs.claims, dirs.sandboxes, dirs.cni]) {
    Deno.mkdirSync(d, { recursive: true, mode: 0o700 });
  }
  return dirs;
}

/** Ids become file names: only what a UID or sandbox id may hold. */
function fileName(id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id) || id.includes("..")) {
    throw new Error(`refusing to use ${JSON.stringify(id)} as a state file name`);
  }
  return `${id}.json`;
}

function fsyncPath(path: string): void {
  const f = Deno.openSync(path, { read: true });
  try {
    f.syncSync();
  } finally {
    f.close();
  }
}

/** Writes `value` to `dir/name` atomically; `durable` also syncs the file and the folder. */
function writeJson(dir: string, name: string, value: unknown, durable: boolean): void {
  const path = `${dir}/${name}`;
  writeFileAtomicSync(path, JSON.stringify(value), 0o600);
  if (durable) {
    fsyncPath(path);
    fsyncPath(dir);
  }
}

function readJson<T>(dir: string, name: string, kind: string): T | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${dir}/${name}`);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    const v = JSON.parse(text) as { kind?: unknown };
    return v?.kind === kind ? v as T : undefined;
  } catch {
    return undefined;
  }
}

function remove(dir: string, name: string): boolean {
  try {
    Deno.removeSync(`${dir}/${name}`);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function ids(dir: string): string[] {
  const out: string[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && !e.name.startsWith(".") && e.name.endsWith(".json")) {
        out.push(e.name.slice(0, -".json".length));
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** Saves a prepared claim durably. */
export function saveClaim(d: StateDirs, claim: PreparedClaim): void {
  writeJson(d.claims, fileName(claim.claim.uid), claim, true);
}

/** A prepared claim, or undefined. */
export function loadClaim(d: StateDirs, uid: string): PreparedClaim | undefined {
  return readJson<PreparedClaim>(d.claims, fileName(uid), CLAIM_KIND);
}

/** Removes a prepared claim; true if there was one. */
export function removeClaim(d: StateDirs, uid: string): boolean {
  const gone = remove(d.claims, fileName(uid));
  if (gone) fsyncPath(d.claims);
  return gone;
}

/** Every prepared claim. */
export function listClaims(d: StateDirs): PreparedClaim[] {
  return ids(d.claims).map((id) => loadClaim(d, id)).filter((c): c is PreparedClaim => !!c);
}

/** The prepared claims reserved for the pod with `podUid`. */
export function claimsOfPod(d: StateDirs, podUid: string): PreparedClaim[] {
  return listClaims(d).filter((c) => c.pods.some((p) => p.uid === podUid));
}

/** Saves a sandbox record (atomic, not durable). */
export function saveSandbox(d: StateDirs, rec: SandboxRecord): void {
  writeJson(
    d.sandboxes,
    fileName(rec.sandboxId),
    { ...rec, updatedAt: new Date().toISOString() },
    false,
  );
}

/** A sandbox record, or undefined. */
export function loadSandbox(d: StateDirs, sandboxId: string): SandboxRecord | undefined {
  return readJson<SandboxRecord>(d.sandboxes, fileName(sandboxId), SANDBOX_KIND);
}

/** Removes a sandbox record; true if there was one. */
export function removeSandbox(d: StateDirs, sandboxId: string): boolean {
  return remove(d.sandboxes, fileName(sandboxId));
}

/** Every sandbox record. */
export function listSandboxes(d: StateDirs): SandboxRecord[] {
  return ids(d.sandboxes).map((id) => loadSandbox(d, id)).filter((r): r is SandboxRecord => !!r);
}
