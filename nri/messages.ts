/**
 * The NRI messages hydra exchanges (proto package `nri.pkg.api.v1alpha1`),
 * encoded and decoded by hand from the field numbers of the NRI API, which
 * are unchanged from NRI v0.2 to v0.12. Parts hydra does not use are kept
 * as raw bytes (containers, container updates) or skipped (resources).
 *
 * Every decoder throws only `ProtocolError` on malformed input.
 *
 * @module
 */

import { type BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { decodeFields, readInt64, writeMessage, writeString } from "./pb.ts";
import { decodePodSandbox, encodePodSandbox, type PodSandbox } from "./pod.ts";

export {
  decodePodSandbox,
  encodePodSandbox,
  type LinuxNamespace,
  type LinuxPodSandbox,
  netnsPathOf,
  type PodSandbox,
} from "./pod.ts";

/** The service the plugin serves on conn 1. */
export const PLUGIN_SERVICE = "nri.pkg.api.v1alpha1.Plugin";

/** The service the runtime serves on conn 2. */
export const RUNTIME_SERVICE = "nri.pkg.api.v1alpha1.Runtime";

/** NRI lifecycle events (the `Event` enum). */
export const NriEvent = {
  UNKNOWN: 0,
  RUN_POD_SANDBOX: 1,
  STOP_POD_SANDBOX: 2,
  REMOVE_POD_SANDBOX: 3,
  CREATE_CONTAINER: 4,
  POST_CREATE_CONTAINER: 5,
  START_CONTAINER: 6,
  POST_START_CONTAINER: 7,
  UPDATE_CONTAINER: 8,
  POST_UPDATE_CONTAINER: 9,
  STOP_CONTAINER: 10,
  REMOVE_CONTAINER: 11,
  UPDATE_POD_SANDBOX: 12,
  POST_UPDATE_POD_SANDBOX: 13,
  VALIDATE_CONTAINER_ADJUSTMENT: 14,
} as const;

/** The subscription mask of a set of events: bit `1 << (event - 1)` each. */
export function eventMask(...events: number[]): number {
  let mask = 0;
  for (const event of events) {
    if (!Number.isInteger(event) || event < 1 || event > 31) {
      throw new RangeError(`no mask bit for NRI event ${event}`);
    }
    mask |= 1 << (event - 1);
  }
  return mask;
}

/**
 * The events a pod-network plugin subscribes to: RUN|STOP|REMOVE_POD_SANDBOX
 * (0x7), valid on every NRI version. Never 0, which means "everything".
 */
export const POD_NETWORK_EVENTS: number = eventMask(
  NriEvent.RUN_POD_SANDBOX,
  NriEvent.STOP_POD_SANDBOX,
  NriEvent.REMOVE_POD_SANDBOX,
);

/** `RegisterPluginRequest`. */
export interface RegisterPluginRequest {
  pluginName: string;
  /** Exactly two ASCII digits. */
  pluginIdx: string;
  /** NRI version the plugin speaks (ignored by runtimes before v0.12). */
  nriVersion: string;
}

/** `ConfigureRequest`; timeouts are 0 when the runtime predates NRI v0.7. */
export interface ConfigureRequest {
  config: string;
  runtimeName: string;
  runtimeVersion: string;
  registrationTimeoutMs: number;
  requestTimeoutMs: number;
  nriVersion: string;
}

/** `ConfigureResponse`. */
export interface ConfigureResponse {
  events: number;
}

/** `SynchronizeRequest`; containers stay encoded. */
export interface SynchronizeRequest {
  pods: PodSandbox[];
  containers: Uint8Array[];
  /** More chunks follow (NRI v0.7+). */
  more: boolean;
}

/** `SynchronizeResponse`; container updates stay encoded. */
export interface SynchronizeResponse {
  update: Uint8Array[];
  more: boolean;
}

/** `StateChangeEvent`; the container stays encoded. */
export interface StateChangeEvent {
  event: number;
  pod?: PodSandbox;
  container?: Uint8Array;
}

/** `RunPodSandboxRequest`, `StopPodSandboxRequest`, `RemovePodSandboxRequest`: {1 pod}. */
export interface PodSandboxRequest {
  pod?: PodSandbox;
}

/** Encodes a `RegisterPluginRequest`. */
export function encodeRegisterPluginRequest(req: RegisterPluginRequest): Uint8Array {
  const w = new BinaryWriter();
  writeString(w, 1, req.pluginName);
  writeString(w, 2, req.pluginIdx);
  writeString(w, 3, req.nriVersion);
  return w.finish();
}

/** Decodes a `RegisterPluginRequest`. */
export function decodeRegisterPluginRequest(bytes: Uint8Array): RegisterPluginRequest {
  const req: RegisterPluginRequest = { pluginName: "", pluginIdx: "", nriVersion: "" };
  decodeFields(bytes, "RegisterPluginRequest", (field, wireType, r) => {
    if (wireType !== WireType.LengthDelimited) return false;
    if (field === 1) req.pluginName = r.string();
    else if (field === 2) req.pluginIdx = r.string();
    else if (field === 3) req.nriVersion = r.string();
    else return false;
    return true;
  });
  return req;
}

/** Encodes a `ConfigureRequest`. */
export function encodeConfigureRequest(req: ConfigureRequest): Uint8Array {
  const w = new BinaryWriter();
  writeString(w, 1, req.config);
  writeString(w, 2, req.runtimeName);
  writeString(w, 3, req.runtimeVersion);
  if (req.registrationTimeoutMs) w.tag(4, WireType.Varint).int64(req.registrationTimeoutMs);
  if (req.requestTimeoutMs) w.tag(5, WireType.Varint).int64(req.requestTimeoutMs);
  writeString(w, 6, req.nriVersion);
  return w.finish();
}

/** Decodes a `ConfigureRequest`. */
export function decodeConfigureRequest(bytes: Uint8Array): ConfigureRequest {
  const req: ConfigureRequest = {
    config: "",
    runtimeName: "",
    runtimeVersion: "",
    registrationTimeoutMs: 0,
    requestTimeoutMs: 0,
    nriVersion: "",
  };
  decodeFields(bytes, "ConfigureRequest", (field, wireType, r) => {
    if (wireType === WireType.Varint && (field === 4 || field === 5)) {
      const ms = Number(readInt64(r));
      if (field === 4) req.registrationTimeoutMs = ms;
      else req.requestTimeoutMs = ms;
      return true;
    }
    if (wireType !== WireType.LengthDelimited) return false;
    if (field === 1) req.config = r.string();
    else if (field === 2) req.runtimeName = r.string();
    else if (field === 3) req.runtimeVersion = r.string();
    else if (field === 6) req.nriVersion = r.string();
    else return false;
    return true;
  });
  return req;
}

/** Encodes a `ConfigureResponse` (events is field 2; there is no field 1). */
export function encodeConfigureResponse(rsp: ConfigureResponse): Uint8Array {
  const w = new BinaryWriter();
  if (rsp.events !== 0) w.tag(2, WireType.Varint).int32(rsp.events);
  return w.finish();
}

/** Decodes a `ConfigureResponse`. */
export function decodeConfigureResponse(bytes: Uint8Array): ConfigureResponse {
  const rsp: ConfigureResponse = { events: 0 };
  decodeFields(bytes, "ConfigureResponse", (field, wireType, r) => {
    if (field !== 2 || wireType !== WireType.Varint) return false;
    rsp.events = r.int32();
    return true;
  });
  return rsp;
}

/** Encodes a `SynchronizeRequest`. */
export function encodeSynchronizeRequest(req: SynchronizeRequest): Uint8Array {
  const w = new BinaryWriter();
  for (const pod of req.pods) writeMessage(w, 1, encodePodSandbox(pod));
  for (const container of req.containers) writeMessage(w, 2, container);
  if (req.more) w.tag(3, WireType.Varint).bool(true);
  return w.finish();
}

/** Decodes a `SynchronizeRequest`. */
export function decodeSynchronizeRequest(bytes: Uint8Array): SynchronizeRequest {
  const req: SynchronizeRequest = { pods: [], containers: [], more: false };
  decodeFields(bytes, "SynchronizeRequest", (field, wireType, r) => {
    if (field === 3 && wireType === WireType.Varint) {
      req.more = r.bool();
      return true;
    }
    if (wireType !== WireType.LengthDelimited) return false;
    if (field === 1) req.pods.push(decodePodSandbox(r.bytes()));
    else if (field === 2) req.containers.push(r.bytes());
    else return false;
    return true;
  });
  return req;
}

/** Encodes a `SynchronizeResponse`. */
export function encodeSynchronizeResponse(rsp: SynchronizeResponse): Uint8Array {
  const w = new BinaryWriter();
  for (const update of rsp.update) writeMessage(w, 1, update);
  if (rsp.more) w.tag(2, WireType.Varint).bool(true);
  return w.finish();
}

/** Decodes a `SynchronizeResponse`. */
export function decodeSynchronizeResponse(bytes: Uint8Array): SynchronizeResponse {
  const rsp: SynchronizeResponse = { update: [], more: false };
  decodeFields(bytes, "SynchronizeResponse", (field, wireType, r) => {
    if (field === 1 && wireType === WireType.LengthDelimited) rsp.update.push(r.bytes());
    else if (field === 2 && wireType === WireType.Varint) rsp.more = r.bool();
    else return false;
    return true;
  });
  return rsp;
}

/** Encodes a `StateChangeEvent` (the pod is field 2 here). */
export function encodeStateChangeEvent(evt: StateChangeEvent): Uint8Array {
  const w = new BinaryWriter();
  if (evt.event !== 0) w.tag(1, WireType.Varint).int32(evt.event);
  if (evt.pod) writeMessage(w, 2, encodePodSandbox(evt.pod));
  if (evt.container) writeMessage(w, 3, evt.container);
  return w.finish();
}

/** Decodes a `StateChangeEvent`. */
export function decodeStateChangeEvent(bytes: Uint8Array): StateChangeEvent {
  const evt: StateChangeEvent = { event: NriEvent.UNKNOWN };
  decodeFields(bytes, "StateChangeEvent", (field, wireType, r) => {
    if (field === 1 && wireType === WireType.Varint) evt.event = r.int32();
    else if (field === 2 && wireType === WireType.LengthDelimited) {
      evt.pod = decodePodSandbox(r.bytes());
    } else if (field === 3 && wireType === WireType.LengthDelimited) evt.container = r.bytes();
    else return false;
    return true;
  });
  return evt;
}

/** Encodes a Run/Stop/RemovePodSandboxRequest. */
export function encodePodSandboxRequest(req: PodSandboxRequest): Uint8Array {
  const w = new BinaryWriter();
  if (req.pod) writeMessage(w, 1, encodePodSandbox(req.pod));
  return w.finish();
}

/** Decodes a Run/Stop/RemovePodSandboxRequest. */
export function decodePodSandboxRequest(bytes: Uint8Array): PodSandboxRequest {
  const req: PodSandboxRequest = {};
  decodeFields(bytes, "PodSandboxRequest", (field, wireType, r: BinaryReader) => {
    if (field !== 1 || wireType !== WireType.LengthDelimited) return false;
    req.pod = decodePodSandbox(r.bytes());
    return true;
  });
  return req;
}

/** Encodes `Empty` (and the field-less responses): zero bytes. */
export function encodeEmpty(): Uint8Array {
  return new Uint8Array(0);
}

/** Checks that bytes are a well-formed message; all fields are unknown to `Empty`. */
export function decodeEmpty(bytes: Uint8Array): Record<never, never> {
  decodeFields(bytes, "Empty", () => false);
  return {};
}
