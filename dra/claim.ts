/**
 * ResourceClaims (`resource.k8s.io/v1`) as the driver reads and writes
 * them: read the allocation and who the claim is reserved for; write each
 * device's status (conditions and KEP-4817 `networkData`), leaving other
 * drivers' entries of the claim untouched.
 *
 * @module
 */

import type { KubeClient, RequestOptions } from "../kube/client.ts";
import { isConflict, KubeApiError } from "../kube/errors.ts";
import type { AllocationConfig } from "./config.ts";
import { DRIVER_NAME } from "../drasandbox/names.ts";
import type { PodRef } from "../drasandbox/state.ts";

/** One allocated device. */
export interface AllocationResult {
  request: string;
  driver: string;
  pool: string;
  device: string;
}

/** A consumer of a claim. */
export interface ConsumerRef {
  apiGroup?: string;
  resource: string;
  name: string;
  uid: string;
}

/** A device's status in a claim. */
export interface AllocatedDeviceStatus {
  driver: string;
  pool: string;
  device: string;
  conditions?: Record<string, unknown>[];
  networkData?: { interfaceName?: string; ips?: string[]; hardwareAddress?: string };
}

/** A ResourceClaim as far as hydra reads it. */
export interface ResourceClaim {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation?: number;
    resourceVersion?: string;
  };
  spec?: unknown;
  status?: {
    allocation?: { devices?: { results?: AllocationResult[]; config?: AllocationConfig[] } };
    reservedFor?: ConsumerRef[];
    devices?: AllocatedDeviceStatus[];
  };
}

/** The API path of a claim (or of the claims of a namespace). */
export function claimPath(namespace: string, name?: string): string {
  const base = `/apis/resource.k8s.io/v1/namespaces/${namespace}/resourceclaims`;
  return name === undefined ? base : `${base}/${name}`;
}

/** Reads a claim. */
export function getClaim(
  client: KubeClient,
  namespace: string,
  name: string,
  opts?: RequestOptions,
): Promise<ResourceClaim> {
  return client.get<ResourceClaim>(claimPath(namespace, name), opts);
}

/** This driver's allocated devices of a claim. */
export function ownResults(claim: ResourceClaim): AllocationResult[] {
  return (claim.status?.allocation?.devices?.results ?? []).filter((r) => r.driver === DRIVER_NAME);
}

/** The pods a claim is reserved for. */
export function reservedPods(claim: ResourceClaim): PodRef[] {
  return (claim.status?.reservedFor ?? [])
    .filter((r) => r.resource === "pods" && (r.apiGroup ?? "") === "")
    .map((r) => ({ namespace: claim.metadata.namespace, name: r.name, uid: r.uid }));
}

/** A device status hydra writes. */
export interface DeviceStatusUpdate {
  pool: string;
  device: string;
  ready: boolean;
  reason: string;
  message: string;
  networkData?: { interfaceName: string; ips: string[]; hardwareAddress?: string };
}

/** The status entry of one update. */
function statusEntry(u: DeviceStatusUpdate, time: string): AllocatedDeviceStatus {
  const entry: AllocatedDeviceStatus = {
    driver: DRIVER_NAME,
    pool: u.pool,
    device: u.device,
    conditions: [{
      type: "Ready",
      status: u.ready ? "True" : "False",
      reason: u.reason,
      message: u.message,
      lastTransitionTime: time,
    }],
  };
  if (u.networkData) {
    const nd: NonNullable<AllocatedDeviceStatus["networkData"]> = {
      interfaceName: u.networkData.interfaceName,
    };
    if (u.networkData.ips.length) nd.ips = u.networkData.ips;
    if (u.networkData.hardwareAddress) nd.hardwareAddress = u.networkData.hardwareAddress;
    entry.networkData = nd;
  }
  return entry;
}

/**
 * Writes this driver's device statuses of a claim: `updates` replace the
 * entries of the same devices; other drivers' entries and this driver's
 * other devices stay. A JSON patch of `status.devices` alone, conditional
 * on the version read (retried on conflict): the allocation is never sent
 * back, so its opaque parameters keep their exact bytes (server-side apply
 * re-serializes them, which the API server then refuses as a change of an
 * immutable field when their keys were not in sorted order).
 */
export async function applyDeviceStatuses(
  client: KubeClient,
  claim: { namespace: string; name: string },
  updates: readonly DeviceStatusUpdate[],
  now = new Date(),
  opts: RequestOptions = {},
): Promise<ResourceClaim> {
  const time = now.toISOString().replace(/\.\d+Z$/, "Z");
  const path = claimPath(claim.namespace, claim.name);
  const ours = new Set(updates.map((u) => `${u.pool}/${u.device}`));
  for (let attempt = 1;; attempt++) {
    const current = await client.get<ResourceClaim>(path, opts);
    const kept = (current.status?.devices ?? []).filter((d) =>
      d.driver !== DRIVER_NAME || !ours.has(`${d.pool}/${d.device}`)
    );
    const devices = [...kept, ...updates.map((u) => statusEntry(u, time))];
    const patch = [
      { op: "test", path: "/metadata/resourceVersion", value: current.metadata.resourceVersion },
      { op: current.status?.devices ? "replace" : "add", path: "/status/devices", value: devices },
    ];
    try {
      return await client.patch<ResourceClaim>(`${path}/status`, patch, "json", opts);
    } catch (err) {
      const stale = isConflict(err) ||
        (err instanceof KubeApiError && err.status === 422 && /test operation/i.test(err.message));
      if (!stale || attempt >= 5) throw err;
    }
  }
}
