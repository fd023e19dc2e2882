/**
 * Pods on a real kubelet, as the node-stack tests make and remove them: a
 * pause container bound to the kubelet's node (no scheduler), started
 * without grace, and its object awaited until the API server no longer has
 * it.
 *
 * @module
 */

import type { ControlPlane } from "./cluster.ts";
import type { Kubelet } from "./kubelet.ts";
import { versions } from "./peers.ts";
import { poll } from "./process.ts";

/** The API path of a pod. */
export function podApiPath(namespace: string, name: string): string {
  return `/api/v1/namespaces/${namespace}/pods/${name}`;
}

/** Creates a pause Pod on the kubelet's node; returns its API path. */
export async function createPausePod(
  cp: ControlPlane,
  kubelet: Kubelet,
  namespace: string,
  name: string,
  annotations: Record<string, string> = {},
): Promise<string> {
  await cp.api.must("POST", `/api/v1/namespaces/${namespace}/pods`, {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace,
      ...(Object.keys(annotations).length ? { annotations } : {}),
    },
    spec: {
      nodeName: kubelet.nodeName,
      terminationGracePeriodSeconds: 0,
      containers: [{
        name: "main",
        image: versions().PAUSE_IMAGE,
        imagePullPolicy: "Never",
      }],
    },
  });
  return podApiPath(namespace, name);
}

/** Deletes the Pod at `path`; true once the API server no longer has it (within `timeoutMs`). */
export async function deletePodAndWait(
  cp: ControlPlane,
  path: string,
  timeoutMs = 60_000,
): Promise<boolean> {
  await cp.api.must("DELETE", path);
  return await poll(async () => (await cp.api.request("GET", path)).status === 404, timeoutMs, 250);
}
