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
 * ```
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

/**
 * Runs a whole meta-CNI invocation in the daemon (`daemonExec`): its CNI_*
 * variables and stdin; answered with `{stdout, code}` as the exec would end.
 */
export interface CniRequest {
  op: "cni";
  env: Record<string, string>;
  stdin: string;
  /** The built-in to run: "hydra" (the meta-CNI, the default) or "hydra-pool". */
  plugin?: string;
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

const encoder = new TextEncoder();

/** One message as its line on the wire. */
export function encodeLine(message: DaemonRequest | DaemonResponse): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n");
}

/**
 * Splits a byte stream into lines: feed chunks, take the complete lines.
 * Lines longer than `maxBytes` are an error (a peer that never ends a line
 * must not grow memory without bound).
 */
export function lineSplitter(maxBytes = 4 * 1024 * 1024) {
  const decoder = new TextDecoder();
  let pending = "";
  return {
    /** Adds a chunk; returns the lines it completed. */
    push(chunk: Uint8Array): string[] {
      pending += decoder.decode(chunk, { stream: true });
      const lines: string[] = [];
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        lines.push(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
      if (pending.length > maxBytes) throw new Error(`line longer than ${maxBytes} bytes`);
      return lines;
    },
  };
}
