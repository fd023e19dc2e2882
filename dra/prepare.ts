/**
 * NodePrepareResources and NodeUnprepareResources for one claim.
 *
 * Prepare does everything that may be slow or needs the API server, so the
 * sandbox hook has only local work left: read the claim (allocation,
 * config, the pods it is reserved for); for each of hydra's devices check
 * and resolve its config — a NIC must be on this node, its interface name
 * valid and unique among the pod's claims, IPAM reserves its addresses; a
 * network is resolved (NetworkAttachmentDefinition or conf file) into the
 * conf the meta-CNI will run — and write the result durably. The kubelet
 * is answered only after that write, so a crash at any point leaves either
 * nothing (it asks again) or a complete record. A failure undoes what this
 * call reserved and is answered per claim with a message naming the
 * claim, the request and the fault; the kubelet shows it as a
 * FailedPrepareDynamicResources Event on the pod and tries again.
 *
 * Preparing a claim again (the kubelet restarted, or asks twice) returns
 * the recorded devices and keeps the recorded addresses; only the list of
 * pods is refreshed.
 *
 * Unprepare releases the addresses and removes the record; a claim never
 * prepared here is done already.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import type { KubeClient } from "../kube/client.ts";
import { isNotFound } from "../kube/errors.ts";
import { type Attachment, type KubeModeConfig, resolveAttachments } from "../kube/networks.ts";
import type { Pod } from "../kube/objects.ts";
import { NETWORKS_ANNOTATION } from "../kube/selection.ts";
import type { ClaimRef, PreparedDevice as WireDevice, PrepareResult } from "../kubelet/dra_api.ts";
import {
  type AllocationResult,
  getClaim,
  ownResults,
  reservedPods,
  type ResourceClaim,
} from "./claim.ts";
import {
  DeviceConfigError,
  mergedParameters,
  parseNetworkConfig,
  parseNicConfig,
} from "./config.ts";
import type { NicInfo } from "./inventory.ts";
import { releaseAddresses, reserveAddresses } from "./ipam.ts";
import {
  CLAIM_KIND,
  claimsOfPod,
  loadClaim,
  type NetworkPlan,
  type NicPlan,
  type PodRef,
  type PreparedClaim,
  type PreparedDevice,
  removeClaim,
  saveClaim,
  type StateDirs,
} from "../drasandbox/state.ts";
import { kindOfDevice } from "../drasandbox/names.ts";

/** The interface the runtime's own CNI gives every pod. */
const POD_DEFAULT_IFNAME = "eth0";

/** What preparing needs. */
export interface PrepareDeps {
  client: KubeClient;
  dirs: StateDirs;
  /** The host NICs of the pool now, by device name. */
  nics(): Map<string, NicInfo>;
  /** Kubernetes-mode settings for resolving networks (confDir, …). */
  kube: KubeModeConfig;
  /** Where IPAM plugins that are not built in are found. */
  cniPath: readonly string[];
  /** Deadline of each API call, ms. */
  apiTimeoutMs: number;
  log: Logger;
}

/** Fault of one claim, answered to the kubelet in its result. */
class ClaimError extends Error {}

type Json = Record<string, unknown>;

/** Everything undone when a prepare fails half-way. */
type Undo = (() => Promise<void>)[];

