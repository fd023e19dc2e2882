/**
 * Allocations a node holds for itself, not for a pod: today the gateway
 * address of a pool-backed hybrid overlay subnet (see
 * hybridnet/gateway.ts). Such an allocation is recorded like a pod's, with
 * the sandbox id `hydra-hybrid-gateway-<node>`, the interface `gateway`,
 * the allocating node, and no pod at all.
 *
 * The reclaim controller frees it once that node no longer exists, so the
 * marker must be something no pod can claim: a pod's ADD always names its
 * pod (K8S_POD_NAME in CNI_ARGS, recorded as `pod`), the runtime, not the
 * pod, chooses the sandbox id, and hydra-pool refuses an invocation that
 * names a pod under a reserved sandbox id ({@link isReservedSandbox}).
 *
 * @module
 */

import type { Allocation } from "./objects.ts";

/** The sandbox id prefix of a node's gateway allocation. */
export const NODE_GATEWAY_SANDBOX_PREFIX = "hydra-hybrid-gateway-";
/** The interface name of a node's gateway allocation. */
export const NODE_GATEWAY_IFNAME = "gateway";

/** The sandbox id under which `node` holds its gateway address. */
export function nodeGatewaySandbox(node: string): string {
  return `${NODE_GATEWAY_SANDBOX_PREFIX}${node}`;
}

/** Whether a sandbox id is reserved for a node's own allocations (no pod may use it). */
export function isReservedSandbox(containerID: string): boolean {
  return containerID.startsWith(NODE_GATEWAY_SANDBOX_PREFIX);
}

/**
 * The node owning `a` when it is a node's gateway allocation: no pod, the
 * gateway interface, and the sandbox id of the very node that allocated it.
 * Undefined for anything else (a pod's address, a whereabouts hold, an
 * allocation for no pod that a runtime outside Kubernetes made).
 */
export function gatewayOwner(
  a: Pick<
    Allocation,
    "source" | "pod" | "podUID" | "statefulSet" | "containerID" | "interface" | "node"
  >,
): string | undefined {
  if ((a.source ?? "pod") !== "pod" || a.pod || a.podUID || a.statefulSet) return undefined;
  if (a.interface !== NODE_GATEWAY_IFNAME || !a.node) return undefined;
  return a.containerID === nodeGatewaySandbox(a.node) ? a.node : undefined;
}
