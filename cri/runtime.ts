/**
 * The few calls of the CRI runtime service (`runtime.v1.RuntimeService`,
 * k8s.io/cri-api) hydra makes of the node's runtime, and their messages:
 *
 * - ListPodSandbox, filtered by the pod's UID label and the READY state:
 *   which sandbox of a pod is running now;
 * - PodSandboxStatus with `verbose`: the sandbox's state, and its network
 *   namespace path from the runtime's extra information (containerd and
 *   CRI-O put the OCI runtime spec there, whose `linux.namespaces` names it).
 *
 * Unary gRPC over the runtime's unix socket (kubelet/grpc.ts), codecs
 * written by hand on the kubelet APIs' wire helpers (kubelet/wire.ts) with
 * the field numbers of k8s.io/cri-api's `api.proto`. Decoding follows proto3
 * as the runtimes' Go code does: unknown fields are skipped, repeated fields
 * and map entries append, the last scalar wins.
 *
 * @module
 */

import {
  type BinaryReader,
  type BinaryWriter,
  decodeFields,
  encode,
  WireError,
  WireType,
} from "../kubelet/wire.ts";
import { dialUnix, GrpcCode, GrpcStatusError, type UnaryMethod } from "../kubelet/grpc.ts";

const SERVICE = "runtime.v1.RuntimeService";

/** The label a kubelet puts on every sandbox of a pod: the pod's UID. */
export const POD_UID_LABEL = "io.kubernetes.pod.uid";

/** A pod sandbox as the runtime lists it. */
export interface PodSandboxInfo {
  id: string;
  /** The pod's name, namespace and UID, and which attempt of the pod's sandbox this is. */
  name: string;
  namespace: string;
  uid: string;
  attempt: number;
  ready: boolean;
  labels: Record<string, string>;
}

/** What PodSandboxStatus says of one sandbox. */
export interface PodSandboxDetail {
  id: string;
  ready: boolean;
  /** The network namespace's path; undefined for a host-network sandbox or when not told. */
  netns?: string;
}

/** Malformed bytes from the runtime (the kubelet APIs' decoding error). */
export { WireError as CriDecodeError };

type Visit = (field: number, wireType: WireType, r: BinaryReader) => boolean;

const fieldsOf: (bytes: Uint8Array, what: string, visit: Visit) => void = decodeFields;

const LEN = WireType.LengthDelimited;

/** One `map<string, string>` entry (key 1, value 2) into `into`. */
function mapEntry(bytes: Uint8Array, into: Record<string, string>, what: string): void {
  let key = "";
  let value = "";
  fieldsOf(bytes, what, (f, t, r) => {
    if (t !== LEN || (f !== 1 && f !== 2)) return false;
    if (f === 1) key = r.string();
    else value = r.string();
    return true;
  });
  into[key] = value;
}

function writeMapEntry(w: BinaryWriter, field: number, key: string, value: string): void {
  w.tag(field, LEN).bytes(encode((e) => e.tag(1, LEN).string(key).tag(2, LEN).string(value)));
}

/** ListPodSandboxRequest: a filter by labels and, when `ready`, the READY state. */
export interface ListFilter {
  labels?: Record<string, string>;
  ready?: boolean;
}

/** Encodes ListPodSandboxRequest{filter: PodSandboxFilter{state, label_selector}}. */
export function encodeListRequest(f: ListFilter): Uint8Array {
  const filter = encode((w) => {
    // SANDBOX_READY is 0: the state wrapper is present with its default value.
    if (f.ready) w.tag(2, LEN).bytes(new Uint8Array());
    for (const [k, v] of Object.entries(f.labels ?? {})) writeMapEntry(w, 3, k, v);
  });
  return encode((w) => w.tag(1, LEN).bytes(filter));
}

function decodeMetadata(bytes: Uint8Array, into: PodSandboxInfo): void {
  fieldsOf(bytes, "PodSandboxMetadata", (f, t, r) => {
    if (f === 4 && t === WireType.Varint) into.attempt = r.uint32();
    else if (t !== LEN || f < 1 || f > 3) return false;
    else if (f === 1) into.name = r.string();
    else if (f === 2) into.uid = r.string();
    else into.namespace = r.string();
    return true;
  });
}

function decodeSandbox(bytes: Uint8Array): PodSandboxInfo {
  const s: PodSandboxInfo = {
    id: "",
    name: "",
    namespace: "",
    uid: "",
    attempt: 0,
    ready: true,
    labels: {},
  };
  fieldsOf(bytes, "PodSandbox", (f, t, r) => {
    if (f === 3 && t === WireType.Varint) s.ready = r.int32() === 0;
    else if (t !== LEN) return false;
    else if (f === 1) s.id = r.string();
    else if (f === 2) decodeMetadata(r.bytes(), s);
    else if (f === 5) mapEntry(r.bytes(), s.labels, "PodSandbox.labels");
    else return false;
    return true;
  });
  return s;
}

/** Decodes ListPodSandboxResponse{items}. */
export function decodeListResponse(bytes: Uint8Array): PodSandboxInfo[] {
  const out: PodSandboxInfo[] = [];
  fieldsOf(bytes, "ListPodSandboxResponse", (f, t, r) => {
    if (f !== 1 || t !== LEN) return false;
    out.push(decodeSandbox(r.bytes()));
    return true;
  });
  return out;
}