async function planNetwork(
  d: PrepareDeps,
  claim: ResourceClaim,
  pods: PodRef[],
  result: AllocationResult,
  params: Json,
  where: string,
): Promise<NetworkPlan> {
  const ns = claim.metadata.namespace;
  const { element } = parseNetworkConfig(params, ns, result.request, where);
  const pod = pods[0];
  // The network resolves exactly as the same element of the pod's annotation would.
  const standIn: Pod = {
    metadata: {
      name: pod.name,
      namespace: ns,
      uid: pod.uid,
      annotations: { [NETWORKS_ANNOTATION]: JSON.stringify([element]) },
    },
  };
  let atts: Attachment[];
  try {
    atts = await resolveAttachments(
      standIn,
      { ...d.kube, clusterNetwork: "", skipDefaultNetwork: true, defaultNetworks: [] },
      d.client,
      {
        command: "ADD",
        ifName: String(element.interface),
        containerId: "",
        cniArgs: "",
        pod: { namespace: ns, name: pod.name, uid: pod.uid, infraContainerId: "" },
        timeoutMs: d.apiTimeoutMs,
        host: Deno.hostname(),
      },
    );
  } catch (err) {
    throw new ClaimError(`${where}: ${(err as Error).message}`);
  }
  const a = atts[0];
  const plan: NetworkPlan = {
    name: a.name,
    ifName: a.ifName,
    conf: JSON.parse(new TextDecoder().decode(a.list.bytes)),
  };
  if (Object.keys(a.runtimeConfig).length) plan.capabilityArgs = a.runtimeConfig;
  return plan;
}

async function planNic(
  d: PrepareDeps,
  claim: ResourceClaim,
  result: AllocationResult,
  params: Json,
  where: string,
  undo: Undo,
): Promise<NicPlan> {
  const cfg = parseNicConfig(params, where);
  const nic = d.nics().get(result.device);
  if (!nic) {
    throw new ClaimError(`${where}: NIC ${result.device} is not on this node (any more)`);
  }
  const plan: NicPlan = {
    hostName: nic.name,
    mac: nic.mac,
    ifName: cfg.interface ?? nic.name,
    addresses: cfg.addresses ?? [],
    routes: cfg.routes,
  };
  if (cfg.mtu) plan.mtu = cfg.mtu;
  if (!cfg.addresses && !cfg.ipam) plan.keepHostAddresses = true;
  if (cfg.ipam) {
    try {
      const r = await reserveAddresses(
        cfg.ipam,
        cfg.ipamName ?? "hydra-dra",
        claim.metadata.uid,
        plan.ifName,
        d.cniPath,
      );
      undo.push(() => releaseAddresses(r.lease, d.cniPath));
      plan.ipam = r.lease;
      plan.addresses = r.addresses;
      plan.routes = [...r.routes, ...plan.routes];
    } catch (err) {
      throw new ClaimError(`${where}: IPAM: ${(err as Error).message}`);
    }
  }
  return plan;
}

/** Interface names in the pod must be unique across its claims and leave eth0 alone. */
function checkInterfaces(d: PrepareDeps, prepared: PreparedClaim): void {
  for (const pod of prepared.pods) {
    const seen = new Map<string, string>();
    const others = claimsOfPod(d.dirs, pod.uid).filter((c) => c.claim.uid !== prepared.claim.uid);
    for (const c of [...others, prepared]) {
      for (const dev of c.devices) {
        const ifName = dev.nic?.ifName ?? dev.network?.ifName;
        if (!ifName) continue;
        const owner = `claim ${c.claim.namespace}/${c.claim.name} request "${dev.request}"`;
        if (ifName === POD_DEFAULT_IFNAME) {
          throw new ClaimError(`${owner}: interface "${ifName}" is the pod's default network`);
        }
        const clash = seen.get(ifName);
        if (clash) {
          throw new ClaimError(
            `${clash} and ${owner} both ask for interface "${ifName}" in pod ${pod.namespace}/${pod.name}`,
          );
        }
        seen.set(ifName, owner);
      }
    }
  }
}

async function planDevices(
  d: PrepareDeps,
  claim: ResourceClaim,
  pods: PodRef[],
  undo: Undo,
): Promise<PreparedDevice[]> {
  const configs = claim.status?.allocation?.devices?.config ?? [];
  const out: PreparedDevice[] = [];
  for (const r of ownResults(claim)) {
    const where = `claim ${claim.metadata.namespace}/${claim.metadata.name} request "${r.request}"`;
    const kind = kindOfDevice(r.device);
    if (!kind) throw new ClaimError(`${where}: device ${r.device} is not one hydra publishes`);
    let params: Json;
    try {
      params = mergedParameters(configs, r.request);
    } catch (err) {
      throw new ClaimError((err as Error).message);
    }
    const dev: PreparedDevice = { request: r.request, pool: r.pool, device: r.device, kind };
    try {
      if (kind === "nic") dev.nic = await planNic(d, claim, r, params, where, undo);
      else dev.network = await planNetwork(d, claim, pods, r, params, where);
    } catch (err) {
      if (err instanceof DeviceConfigError) throw new ClaimError(err.message);
      throw err;
    }
    out.push(dev);
  }
  return out;
}

