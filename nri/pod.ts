/**
 * The NRI `PodSandbox` message (with `LinuxPodSandbox` and
 * `LinuxNamespace`, generated from `proto/api.proto`): what hydra learns
 * about a pod, and where its network namespace is.
 *
 * @module
 */

import type { PodSandbox } from "./proto/api_pb.ts";

export {
  type LinuxNamespace,
  type LinuxPodSandbox,
  type PodSandbox,
  PodSandboxSchema,
} from "./proto/api_pb.ts";

/**
 * The path of the pod's network namespace: the `network` entry of
 * `pod.linux.namespaces`. Undefined for host-network pods (no entry) and
 * when the runtime sent no Linux section.
 */
export function netnsPathOf(pod: PodSandbox): string | undefined {
  const entry = pod.linux?.namespaces.find((ns) => ns.type === "network");
  return entry && entry.path !== "" ? entry.path : undefined;
}
