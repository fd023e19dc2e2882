/**
 * The node daemon's socket protocol: what the exec'd meta-CNI (and the
 * `kube-node` IPAM) ask `hydra daemon` over its unix socket, and what it
 * answers. One JSON object per line each way; requests on a connection are
 * answered in order. Plain lines rather than HTTP because an exec'd plugin
 * pays for every module and subsystem it touches: a raw unix connection
 * costs it about 1.5 ms, a first fetch about 9 ms.
 *
 * ```
 * → {"op":"get","path":"/api/v1/namespaces/ns/pods/web-0","uid":"…","timeoutMs":4000}
 * ← {"ok":true,"body":{…the Pod…}}
 * ← {"ok":false,"status":404,"reason":"NotFound","message":"…"}
 * ← {"ok":false,"transport":"timeout","message":"…"}
 * → {"op":"cni","command":"ADD","containerId":"…","netns":"…","ifName":"eth0","cniArgs":"…",
 *    "network":"hydra","plugin":"hydra","confDigest":"sha256:…","timeoutMs":240000}
 * ← {"ok":true,"body":{"stdout":"…","code":0}}
 * ```
 *
 * Only the node's root is served, and a `cni` request names a conf of the
 * node's rather than carrying one (see docs/node-daemon.md, "What a caller
 * may ask").
 *
 * @module
 */

import type { AttachmentReport } from "../kube/report.ts";
import type { PodArgs } from "../kube/delegate.ts";
import type { TransportFailure } from "../kube/errors.ts";

/** Where the daemon listens unless configured otherwise. */
export const DEFAULT_DAEMON_SOCKET = "/run/hydra/daemon.sock";

/** Longest wait for a whole invocation in the daemon (`daemonExec`), unless `daemonExecTimeout` says. */
export const DEFAULT_CNI_EXEC_TIMEOUT_S = 240;

/** Reads one object: a pod, a NAD, a legacy Network or a Node, by API path. */
export interface GetRequest {
  op: "get";
  path: string;
  /** For pods: the UID the caller expects (the daemon waits briefly for its cache to catch up). */
  uid?: string;
  /** How long the caller waits; the daemon answers within it. */
  timeoutMs?: number;
}

/** Creates an object; only Events on pods are accepted. Answered once queued. */
export interface CreateRequest {
  op: "create";
  path: string;
  body: unknown;
}

/** Hands over what ADD attached, for the daemon to write on the pod and retry until done. */
export interface ReportRequest {
  op: "report";
  pod: PodArgs;
  reports: AttachmentReport[];
  /** Normal Events to record on the pod (AddedInterface). */
  events?: { reason: string; message: string }[];
}

/** Liveness probe of the socket. */
export interface PingRequest {
  op: "ping";
}

/** The cluster-IPAM plugin a `cni` request may name beside the meta-CNI. */
export const POOL_PLUGIN = "hydra-pool";

/**
 * Built-in interface plugins a runtime may exec on their own (the first
 * plugin of a network's list) whose `daemonExec` invocations the daemon
 * runs, as it runs the meta-CNI's. Only ADD and DEL are handed over, and an
 * ADD only when it carries no `prevResult`: the daemon runs the node's copy
 * of the conf and is never handed a previous plugin's result, so a CHECK
 * (which compares against one) or an ADD chained after another plugin runs
 * in the exec'd process.
 */
export const STANDALONE_PLUGINS: ReadonlySet<string> = new Set([
  "hydra-bridge",
  "hydra-macvlan",
  "hydra-vxlan",
  "hydra-host-device",
]);

/** The commands a caller may hand to the daemon: the attachment commands, nothing else. */
export type CniCommand = "ADD" | "DEL" | "CHECK";

/**
 * Runs one CNI invocation of a plugin the node's own configuration names
 * (`daemonExec`). The caller supplies only the invocation's arguments and
 * which node conf it was invoked for: the daemon reads that conf itself
 * from the node's conf folder, runs only plugin types it knows, with its own
 * plugin folders, and answers with `{stdout, code}` as the exec would end.
 * GC, STATUS, VERSION and `CNI_NETNS_OVERRIDE` have no field: they are
 * never run for a caller.
 */
export interface CniRequest {
  op: "cni";
  command: CniCommand;
  containerId: string;
  /** CNI_NETNS; "" only on a DEL (the namespace is gone). */
  netns: string;
  ifName: string;
  /** CNI_ARGS ("K=V;K2=V2"). */
  cniArgs: string;
  /** The conf's `name`: the node conf (in the daemon's conf folder) the runtime invoked for. */
  network: string;
  /**
   * The plugin `type` invoked: "hydra" (the meta-CNI, run on the node conf
   * the daemon reads) or "hydra-pool" (cluster IPAM, run on `config`).
   */
  plugin: string;
  /**
   * {@link confDigest} of the conf the runtime handed over. The daemon runs
   * only when its own copy of the node conf has the same digest. Only for
   * "hydra".
   */
  confDigest?: string;
  /**
   * Only for "hydra-pool": the config its interface plugin handed it (an
   * object whose `ipam.type` is "hydra-pool"). It only allocates addresses
   * from the cluster's pools, which the peer check leaves to root anyway;
   * it never names a plugin, path or namespace the daemon acts in.
   */
  config?: Record<string, unknown>;
  /** The runtime's capability arguments; the daemon keeps those the node conf declares. */
  runtimeConfig?: Record<string, unknown>;
  /** How long the caller waits; past it the daemon cancels the invocation and rolls it back. */
  timeoutMs?: number;
}

