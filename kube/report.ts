/**
 * Writing what was attached onto the pod: the network-status entries of
 * every attachment (merged with entries other writers made) and, for each
 * secondary network, hydra's annotation holding its CNI result. One
 * conditional write through pods/status, retried on conflict.
 *
 * @module
 */

import type { Result } from "../cni/types.ts";
import type { KubeClient } from "./client.ts";
import type { PodArgs } from "./delegate.ts";
import { isNotFound } from "./errors.ts";
import { canonicalIp } from "../ipaddr/ip.ts";
import { type EventInit, updatePodStatusAnnotations } from "./objects.ts";
import {
  type DeviceInfo,
  mergeNetworkStatus,
  NETWORK_STATUS_ANNOTATION,
  networkStatusEntries,
  resultAnnotationKey,
  resultAnnotationValue,
} from "./status.ts";

/** One attachment's outcome to report. */
export interface AttachmentReport {
  /** "namespace/name" of a NAD, else the conf's name. */
  name: string;
  isDefault: boolean;
  /** The result in hydra's 1.x form (for network-status). */
  result: Result;
  /** The result as the delegate returned it, for the result annotation; `result` when absent. */
  rawResult?: unknown;
  deviceInfo?: DeviceInfo;
}

/**
 * Records attachments on the pod. Returns "pod-gone" when the pod no longer
 * exists (nothing to record), "written" otherwise. Throws PodUidMismatchError
 * when the pod under that name is another one, and API errors as they come
 * (a failed write does not undo the networks; the caller logs and retries).
 *
 * @param remove networks to drop from the pod's records (e.g. detached ones)
 */
export async function reportAttachments(
  client: KubeClient,
  pod: PodArgs,
  reports: readonly AttachmentReport[],
  opts: { remove?: readonly string[]; timeoutMs?: number; attempts?: number } = {},
): Promise<"written" | "pod-gone"> {
  const entries = reports.flatMap((r) =>
    networkStatusEntries(r.result, r.name, r.isDefault, r.deviceInfo)
  );
  const replace = [...reports.map((r) => r.name), ...(opts.remove ?? [])];
  const annotations: Record<string, string | null> = {};
  for (const r of reports) {
    if (!r.isDefault) {
      annotations[resultAnnotationKey(r.name)] = resultAnnotationValue(r.rawResult ?? r.result);
    }
  }
  for (const name of opts.remove ?? []) annotations[resultAnnotationKey(name)] = null;
  try {
    await updatePodStatusAnnotations(client, pod.namespace, pod.name, (current) => ({
      ...annotations,
      [NETWORK_STATUS_ANNOTATION]: mergeNetworkStatus(
        current.metadata.annotations?.[NETWORK_STATUS_ANNOTATION],
        entries,
        replace,
      ),
    }), { uid: pod.uid || undefined, timeoutMs: opts.timeoutMs, attempts: opts.attempts });
  } catch (err) {
    if (isNotFound(err)) return "pod-gone";
    throw err;
  }
  return "written";
}

/**
 * The Normal "AddedInterface" Event Multus records for each attachment that
 * produced interfaces or addresses: `Add net1 [10.1.1.5/24] from ns/name`.
 * Undefined when the result has neither (nothing was added to tell about).
 */
export function addedInterfaceEvent(
  ifName: string,
  result: Result,
  networkName: string,
  host?: string,
): EventInit | undefined {
  if (result.interfaces === undefined && result.ips === undefined) return undefined;
  const ips = (result.ips ?? []).map((ip) => {
    const slash = ip.address.indexOf("/");
    return slash < 0
      ? canonicalIp(ip.address)
      : `${canonicalIp(ip.address)}${ip.address.slice(slash)}`;
  });
  const from = networkName ? ` from ${networkName}` : "";
  return {
    type: "Normal",
    reason: "AddedInterface",
    message: `Add ${ifName} [${ips.join(" ")}]${from}`,
    host,
  };
}
