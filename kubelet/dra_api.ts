/**
 * The DRA node service a kubelet plugin serves (`DRAPlugin`, k8s.io/kubelet
 * pkg/apis/dra/v1 and v1beta1, whose messages are identical):
 * NodePrepareResources and NodeUnprepareResources, each for a batch of
 * ResourceClaims, answered per claim UID.
 *
 * @module
 */

import type { Codec, UnaryMethod } from "./grpc.ts";
import {
  type BinaryReader,
  type BinaryWriter,
  decodeFields,
  encode,
  WireType,
  writeMessage,
  writeString,
  writeStrings,
} from "./wire.ts";

/** gRPC service names of the DRA API versions kubelet 1.34 speaks, newest first. */
export const DRA_SERVICES = {
  v1: "k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin",
  v1beta1: "k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin",
} as const;

/** What a plugin lists in PluginInfo.supported_versions for each version. */
export const DRA_SUPPORTED_VERSIONS = ["v1.DRAPlugin", "v1beta1.DRAPlugin"];

/** A claim the kubelet names (all fields are required by the API). */
export interface ClaimRef {
  namespace: string;
  uid: string;
  name: string;
}

/** One prepared device. */
export interface PreparedDevice {
  /** Requests of the claim this device serves; empty: all. */
  requestNames: string[];
  poolName: string;
  deviceName: string;
  /** CDI device ids the runtime should inject (none for network devices). */
  cdiDeviceIds: string[];
}

/** Outcome of one claim: its devices, or an error (then devices are ignored). */
export interface PrepareResult {
  devices: PreparedDevice[];
  error: string;
}

/** NodePrepareResourcesRequest / NodeUnprepareResourcesRequest. */
export interface ClaimsRequest {
  claims: ClaimRef[];
}

/** NodePrepareResourcesResponse: claim UID → result. */
export interface PrepareResponse {
  claims: Record<string, PrepareResult>;
}

/** NodeUnprepareResourcesResponse: claim UID → error ("" when done). */
export interface UnprepareResponse {
  claims: Record<string, { error: string }>;
}

function decodeClaim(bytes: Uint8Array): ClaimRef {
  const c: ClaimRef = { namespace: "", uid: "", name: "" };
  decodeFields(bytes, "Claim", (field, wt, r) => {
    if (wt !== WireType.LengthDelimited) return false;
    if (field === 1) c.namespace = r.string();
    else if (field === 2) c.uid = r.string();
    else if (field === 3) c.name = r.string();
    else return false;
    return true;
  });
  return c;
}

/** Codec of the request of both methods (1 repeated Claim). */
export const claimsRequestCodec: Codec<ClaimsRequest> = {
  encode: (req) =>
    encode((w) => {
      for (const c of req.claims) {
        writeMessage(
          w,
          1,
          encode((cw) => {
            writeString(cw, 1, c.namespace);
            writeString(cw, 2, c.uid);
            writeString(cw, 3, c.name);
          }),
        );
      }
    }),
  decode(bytes) {
    const claims: ClaimRef[] = [];
    decodeFields(bytes, "claims request", (field, wt, r) => {
      if (field !== 1 || wt !== WireType.LengthDelimited) return false;
      claims.push(decodeClaim(r.bytes()));
      return true;
    });
    return { claims };
  },
};

function encodeDevice(d: PreparedDevice): Uint8Array {
  return encode((w) => {
    writeStrings(w, 1, d.requestNames);
    writeString(w, 2, d.poolName);
    writeString(w, 3, d.deviceName);
    writeStrings(w, 4, d.cdiDeviceIds);
  });
}

function decodeDevice(bytes: Uint8Array): PreparedDevice {
  const d: PreparedDevice = { requestNames: [], poolName: "", deviceName: "", cdiDeviceIds: [] };
  decodeFields(bytes, "Device", (field, wt, r) => {
    if (wt !== WireType.LengthDelimited) return false;
    if (field === 1) d.requestNames.push(r.string());
    else if (field === 2) d.poolName = r.string();
    else if (field === 3) d.deviceName = r.string();
    else if (field === 4) d.cdiDeviceIds.push(r.string());
    else return false;
    return true;
  });
  return d;
}

