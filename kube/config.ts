/**
 * The Kubernetes-mode keys of the meta-CNI's conf, under Multus's names and
 * with Multus's defaults, so a Multus conf's settings carry over:
 *
 * ```json
 * { "type": "hydra", "kubeconfig": "/etc/cni/net.d/hydra.d/hydra.kubeconfig",
 *   "clusterNetwork": "cbr0", "defaultNetworks": [], "confDir": "/etc/cni/multus/net.d",
 *   "namespaceIsolation": false, "globalNamespaces": "default",
 *   "systemNamespaces": ["kube-system"], "multusNamespace": "kube-system",
 *   "readinessindicatorfile": "", "apiTimeout": 5,
 *   "nadPathRoots": { "state": ["/var/lib/cni", "/run/cni"], "logs": ["/var/log"],
 *                     "read": ["/etc/cni/net.d", "/etc/resolv.conf"] } }
 * ```
 *
 * hydra's own key `podResourcesSocket` names the kubelet's pod-resources
 * socket (default /var/lib/kubelet/pod-resources/kubelet.sock), asked for a
 * pod's device IDs when a NAD names a `k8s.v1.cni.cncf.io/resourceName`.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { type Fields, fields } from "../pkg/fields.ts";
import type { KubeModeConfig } from "./networks.ts";
import { parseNadPathRoots } from "./nad_paths.ts";

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

/** How a field's type is named in errors where the reader's words would say less. */
const EXPECTED: Record<string, string> = {
  namespaceIsolation: "true or false",
  apiTimeout: "a number of seconds",
};

/** The conf's fields: a wrong type is CNI code 6 naming the field; "" is not set. */
function confFields(conf: Record<string, unknown>): Fields {
  return fields(conf, {
    emptyStringUnset: true,
    fail: (p) => typeError(p.key, EXPECTED[p.key] ?? p.expected),
  });
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
  const f = confFields(conf);
  const clusterNetwork = f.string("clusterNetwork");
  if (!clusterNetwork) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `"clusterNetwork" is missing or empty`);
  }
  const isolation = f.boolean("namespaceIsolation") ?? false;
  const timeout = f.number("apiTimeout") ?? 5;
  if (!(timeout > 0)) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `"apiTimeout" must be more than 0 seconds`);
  }
  const rc = f.object("runtimeConfig");
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
  set("kubeconfig", f.string("kubeconfig"));
  set("readinessIndicatorFile", f.string("readinessindicatorfile"));
  set("defaultNetworks", f.strings("defaultNetworks"));
  set("confDir", f.string("confDir"));
  set("globalNamespaces", f.string("globalNamespaces"));
  set("systemNamespaces", f.strings("systemNamespaces"));
  set("multusNamespace", f.string("multusNamespace"));
  set("podResourcesSocket", f.string("podResourcesSocket"));
  set("runtimeConfig", rc);
  if (conf.nadPathRoots !== undefined && conf.nadPathRoots !== null) {
    set("nadPathRoots", parseNadPathRoots(conf.nadPathRoots));
  }
  return settings;
}