function wireDevices(p: PreparedClaim): WireDevice[] {
  return p.devices.map((dev) => ({
    requestNames: [dev.request],
    poolName: dev.pool,
    deviceName: dev.device,
    cdiDeviceIds: [],
  }));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Prepares one claim; never throws (a failure is the result's `error`). */
export async function prepareClaim(d: PrepareDeps, ref: ClaimRef): Promise<PrepareResult> {
  const label = `${ref.namespace}/${ref.name}`;
  let claim: ResourceClaim;
  try {
    claim = await getClaim(d.client, ref.namespace, ref.name, { timeoutMs: d.apiTimeoutMs });
  } catch (err) {
    const why = isNotFound(err) ? "it does not exist" : message(err);
    return { devices: [], error: `claim ${label}: cannot read it: ${why}` };
  }
  if (claim.metadata.uid !== ref.uid) {
    return {
      devices: [],
      error: `claim ${label} was replaced (UID ${claim.metadata.uid}, kubelet asks for ${ref.uid})`,
    };
  }
  const pods = reservedPods(claim);
  const existing = loadClaim(d.dirs, ref.uid);
  if (existing) {
    // Asked again: same devices, same addresses; who uses it may have changed.
    if (JSON.stringify(existing.pods) !== JSON.stringify(pods) && pods.length) {
      saveClaim(d.dirs, { ...existing, pods });
    }
    return { devices: wireDevices(existing), error: "" };
  }
  if (!ownResults(claim).length) return { devices: [], error: "" };
  if (!pods.length) return { devices: [], error: `claim ${label} is reserved for no pod` };
  const undo: Undo = [];
  try {
    const prepared: PreparedClaim = {
      kind: CLAIM_KIND,
      claim: { namespace: ref.namespace, name: ref.name, uid: ref.uid },
      pods,
      devices: await planDevices(d, claim, pods, undo),
      preparedAt: new Date().toISOString(),
    };
    checkInterfaces(d, prepared);
    saveClaim(d.dirs, prepared);
    d.log.info("claim prepared", {
      claim: label,
      pods: pods.map((p) => p.name),
      devices: prepared.devices.map((x) => `${x.device}@${x.nic?.ifName ?? x.network?.ifName}`),
    });
    return { devices: wireDevices(prepared), error: "" };
  } catch (err) {
    for (const u of undo.reverse()) {
      await u().catch((e) =>
        d.log.warn("undo after a failed prepare failed", { claim: label, error: message(e) })
      );
    }
    d.log.warn("claim not prepared", { claim: label, error: message(err) });
    return { devices: [], error: message(err) };
  }
}

/** Unprepares one claim; returns "" or the error. */
export async function unprepareClaim(d: PrepareDeps, ref: ClaimRef): Promise<string> {
  const prepared = loadClaim(d.dirs, ref.uid);
  if (!prepared) return "";
  const errors: string[] = [];
  for (const dev of prepared.devices) {
    if (!dev.nic?.ipam) continue;
    try {
      await releaseAddresses(dev.nic.ipam, d.cniPath);
    } catch (err) {
      errors.push(`releasing the addresses of ${dev.device}: ${message(err)}`);
    }
  }
  if (errors.length) return `claim ${ref.namespace}/${ref.name}: ${errors.join("; ")}`;
  removeClaim(d.dirs, ref.uid);
  d.log.info("claim unprepared", { claim: `${ref.namespace}/${ref.name}` });
  return "";
}
