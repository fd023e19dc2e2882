/**
 * The NRI messages hydra exchanges (proto package `nri.pkg.api.v1alpha1`),
 * generated from the trimmed NRI API in `proto/api.proto` (see its README),
 * and how they cross the wire: `decodeNri` checks the bytes strictly and
 * decodes them, `encodeNri` builds and encodes a message from plain fields.
 * Parts hydra does not read (containers, container updates, resources) are
 * skipped when decoding.
 *
 * `decodeNri` throws only `ProtocolError` on malformed input.
 *
 * @module
 */

import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { decodeOrThrow } from "./errors.ts";
import { checkWellFormed } from "./pb.ts";
import { Event, Plugin, Runtime } from "./proto/api_pb.ts";

export { Plugin, Runtime };

export {
  type ConfigureRequest,
  ConfigureRequestSchema,
  type ConfigureResponse,
  ConfigureResponseSchema,
  EmptySchema,
  type RegisterPluginRequest,
  RegisterPluginRequestSchema,
  RemovePodSandboxRequestSchema,
  RunPodSandboxRequestSchema,
  type StateChangeEvent,
  StateChangeEventSchema,
  StopPodSandboxRequestSchema,
  type SynchronizeRequest,
  SynchronizeRequestSchema,
  type SynchronizeResponse,
  SynchronizeResponseSchema,
} from "./proto/api_pb.ts";
export {
  type LinuxNamespace,
  type LinuxPodSandbox,
  netnsPathOf,
  type PodSandbox,
  PodSandboxSchema,
} from "./pod.ts";

/** The service the plugin serves on conn 1. */
export const PLUGIN_SERVICE: string = Plugin.typeName;

/** The service the runtime serves on conn 2. */
export const RUNTIME_SERVICE: string = Runtime.typeName;

/** NRI lifecycle events (the `Event` enum). */
export { Event as NriEvent };

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
  Event.RUN_POD_SANDBOX,
  Event.STOP_POD_SANDBOX,
  Event.REMOVE_POD_SANDBOX,
);

/**
 * Decodes one `schema` message. Fields hydra does not know are dropped, not
 * kept as unknown fields: they would keep the whole request buffer alive for
 * as long as hydra holds the message.
 */
export function decodeNri<Desc extends DescMessage>(
  schema: Desc,
  bytes: Uint8Array,
): MessageShape<Desc> {
  return decodeOrThrow("protobuf", schema.name, () => {
    checkWellFormed(schema, bytes);
    return fromBinary(schema, bytes, { readUnknownFields: false });
  });
}

/** Encodes a `schema` message given as a message or as its fields (absent ones are zero). */
export function encodeNri<Desc extends DescMessage>(
  schema: Desc,
  init: MessageInitShape<Desc> = {} as MessageInitShape<Desc>,
): Uint8Array {
  return toBinary(schema, create(schema, init));
}
