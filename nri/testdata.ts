/**
 * Test fixtures shared by the NRI unit tests: hex helpers and a sample pod.
 *
 * @module
 */

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type PodSandbox, PodSandboxSchema } from "./pod.ts";

/** Bytes from hex, ignoring whitespace and `|` separators. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/[\s|]/g, "");
  if (clean.length % 2 !== 0) throw new Error(`odd hex length: ${clean}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Hex of bytes, lower case, no separators. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The fields of a pod, any of them left out. */
export type PodInit = MessageInitShape<typeof PodSandboxSchema>;

/** A pod as containerd describes one in RunPodSandbox. */
export function samplePod(overrides: PodInit = {}): PodSandbox {
  const init: PodInit = {
    id: "5f1c0a2b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a",
    name: "web-0",
    uid: "0b7c3e9e-1d2f-4a5b-8c9d-0e1f2a3b4c5d",
    namespace: "default",
    labels: { app: "web", "io.kubernetes.pod.name": "web-0" },
    annotations: { "k8s.v1.cni.cncf.io/networks": "blue,red" },
    runtimeHandler: "runc",
    linux: {
      cgroupParent: "/kubepods/besteffort/pod0b7c3e9e",
      cgroupsPath: "",
      namespaces: [
        { type: "pid", path: "" },
        { type: "ipc", path: "/proc/4242/ns/ipc" },
        { type: "network", path: "/var/run/netns/cni-3c1a1d3e-8a0d-4e5c-9d6b-2f1e0a9b8c7d" },
      ],
    },
    pid: 4242,
    ips: ["10.88.0.5", "fd00::5"],
  };
  // Spread, the two inits' nested messages widen to a union create() does not take.
  return create(PodSandboxSchema, { ...init, ...overrides } as PodInit);
}
