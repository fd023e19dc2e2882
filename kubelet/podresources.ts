/**
 * A client of the kubelet's pod-resources API (`v1.PodResourcesLister`,
 * k8s.io/kubelet pkg/apis/podresources/v1): which devices the kubelet gave
 * a pod. Multus reads it to hand a NetworkAttachmentDefinition with a
 * `k8s.v1.cni.cncf.io/resourceName` the device ID allocated for that
 * resource; {@link podResourceMap} builds the same map Multus builds.
 *
 * @module
 */

import { dialUnix, type UnaryMethod } from "./grpc.ts";
import {
  type BinaryWriter,
  decodeFields,
  encode,
  WireType,
  writeMessage,
  writeString,
  writeStrings,
} from "./wire.ts";

/** Where the kubelet serves the API by default. */
export const DEFAULT_POD_RESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock";

/** Device-plugin devices of one resource given to a container. */
export interface ContainerDevices {
  resourceName: string;
  deviceIds: string[];
}

/** One device of a DRA claim given to a container. */
export interface ClaimResource {
  cdiDevices: string[];
  driverName: string;
  poolName: string;
  deviceName: string;
}

/** A DRA claim given to a container. */
export interface DynamicResource {
  claimName: string;
  claimNamespace: string;
  claimResources: ClaimResource[];
}

/** One container's resources. */
export interface ContainerResources {
  name: string;
  devices: ContainerDevices[];
  dynamicResources: DynamicResource[];
}

/** One pod's resources. */
export interface PodResources {
  name: string;
  namespace: string;
  containers: ContainerResources[];
}

function decodeContainerDevices(bytes: Uint8Array): ContainerDevices {
  const d: ContainerDevices = { resourceName: "", deviceIds: [] };
  decodeFields(bytes, "ContainerDevices", (f, t, r) => {
    if (t !== WireType.LengthDelimited) return false;
    if (f === 1) d.resourceName = r.string();
    else if (f === 2) d.deviceIds.push(r.string());
    else return false;
    return true;
  });
  return d;
}

function decodeClaimResource(bytes: Uint8Array): ClaimResource {
  const c: ClaimResource = { cdiDevices: [], driverName: "", poolName: "", deviceName: "" };
  decodeFields(bytes, "ClaimResource", (f, t, r) => {
    if (t !== WireType.LengthDelimited) return false;
    if (f === 1) {
      decodeFields(r.bytes(), "CDIDevice", (ff, tt, rr) => {
        if (ff !== 1 || tt !== WireType.LengthDelimited) return false;
        c.cdiDevices.push(rr.string());
        return true;
      });
    } else if (f === 2) c.driverName = r.string();
    else if (f === 3) c.poolName = r.string();
    else if (f === 4) c.deviceName = r.string();
    else return false;
    return true;
  });
  return c;
}

function decodeDynamicResource(bytes: Uint8Array): DynamicResource {
  const d: DynamicResource = { claimName: "", claimNamespace: "", claimResources: [] };
  decodeFields(bytes, "DynamicResource", (f, t, r) => {
    if (t !== WireType.LengthDelimited) return false;
    if (f === 2) d.claimName = r.string();
    else if (f === 3) d.claimNamespace = r.string();
    else if (f === 4) d.claimResources.push(decodeClaimResource(r.bytes()));
    else return false;
    return true;
  });
  return d;
}

function decodeContainer(bytes: Uint8Array): ContainerResources {
  const c: ContainerResources = { name: "", devices: [], dynamicResources: [] };
  decodeFields(bytes, "ContainerResources", (f, t, r) => {
    if (t !== WireType.LengthDelimited) return false;
    if (f === 1) c.name = r.string();
    else if (f === 2) c.devices.push(decodeContainerDevices(r.bytes()));
    else if (f === 5) c.dynamicResources.push(decodeDynamicResource(r.bytes()));
    else return false;
    return true;
  });
  return c;
}

