/**
 * The hydra networks a pod claimed, attached in its sandbox through the
 * attachment engine (engine/attach.ts) with the networks as the driver
 * resolved them at prepare time: the same delegates, records (under the
 * state folder's `cni/`), rollback and result caches as the meta-CNI, so
 * a network by claim is attached exactly as by annotation. Detaching
 * follows the engine's records, so it works after any restart.
 *
 * @module
 */

import { parseConfList } from "../cni/conf.ts";
import { convertResult } from "../cni/convert.ts";
import { asCniError, CniError } from "../cni/errors.ts";
import type { AnyResult, NetConf, Result } from "../cni/types.ts";
import {
  attach,
  type AttachRequest,
  detach,
  type NetworkPlan as EnginePlan,
  recordedInterfaces,
} from "../engine/attach.ts";

export { recordedContainers as sandboxesWithNetworks } from "../engine/attach.ts";
import { BUILTINS } from "../engine/builtins.ts";
import type { LogLevel } from "../pkg/log.ts";
import type { NetworkPlan } from "./state.ts";

/** A sandbox as the hook knows it. */
export interface SandboxRef {
  /** The runtime's sandbox id. */
  id: string;
  namespace: string;
  name: string;
  uid: string;
  /** Its network namespace; absent for a host-network pod. */
  netns?: string;
}

/** The engine settings every request carries. */
export interface EngineSettings {
  /** Records and result caches. */
  cacheDir: string;
  /** Where delegate plugins that are not built in are found. */
  cniPath: readonly string[];
  logLevel?: LogLevel;
  logFile?: string;
}

/** One attached network: its interface's result. */
export interface AttachedClaimNetwork {
  ifName: string;
  result?: Result;
}

const encoder = new TextEncoder();

/** K8S_* CNI_ARGS of a pod, as the kubelet's runtime passes them to CNI. */
export function podCniArgs(s: SandboxRef): string {
  return [
    "IgnoreUnknown=1",
    `K8S_POD_NAMESPACE=${s.namespace}`,
    `K8S_POD_NAME=${s.name}`,
    `K8S_POD_INFRA_CONTAINER_ID=${s.id}`,
    `K8S_POD_UID=${s.uid}`,
  ].join(";");
}

function request(
  e: EngineSettings,
  sandboxId: string,
  netns: string,
  ifName: string,
  extra: Partial<AttachRequest> = {},
): AttachRequest {
  const conf: NetConf = {
    cniVersion: "1.1.0",
    name: "hydra-dra",
    type: "hydra",
    cacheDir: e.cacheDir,
    logLevel: e.logLevel ?? "warn",
  };
  if (e.logFile) conf.logFile = e.logFile;
  return {
    conf,
    containerId: sandboxId,
    netns,
    ifName,
    cniArgs: "",
    path: e.cniPath,
    builtins: BUILTINS,
    ...extra,
  };
}

function enginePlan(n: NetworkPlan): EnginePlan {
  const list = parseConfList(encoder.encode(JSON.stringify(n.conf)), `network ${n.name}`);
  const plan: EnginePlan = { name: list.name, ifName: n.ifName, list };
  if (n.capabilityArgs) plan.capabilityArgs = n.capabilityArgs;
  return plan;
}

function asCurrent(result: AnyResult): Result | undefined {
  try {
    return convertResult(result, "1.1.0") as Result;
  } catch {
    return undefined;
  }
}

/**
 * Attaches `networks` (in order) in the sandbox; throws CniError with
 * nothing left attached.
 */
export async function attachClaimNetworks(
  e: EngineSettings,
  s: SandboxRef,
  netns: string,
  networks: readonly NetworkPlan[],
): Promise<AttachedClaimNetwork[]> {
  const out = await attach(
    request(e, s.id, netns, networks[0].ifName, {
      cniArgs: podCniArgs(s),
      networks: networks.map(enginePlan),
    }),
  );
  return out.networks.map((n) => ({ ifName: n.ifName, result: asCurrent(n.result) }));
}

/** Detaches everything the engine recorded for the sandbox; throws what failed (kept for a retry). */
export async function detachClaimNetworks(
  e: EngineSettings,
  sandboxId: string,
  netns: string,
): Promise<void> {
  const errors: CniError[] = [];
  for (const ifName of recordedInterfaces(e.cacheDir, sandboxId)) {
    try {
      await detach(request(e, sandboxId, netns, ifName));
    } catch (err) {
      errors.push(asCniError(err));
    }
  }
  if (errors.length) {
    throw new CniError(
      errors[0].code,
      `detaching the claimed networks of sandbox ${sandboxId}: ${
        errors.map((x) => x.message).join("; ")
      }`,
    );
  }
}