/** Anything the daemon is asked. */
export type DaemonRequest = GetRequest | CreateRequest | ReportRequest | PingRequest | CniRequest;

/** A successful answer. */
export interface DaemonOk {
  ok: true;
  body?: unknown;
}

/** A failed answer: an API status (`status`, `reason`) or no answer from the API (`transport`). */
export interface DaemonFailure {
  ok: false;
  status?: number;
  reason?: string;
  transport?: TransportFailure;
  message: string;
}

/** Any answer. */
export type DaemonResponse = DaemonOk | DaemonFailure;

/**
 * Refusals of a `cni` request after which the exec'd side runs the
 * invocation itself, with its own conf and privileges: the daemon does not
 * serve this caller, does not have the conf the runtime used (another conf
 * folder, a conf just rewritten), or finds the request malformed (the
 * plugin path then answers with the CNI error the runtime expects).
 */
export const RUN_LOCALLY_REASONS: ReadonlySet<string> = new Set([
  "Forbidden",
  "ConfNotFound",
  "ConfMismatch",
  "BadRequest",
]);

/** The longest request or answer line, bytes (a `report` with a few results is a few KiB). */
export const MAX_LINE_BYTES = 256 * 1024;

const encoder = new TextEncoder();

/** One message as its line on the wire. */
export function encodeLine(message: DaemonRequest | DaemonResponse): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n");
}

/** A line longer than the splitter's limit. */
export class LineTooLongError extends Error {
  constructor(maxBytes: number) {
    super(`line longer than ${maxBytes} bytes`);
    this.name = "LineTooLongError";
  }
}

/**
 * Splits a byte stream into lines: feed chunks, take the complete lines.
 * Bytes are kept as bytes until a line is complete (a peer that sends a
 * long line in small pieces costs its length, not a string per piece), and
 * a line longer than `maxBytes` is an error: a peer that never ends a line
 * must not grow memory without bound.
 */
export function lineSplitter(maxBytes = MAX_LINE_BYTES) {
  const decoder = new TextDecoder();
  let parts: Uint8Array[] = [];
  let held = 0;
  const take = (tail: Uint8Array): string => {
    const line = new Uint8Array(held + tail.length);
    let at = 0;
    for (const p of parts) {
      line.set(p, at);
      at += p.length;
    }
    line.set(tail, at);
    parts = [];
    held = 0;
    return decoder.decode(line);
  };
  return {
    /** Adds a chunk; returns the lines it completed. */
    push(chunk: Uint8Array): string[] {
      const lines: string[] = [];
      let rest = chunk;
      let nl: number;
      while ((nl = rest.indexOf(10)) >= 0) {
        if (held + nl > maxBytes) throw new LineTooLongError(maxBytes);
        lines.push(take(rest.subarray(0, nl)));
        rest = rest.subarray(nl + 1);
      }
      if (rest.length) {
        if (held + rest.length > maxBytes) throw new LineTooLongError(maxBytes);
        // A copy: the caller reuses its read buffer.
        parts.push(rest.slice());
        held += rest.length;
      }
      return lines;
    },
    /** Bytes of the line not complete yet. */
    get pending(): number {
      return held;
    },
  };
}

/** Keys a runtime adds to a plugin's conf per invocation (not part of the node's conf). */
function runtimeKey(key: string): boolean {
  return key === "runtimeConfig" || key === "prevResult" || key === "capabilities" ||
    key.startsWith("cni.dev/");
}

/** JSON with object keys sorted at every level: one text per value, whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/**
 * The digest of a plugin conf as a runtime hands it over (`name` and
 * `cniVersion` of its list included), leaving out what the runtime adds per
 * invocation (`runtimeConfig`, `prevResult`, `cni.dev/*`) and
 * `capabilities` (which runtimes drop or keep): "sha256:<hex>". Two confs
 * with the same digest run the same way.
 */
export async function confDigest(conf: Record<string, unknown>): Promise<string> {
  const kept: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(conf)) if (!runtimeKey(k)) kept[k] = v;
  const hash = await crypto.subtle.digest("SHA-256", encoder.encode(canonicalJson(kept)));
  return `sha256:${
    Array.from(new Uint8Array(hash), (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
}