/** Encodes map<string, V> as repeated {1 key, 2 value} entries, keys sorted. */
function encodeMap<V>(
  w: BinaryWriter,
  map: Record<string, V>,
  value: (v: V) => Uint8Array,
): void {
  for (const key of Object.keys(map).sort()) {
    writeMessage(
      w,
      1,
      encode((e) => {
        writeString(e, 1, key);
        writeMessage(e, 2, value(map[key]));
      }),
    );
  }
}

function decodeMap<V>(
  bytes: Uint8Array,
  what: string,
  value: (bytes: Uint8Array) => V,
  empty: () => V,
): Record<string, V> {
  const out: Record<string, V> = Object.create(null);
  decodeFields(bytes, what, (field, wt, r: BinaryReader) => {
    if (field !== 1 || wt !== WireType.LengthDelimited) return false;
    let key = "";
    let v = empty();
    decodeFields(r.bytes(), `${what} entry`, (f, t, er) => {
      if (t !== WireType.LengthDelimited) return false;
      if (f === 1) key = er.string();
      else if (f === 2) v = value(er.bytes());
      else return false;
      return true;
    });
    out[key] = v;
    return true;
  });
  return out;
}

function decodePrepareResult(bytes: Uint8Array): PrepareResult {
  const res: PrepareResult = { devices: [], error: "" };
  decodeFields(bytes, "NodePrepareResourceResponse", (field, wt, r) => {
    if (wt !== WireType.LengthDelimited) return false;
    if (field === 1) res.devices.push(decodeDevice(r.bytes()));
    else if (field === 2) res.error = r.string();
    else return false;
    return true;
  });
  return res;
}

/** Codec of NodePrepareResourcesResponse. */
export const prepareResponseCodec: Codec<PrepareResponse> = {
  encode: (res) =>
    encode((w) =>
      encodeMap(w, res.claims, (r) =>
        encode((rw) => {
          for (const d of r.devices) writeMessage(rw, 1, encodeDevice(d));
          writeString(rw, 2, r.error);
        }))
    ),
  decode: (bytes) => ({
    claims: decodeMap(bytes, "NodePrepareResourcesResponse", decodePrepareResult, () => ({
      devices: [],
      error: "",
    })),
  }),
};

/** Codec of NodeUnprepareResourcesResponse. */
export const unprepareResponseCodec: Codec<UnprepareResponse> = {
  encode: (res) =>
    encode((w) => encodeMap(w, res.claims, (r) => encode((rw) => writeString(rw, 1, r.error)))),
  decode: (bytes) => ({
    claims: decodeMap(bytes, "NodeUnprepareResourcesResponse", (b) => {
      let error = "";
      decodeFields(b, "NodeUnprepareResourceResponse", (f, t, r) => {
        if (f !== 1 || t !== WireType.LengthDelimited) return false;
        error = r.string();
        return true;
      });
      return { error };
    }, () => ({ error: "" })),
  }),
};

/** The two methods of one DRA service version. */
export interface DraMethods {
  prepare: UnaryMethod<ClaimsRequest, PrepareResponse>;
  unprepare: UnaryMethod<ClaimsRequest, UnprepareResponse>;
}

/** The methods of the DRA service named `service` (one of {@link DRA_SERVICES}). */
export function draMethods(service: string): DraMethods {
  return {
    prepare: {
      service,
      name: "NodePrepareResources",
      request: claimsRequestCodec,
      response: prepareResponseCodec,
    },
    unprepare: {
      service,
      name: "NodeUnprepareResources",
      request: claimsRequestCodec,
      response: unprepareResponseCodec,
    },
  };
}