/** Decodes a PodResources message. */
export function decodePodResources(bytes: Uint8Array): PodResources {
  const p: PodResources = { name: "", namespace: "", containers: [] };
  decodeFields(bytes, "PodResources", (f, t, r) => {
    if (t !== WireType.LengthDelimited) return false;
    if (f === 1) p.name = r.string();
    else if (f === 2) p.namespace = r.string();
    else if (f === 3) p.containers.push(decodeContainer(r.bytes()));
    else return false;
    return true;
  });
  return p;
}

function encodeContainer(w: BinaryWriter, c: ContainerResources): void {
  writeString(w, 1, c.name);
  for (const d of c.devices) {
    writeMessage(
      w,
      2,
      encode((dw) => {
        writeString(dw, 1, d.resourceName);
        writeStrings(dw, 2, d.deviceIds);
      }),
    );
  }
  for (const d of c.dynamicResources) {
    writeMessage(
      w,
      5,
      encode((dw) => {
        writeString(dw, 2, d.claimName);
        writeString(dw, 3, d.claimNamespace);
        for (const cr of d.claimResources) {
          writeMessage(
            dw,
            4,
            encode((cw) => {
              for (const cdi of cr.cdiDevices) {
                writeMessage(
                  cw,
                  1,
                  encode((x) => writeString(x, 1, cdi)),
                );
              }
              writeString(cw, 2, cr.driverName);
              writeString(cw, 3, cr.poolName);
              writeString(cw, 4, cr.deviceName);
            }),
          );
        }
      }),
    );
  }
}

/** Encodes a PodResources message. */
export function encodePodResources(p: PodResources): Uint8Array {
  return encode((w) => {
    writeString(w, 1, p.name);
    writeString(w, 2, p.namespace);
    for (const c of p.containers) writeMessage(w, 3, encode((cw) => encodeContainer(cw, c)));
  });
}

/** PodResourcesLister.List: every pod's resources. */
export const listMethod: UnaryMethod<Record<string, never>, PodResources[]> = {
  service: "v1.PodResourcesLister",
  name: "List",
  request: {
    encode: () => new Uint8Array(0),
    decode: () => ({}),
  },
  response: {
    encode: (pods) => encode((w) => pods.forEach((p) => writeMessage(w, 1, encodePodResources(p)))),
    decode(bytes) {
      const pods: PodResources[] = [];
      decodeFields(bytes, "ListPodResourcesResponse", (f, t, r) => {
        if (f !== 1 || t !== WireType.LengthDelimited) return false;
        pods.push(decodePodResources(r.bytes()));
        return true;
      });
      return pods;
    },
  },
};

/**
 * Device IDs per resource of one pod, as Multus builds its resource map:
 * device-plugin devices under their resource name, DRA claims under the
 * claim's name with the part after "=" of each CDI device name; IDs
 * sorted. Empty when the pod is not listed.
 */
export function resourceMapOf(
  pods: readonly PodResources[],
  namespace: string,
  name: string,
): Map<string, string[]> {
  const map = new Map<string, string[]>();
  const add = (key: string, ids: string[]) => map.set(key, [...(map.get(key) ?? []), ...ids]);
  for (const pod of pods) {
    if (pod.name !== name || pod.namespace !== namespace) continue;
    for (const c of pod.containers) {
      for (const d of c.devices) add(d.resourceName, d.deviceIds);
      for (const dr of c.dynamicResources) {
        const ids = dr.claimResources.flatMap((cr) =>
          cr.cdiDevices.map((cdi) => cdi.split("=")).filter((p) => p.length === 2).map((p) => p[1])
        );
        add(dr.claimName, ids);
      }
    }
  }
  for (const ids of map.values()) ids.sort();
  return map;
}

/** Asks the kubelet at `socket` for the resource map of one pod. */
export async function podResourceMap(
  socket: string,
  namespace: string,
  name: string,
  timeoutMs: number,
): Promise<Map<string, string[]>> {
  const client = dialUnix(socket);
  try {
    return resourceMapOf(await client.call(listMethod, {}, timeoutMs), namespace, name);
  } finally {
    client.close();
  }
}