/** Encodes PodSandboxStatusRequest{pod_sandbox_id, verbose: true}. */
export function encodeStatusRequest(id: string): Uint8Array {
  return encode((w) => w.tag(1, LEN).string(id).tag(2, WireType.Varint).bool(true));
}

/** The network namespace path in a runtime's verbose `info` document, if it names one. */
export function netnsFromInfo(info: string | undefined): string | undefined {
  if (!info) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(info);
  } catch {
    return undefined;
  }
  const spaces = (doc as { runtimeSpec?: { linux?: { namespaces?: unknown } } })?.runtimeSpec
    ?.linux?.namespaces;
  if (!Array.isArray(spaces)) return undefined;
  const net = spaces.find((n) => n?.type === "network");
  return typeof net?.path === "string" && net.path.startsWith("/") ? net.path : undefined;
}

/** Decodes PodSandboxStatusResponse{status{id, state}, info}. */
export function decodeStatusResponse(bytes: Uint8Array): PodSandboxDetail {
  const d: PodSandboxDetail = { id: "", ready: true };
  const info: Record<string, string> = {};
  fieldsOf(bytes, "PodSandboxStatusResponse", (f, t, r) => {
    if (t !== LEN) return false;
    if (f === 2) {
      mapEntry(r.bytes(), info, "PodSandboxStatusResponse.info");
      return true;
    }
    if (f !== 1) return false;
    fieldsOf(r.bytes(), "PodSandboxStatus", (sf, st, sr) => {
      if (sf === 1 && st === LEN) d.id = sr.string();
      else if (sf === 3 && st === WireType.Varint) d.ready = sr.int32() === 0;
      else return false;
      return true;
    });
    return true;
  });
  const netns = netnsFromInfo(info.info);
  if (netns) d.netns = netns;
  return d;
}

/** A client encodes requests and decodes answers only. */
function clientSide<T>(what: string): (value: T) => never {
  return () => {
    throw new Error(`${what} is not a client's to handle`);
  };
}

const LIST: UnaryMethod<ListFilter, PodSandboxInfo[]> = {
  service: SERVICE,
  name: "ListPodSandbox",
  request: { encode: encodeListRequest, decode: clientSide("decoding a request") },
  response: { encode: clientSide("encoding an answer"), decode: decodeListResponse },
};

const STATUS: UnaryMethod<string, PodSandboxDetail> = {
  service: SERVICE,
  name: "PodSandboxStatus",
  request: { encode: encodeStatusRequest, decode: clientSide("decoding a request") },
  response: { encode: clientSide("encoding an answer"), decode: decodeStatusResponse },
};

/** The runtime, as hydra asks it. */
export interface RuntimeClient {
  /** The sandboxes matching `filter`. */
  listPodSandboxes(filter: ListFilter, timeoutMs: number): Promise<PodSandboxInfo[]>;
  /** One sandbox's state and network namespace; undefined when the runtime does not know it. */
  podSandboxStatus(id: string, timeoutMs: number): Promise<PodSandboxDetail | undefined>;
  close(): void;
}

/** A client of the CRI runtime service on the unix socket `path`. */
export function createRuntimeClient(path: string): RuntimeClient {
  const conn = dialUnix(path);
  return {
    listPodSandboxes: (filter, timeoutMs) => conn.call(LIST, filter, timeoutMs),
    async podSandboxStatus(id, timeoutMs) {
      try {
        return await conn.call(STATUS, id, timeoutMs);
      } catch (err) {
        if (err instanceof GrpcStatusError && err.code === GrpcCode.NOT_FOUND) return undefined;
        throw err;
      }
    },
    close: () => conn.close(),
  };
}

/** A pod's running sandbox: its id and network namespace path. */
export interface ReadySandbox {
  id: string;
  netns: string;
}

/**
 * The pod's sandbox that is READY now and has a network namespace of its
 * own, as the runtime says; undefined when there is none (not started yet,
 * stopped, gone, or on the host's network). With several ready (a runtime
 * replacing one), the latest attempt. `known`, the answer of an earlier
 * call, spares the status call while that sandbox is still the ready one.
 */
export async function readySandboxOf(
  client: RuntimeClient,
  podUid: string,
  timeoutMs: number,
  known?: ReadySandbox,
): Promise<ReadySandbox | undefined> {
  const end = Date.now() + timeoutMs;
  const listed = await client.listPodSandboxes(
    { labels: { [POD_UID_LABEL]: podUid }, ready: true },
    timeoutMs,
  );
  const mine = listed.filter((s) => s.ready && s.uid === podUid);
  mine.sort((a, b) => b.attempt - a.attempt);
  const found = mine[0];
  if (!found) return undefined;
  // A sandbox keeps its namespace for life: one told before need not be asked again.
  if (known?.id === found.id) return known;
  const detail = await client.podSandboxStatus(found.id, Math.max(1, end - Date.now()));
  if (!detail?.ready || !detail.netns) return undefined;
  return { id: found.id, netns: detail.netns };
}
