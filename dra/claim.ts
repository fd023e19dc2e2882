/**
 * ResourceClaims (`resource.k8s.io/v1`) as the driver reads and writes
 * them: read the allocation and who the claim is reserved for; write each
 * device's status (conditions and KEP-4817 `networkData`) with server-side
 * apply, as the driver's own field manager, so other drivers' entries of a
 * claim stay untouched.
 *
 * @module
 */

import type { KubeClient, RequestOptions } from "../kube/client.ts";
import type { AllocationConfig } from "./config.ts";
import { DRIVER_NAME } from "./names.ts";
import type { PodRef } from "./state.ts";

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
  metadata: { name: string; namespace: string; uid: string; generation?: number };
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

/**
 * Applies this driver's device statuses of a claim (server-side apply of
 * `status.devices`, field manager = driver name, forced: the driver owns
 * its entries). `updates` replaces everything this driver wrote before.
 */
export function applyDeviceStatuses(
  client: KubeClient,
  claim: { namespace: string; name: string },
  updates: readonly DeviceStatusUpdate[],
  now = new Date(),
  opts: RequestOptions = {},
): Promise<ResourceClaim> {
  const time = now.toISOString().replace(/\.\d+Z$/, "Z");
  const devices = updates.map((u) => {
    const entry: Record<string, unknown> = {
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
      const nd: Record<string, unknown> = { interfaceName: u.networkData.interfaceName };
      if (u.networkData.ips.length) nd.ips = u.networkData.ips;
      if (u.networkData.hardwareAddress) nd.hardwareAddress = u.networkData.hardwareAddress;
      entry.networkData = nd;
    }
    return entry;
  });
  const body = {
    apiVersion: "resource.k8s.io/v1",
    kind: "ResourceClaim",
    metadata: { name: claim.name, namespace: claim.namespace },
    status: { devices },
  };
  return client.request<ResourceClaim>(
    "PATCH",
    `${claimPath(claim.namespace, claim.name)}/status`,
    body,
    {
      ...opts,
      contentType: "application/apply-patch+yaml",
      query: { ...(opts.query ?? {}), fieldManager: DRIVER_NAME, force: true },
    },
  );
}
