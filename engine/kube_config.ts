/**
 * When the meta-CNI runs in Kubernetes mode, and the settings of that mode.
 *
 * Kubernetes mode is on when the conf names a `kubeconfig` and CNI_ARGS
 * name the pod, or whenever the conf names a `clusterNetwork` (without a
 * `kubeconfig` the in-cluster ServiceAccount is used, as Multus does; a
 * bare in-cluster environment alone does not switch a `delegates` conf to
 * Kubernetes mode, so a node's plain conf never changes meaning). The pod's default
 * network is then `clusterNetwork` (or the pod's
 * `v1.multus-cni.io/default-network` override) or, in a conf that wraps the
 * node's default conf as `delegates` (what `hydra install` writes), the
 * first delegate; further delegates are attached to every pod like
 * `defaultNetworks`. The pod's own selections follow.
 *
 * Keys beyond Multus's (kube/config.ts reads those):
 *
 * - `daemonSocket`: the node daemon's socket (default /run/hydra/daemon.sock;
 *   "" turns it off). When a daemon listens there, pods and networks come
 *   from its watch caches and it writes the pod's status; otherwise the
 *   meta-CNI asks the API server itself.
 * - `apiTimeout`: seconds all API work of one invocation may take, whether
 *   the daemon or the API server answers (default 5); past it the
 *   invocation fails with CNI code 11 ("try again later").
 * - `skipDefaultNetwork`: true when the runtime's own CNI already made the
 *   pod's default network (eth0), as under `hydra nri serve`: neither
 *   `clusterNetwork` nor `delegates` is needed or run (nor the pod's
 *   default-network override); `defaultNetworks` and the pod's selections
 *   are attached as secondary networks named net1, net2, … (or the
 *   selection's interface), only they are recorded (DEL works from the
 *   record as usual), the result is empty (`{"cniVersion": …}`), and the
 *   report merges their entries into the pod's network-status beside the
 *   other writers' ones. A `kubeconfig` or the in-cluster ServiceAccount
 *   reaches the API server; CNI_ARGS must name the pod.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { fields } from "../pkg/fields.ts";
import type { NetConf } from "../cni/types.ts";
import { type KubeModeSettings, parseKubeModeSettings } from "../kube/config.ts";
import { parseCniArgs, type PodArgs } from "../kube/delegate.ts";
import { DEFAULT_DAEMON_SOCKET } from "../daemonclient/protocol.ts";

/** Kubernetes-mode settings of one invocation. */
export interface KubeMetaSettings {
  /** Multus-compatible keys; `clusterNetwork` is "" when the default network is `delegates[0]`. */
  kube: KubeModeSettings;
  /** The node daemon's socket; undefined when turned off. */
  daemonSocket?: string;
}

function hasKubeconfig(conf: Record<string, unknown>): boolean {
  return typeof conf.kubeconfig === "string" && conf.kubeconfig !== "";
}

/** The pod named by CNI_ARGS, or undefined when they name none. */
export function podArgsOf(cniArgs: string): PodArgs | undefined {
  const get = (key: string) => parseCniArgs(cniArgs).find(([k]) => k === key)?.[1] ?? "";
  const name = get("K8S_POD_NAME");
  const namespace = get("K8S_POD_NAMESPACE");
  if (!name || !namespace) return undefined;
  return {
    namespace,
    name,
    uid: get("K8S_POD_UID"),
    infraContainerId: get("K8S_POD_INFRA_CONTAINER_ID"),
  };
}

/** True when the conf names a cluster network (the default network comes from Kubernetes' side). */
export function namesClusterNetwork(conf: NetConf): boolean {
  const c = conf as Record<string, unknown>;
  return typeof c.clusterNetwork === "string" && c.clusterNetwork !== "";
}

/** True when an invocation with this conf and CNI_ARGS runs in Kubernetes mode. */
export function wantsKubeMode(conf: NetConf, cniArgs: string): boolean {
  if (namesClusterNetwork(conf)) return true;
  const c = conf as Record<string, unknown>;
  return (hasKubeconfig(c) || c.skipDefaultNetwork === true) && podArgsOf(cniArgs) !== undefined;
}

/** Reads the Kubernetes-mode settings; CNI code 6/7 naming the field when one is wrong. */
export function parseKubeMetaSettings(conf: NetConf): KubeMetaSettings {
  const c = conf as Record<string, unknown>;
  const f = fields(c, {
    fail: (p) =>
      new CniError(
        ErrorCode.DecodingFailure,
        `"${p.key}" must be ${p.expected === "a boolean" ? "true or false" : p.expected}`,
      ),
  });
  const skip = f.boolean("skipDefaultNetwork") ?? false;
  const viaDelegates = !namesClusterNetwork(conf);
  if (
    viaDelegates && !skip && c.delegates === undefined && c.delegatesFromConfDir === undefined
  ) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `Kubernetes mode needs the pod's default network: set "clusterNetwork" (or "delegates")`,
    );
  }
  const kube = parseKubeModeSettings(viaDelegates ? { ...c, clusterNetwork: "-" } : c);
  if (viaDelegates) kube.clusterNetwork = "";
  if (skip) kube.skipDefaultNetwork = true;
  const socket = f.string("daemonSocket") ?? DEFAULT_DAEMON_SOCKET;
  if (socket !== "" && !socket.startsWith("/")) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `"daemonSocket" must be an absolute path, got "${socket}"`,
    );
  }
  return { kube, daemonSocket: socket === "" ? undefined : socket };
}
