/**
 * Pieces of the Kubernetes-mode benchmark (kube_mode.ts): the cases it
 * measures, running one CNI command as a runtime does (with the pod named
 * in CNI_ARGS, inside the node namespace, optionally under GNU time for
 * peak RSS), and the node daemon's memory.
 *
 * @module
 */

import type { KubeApi } from "../tests/infra/kubeapi.ts";
import { execInNetns } from "./cni_exec.ts";

/** Delegates a case's networks use. */
export type DelegateKind = "reference" | "builtin";

/** One measured configuration. */
export interface KubeCase {
  key: string;
  description: string;
  /** Executable the runtime execs. */
  exe: string;
  /** CNI_PATH. */
  path: string[];
  /** The conf on stdin. */
  config: Uint8Array;
  /** Pods (API objects) this case attaches, each with the same two-network selection. */
  pods: { name: string; uid: string }[];
  delegates: DelegateKind;
  /**
   * No meta-plugin: exec `exe` once per conf (its interface name beside
   * it), ADDs in order and DELs in reverse — the delegates' own cost.
   */
  alone?: { config: Uint8Array; ifName: string }[];
}

/** One CNI command for one pod. */
export interface KubeCall {
  exe: string;
  command: "ADD" | "DEL";
  containerId: string;
  netns: string;
  path: readonly string[];
  config: Uint8Array;
  pod: { namespace: string; name: string; uid: string };
  /** CNI_IFNAME; eth0. */
  ifName?: string;
}

/** How it went. */
export interface KubeOutcome {
  ms: number;
  code: number;
  stdout: string;
  stderr: string;
  rssKiB?: number;
}

function env(call: KubeCall): Record<string, string> {
  return {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifName ?? "eth0",
    CNI_PATH: call.path.join(":"),
    CNI_ARGS: [
      "IgnoreUnknown=1",
      `K8S_POD_NAMESPACE=${call.pod.namespace}`,
      `K8S_POD_NAME=${call.pod.name}`,
      `K8S_POD_INFRA_CONTAINER_ID=${call.containerId}`,
      `K8S_POD_UID=${call.pod.uid}`,
    ].join(";"),
  };
}

/**
 * Execs the call inside the namespace at `nodePath`, timed from just before
 * the fork until its output is in; with `rssFile`, under GNU time (peak RSS
 * of the largest process of the invocation), which is then not a timed run.
 */
export function runKubeCni(
  nodePath: string,
  call: KubeCall,
  rssFile?: string,
): Promise<KubeOutcome> {
  return execInNetns(nodePath, call.exe, env(call), call.config, rssFile);
}

/** Peak and current resident memory of a process, KiB (from /proc). */
export async function processMemory(pid: number): Promise<{ peakKiB: number; nowKiB: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1]);
  return { peakKiB: field("VmHWM"), nowKiB: field("VmRSS") };
}

/**
 * CPU seconds (user + system) a process has used, from /proc; with
 * `children`, also that of the children it has reaped (the delegates a
 * daemon execs).
 */
export async function processCpuSeconds(pid: number, children = false): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]) +
    (children ? Number(fields[13]) + Number(fields[14]) : 0);
  return ticks / 100;
}

/** One subnet's IPAM for either kind: host-local (reference) or hydra-ipam (built-ins). */
function rangeIpam(kind: DelegateKind, subnet: string, dataDir: string): Record<string, unknown> {
  return {
    type: kind === "reference" ? "host-local" : "hydra-ipam",
    ranges: [[{ subnet }]],
    dataDir,
  };
}

/** A bridge network with host-local (reference) or hydra-bridge with hydra-ipam (built-ins). */
export function bridgeNetwork(
  kind: DelegateKind,
  name: string,
  bridge: string,
  subnet: string,
  dataDir: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name,
    type: kind === "reference" ? "bridge" : "hydra-bridge",
    bridge,
    ipam: rangeIpam(kind, subnet, dataDir),
    ...extra,
  };
}

/**
 * Registers the benchmark's node as a Node object, as a kubelet does before
 * any pod reaches it. Node agents read their pods from a watch of the
 * node's pods, and without a Node of their name they take the name for a
 * wrong one and ask the API server for every pod instead, which no real
 * node would make them do.
 */
export async function registerNode(api: KubeApi, name: string): Promise<void> {
  await api.must("POST", "/api/v1/nodes", {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name, labels: { "kubernetes.io/hostname": name } },
  });
}

/** One macvlan network on `master`, the reference plugins' or hydra's built-ins. */
export function macvlanNetwork(
  kind: DelegateKind,
  name: string,
  master: string,
  subnet: string,
  dataDir: string,
): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name,
    type: kind === "reference" ? "macvlan" : "hydra-macvlan",
    master,
    mode: "bridge",
    ipam: rangeIpam(kind, subnet, dataDir),
  };
}

/** The delegates-alone case: one exec per network, times summed, RSS the largest. */
export async function runAlone(
  nodePath: string,
  c: KubeCase,
  call: KubeCall,
  command: "ADD" | "DEL",
  rssFile?: string,
): Promise<KubeOutcome> {
  const steps = command === "ADD" ? c.alone! : [...c.alone!].reverse();
  let ms = 0;
  let rssKiB = 0;
  let first: KubeOutcome = { ms: 0, code: 0, stdout: "", stderr: "" };
  for (const step of steps) {
    const out = await runKubeCni(
      nodePath,
      { ...call, command, config: step.config, ifName: step.ifName },
      rssFile,
    );
    if (out.code !== 0) return out;
    ms += out.ms;
    rssKiB = Math.max(rssKiB, out.rssKiB ?? 0);
    if (step.ifName === "eth0") first = out;
  }
  return { ...first, ms, rssKiB: rssKiB || undefined };
}
