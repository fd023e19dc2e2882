/**
 * The Kubernetes-mode keys of the meta-CNI's conf, under Multus's names and
 * with Multus's defaults, so a Multus conf's settings carry over:
 *
 * ```json
 * { "type": "hydra", "kubeconfig": "/etc/cni/net.d/hydra.d/hydra.kubeconfig",
 *   "clusterNetwork": "cbr0", "defaultNetworks": [], "confDir": "/etc/cni/multus/net.d",
 *   "namespaceIsolation": false, "globalNamespaces": "default",
 *   "systemNamespaces": ["kube-system"], "multusNamespace": "kube-system",
 *   "readinessindicatorfile": "", "apiTimeout": 5 }
 * ```
 *
 * hydra's own key `podResourcesSocket` names the kubelet's pod-resources
 * socket (default /var/lib/kubelet/pod-resources/kubelet.sock), asked for a
 * pod's device IDs when a NAD names a `k8s.v1.cni.cncf.io/resourceName`.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { KubeModeConfig } from "./networks.ts";

/** Everything Kubernetes mode needs from the conf. */
export interface KubeModeSettings extends KubeModeConfig {
  /** Kubeconfig path; absent means in-cluster config. */
  kubeconfig?: string;
  /** File to wait for before ADD/STATUS/GC (readinessindicatorfile). */
  readinessIndicatorFile?: string;
  /** Deadline for the API calls of one invocation, ms (`apiTimeout` seconds; 5 s). */
  apiTimeoutMs: number;
}

function typeError(field: string, expected: string): CniError {
  return new CniError(ErrorCode.DecodingFailure, `"${field}" must be ${expected}`);
}

function optString(conf: Record<string, unknown>, field: string): string | undefined {
  const v = conf[field];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw typeError(field, "a string");
  return v;
}

function optStrings(conf: Record<string, unknown>, field: string): string[] | undefined {
  const v = conf[field];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw typeError(field, "a list of strings");
  }
  return v as string[];
}

/** True when the conf asks for Kubernetes mode (it names a cluster network). */
export function isKubeMode(conf: Record<string, unknown>): boolean {
  return conf.clusterNetwork !== undefined && conf.clusterNetwork !== null;
}

/**
 * Reads the Kubernetes-mode settings of a meta-CNI conf. Throws CNI code 6
 * for a field of the wrong type and 7 for a missing or invalid value, naming
 * the field.
 */
export function parseKubeModeSettings(conf: Record<string, unknown>): KubeModeSettings {
  const clusterNetwork = optString(conf, "clusterNetwork");
  if (!clusterNetwork) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `"clusterNetwork" is missing or empty`);
  }
  const isolation = conf.namespaceIsolation ?? false;
  if (typeof isolation !== "boolean") throw typeError("namespaceIsolation", "true or false");
  const timeout = conf.apiTimeout ?? 5;
  if (typeof timeout !== "number") throw typeError("apiTimeout", "a number of seconds");
  if (!(timeout > 0)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `"apiTimeout" must be more than 0 seconds`);
  }
  const rc = conf.runtimeConfig;
  if (rc !== undefined && rc !== null && (typeof rc !== "object" || Array.isArray(rc))) {
    throw typeError("runtimeConfig", "an object");
  }
  const settings: KubeModeSettings = {
    clusterNetwork,
    namespaceIsolation: isolation,
    apiTimeoutMs: timeout * 1000,
  };
  const set = <K extends keyof KubeModeSettings>(
    key: K,
    value: KubeModeSettings[K] | undefined,
  ) => {
    if (value !== undefined) settings[key] = value;
  };
  set("kubeconfig", optString(conf, "kubeconfig"));
  set("readinessIndicatorFile", optString(conf, "readinessindicatorfile"));
  set("defaultNetworks", optStrings(conf, "defaultNetworks"));
  set("confDir", optString(conf, "confDir"));
  set("globalNamespaces", optString(conf, "globalNamespaces"));
  set("systemNamespaces", optStrings(conf, "systemNamespaces"));
  set("multusNamespace", optString(conf, "multusNamespace"));
  set("podResourcesSocket", optString(conf, "podResourcesSocket"));
  set("runtimeConfig", (rc ?? undefined) as Record<string, unknown> | undefined);
  return settings;
}
