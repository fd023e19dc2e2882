/**
 * The NRI `PodSandbox` message (with `LinuxPodSandbox` and
 * `LinuxNamespace`): what hydra learns about a pod, and where its network
 * namespace is. Resources are skipped when decoding.
 *
 * @module
 */

import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { decodeFields, decodeStringPair, writeMessage, writeString, writeStringMap } from "./pb.ts";

/** A Linux namespace of the pod sandbox (OCI type names: "network", "pid", ...). */
export interface LinuxNamespace {
  /** OCI namespace type: "network", "pid", "ipc", "uts", "mount", ... */
  type: string;
  /** Path to join; empty for a namespace created with the sandbox. */
  path: string;
}

/** The Linux part of a pod sandbox; resources are not decoded. */
export interface LinuxPodSandbox {
  /** Cgroup parent of the pod. */
  cgroupParent: string;
  /** Cgroup path of the sandbox container. */
  cgroupsPath: string;
  /** Namespaces of the sandbox container (from its OCI spec). */
  namespaces: LinuxNamespace[];
}

/** A pod sandbox as NRI describes it. */
export interface PodSandbox {
  /** Sandbox id (64 hex digits with containerd). */
  id: string;
  /** Kubernetes pod name. */
  name: string;
  /** Kubernetes pod UID. */
  uid: string;
  /** Kubernetes namespace. */
  namespace: string;
  /** Pod labels as the kubelet passed them to the runtime. */
  labels: Record<string, string>;
  /** Pod annotations as the kubelet passed them to the runtime. */
  annotations: Record<string, string>;
  /** Runtime handler (RuntimeClass), "" for the default. */
  runtimeHandler: string;
  /** Linux details; absent when the runtime sent none. */
  linux?: LinuxPodSandbox;
  /** Pid of the sandbox (pause) process; 0 when unknown. */
  pid: number;
  /** Pod IPs (filled by containerd from 2.1). */
  ips: string[];
}

function decodeNamespace(bytes: Uint8Array): LinuxNamespace {
  const ns: LinuxNamespace = { type: "", path: "" };
  decodeFields(bytes, "LinuxNamespace", (field, wireType, r) => {
    if (wireType !== WireType.LengthDelimited) return false;
    if (field === 1) ns.type = r.string();
    else if (field === 2) ns.path = r.string();
    else return false;
    return true;
  });
  return ns;
}

function decodeLinux(bytes: Uint8Array): LinuxPodSandbox {
  const linux: LinuxPodSandbox = { cgroupParent: "", cgroupsPath: "", namespaces: [] };
  decodeFields(bytes, "LinuxPodSandbox", (field, wireType, r) => {
    if (wireType !== WireType.LengthDelimited) return false;
    if (field === 3) linux.cgroupParent = r.string();
    else if (field === 4) linux.cgroupsPath = r.string();
    else if (field === 5) linux.namespaces.push(decodeNamespace(r.bytes()));
    else return false;
    return true;
  });
  return linux;
}

/** Decodes a `PodSandbox`. */
export function decodePodSandbox(bytes: Uint8Array): PodSandbox {
  const labels: [string, string][] = [];
  const annotations: [string, string][] = [];
  const pod: PodSandbox = {
    id: "",
    name: "",
    uid: "",
    namespace: "",
    labels: {},
    annotations: {},
    runtimeHandler: "",
    pid: 0,
    ips: [],
  };
  decodeFields(bytes, "PodSandbox", (field, wireType, r) => {
    if (field === 9 && wireType === WireType.Varint) {
      pod.pid = r.uint32();
      return true;
    }
    if (wireType !== WireType.LengthDelimited) return false;
    switch (field) {
      case 1:
        pod.id = r.string();
        break;
      case 2:
        pod.name = r.string();
        break;
      case 3:
        pod.uid = r.string();
        break;
      case 4:
        pod.namespace = r.string();
        break;
      case 5:
        labels.push(decodeStringPair(r.bytes(), "PodSandbox.labels"));
        break;
      case 6:
        annotations.push(decodeStringPair(r.bytes(), "PodSandbox.annotations"));
        break;
      case 7:
        pod.runtimeHandler = r.string();
        break;
      case 8:
        pod.linux = decodeLinux(r.bytes());
        break;
      case 10:
        pod.ips.push(r.string());
        break;
      default:
        return false;
    }
    return true;
  });
  // fromEntries defines own properties, so keys like "__proto__" stay data.
  pod.labels = Object.fromEntries(labels);
  pod.annotations = Object.fromEntries(annotations);
  return pod;
}

/** Encodes a `PodSandbox`. */
export function encodePodSandbox(pod: PodSandbox): Uint8Array {
  const w = new BinaryWriter();
  writeString(w, 1, pod.id);
  writeString(w, 2, pod.name);
  writeString(w, 3, pod.uid);
  writeString(w, 4, pod.namespace);
  writeStringMap(w, 5, pod.labels);
  writeStringMap(w, 6, pod.annotations);
  writeString(w, 7, pod.runtimeHandler);
  if (pod.linux) {
    const l = new BinaryWriter();
    writeString(l, 3, pod.linux.cgroupParent);
    writeString(l, 4, pod.linux.cgroupsPath);
    for (const ns of pod.linux.namespaces) {
      const n = new BinaryWriter();
      writeString(n, 1, ns.type);
      writeString(n, 2, ns.path);
      writeMessage(l, 5, n.finish());
    }
    writeMessage(w, 8, l.finish());
  }
  if (pod.pid !== 0) w.tag(9, WireType.Varint).uint32(pod.pid);
  for (const ip of pod.ips) w.tag(10, WireType.LengthDelimited).string(ip);
  return w.finish();
}

/**
 * The path of the pod's network namespace: the `network` entry of
 * `pod.linux.namespaces`. Undefined for host-network pods (no entry) and
 * when the runtime sent no Linux section.
 */
export function netnsPathOf(pod: PodSandbox): string | undefined {
  const entry = pod.linux?.namespaces.find((ns) => ns.type === "network");
  return entry && entry.path !== "" ? entry.path : undefined;
}
