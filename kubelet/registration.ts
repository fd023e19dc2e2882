/**
 * The kubelet's plugin registration API (`pluginregistration.Registration`,
 * k8s.io/kubelet pkg/apis/pluginregistration/v1): a plugin serves it on a
 * socket in the kubelet's `plugins_registry` folder; the kubelet finds the
 * socket, asks GetInfo, and tells the outcome with NotifyRegistrationStatus.
 *
 * @module
 */

import type { Codec, UnaryMethod } from "./grpc.ts";
import { decodeFields, encode, WireType, writeBool, writeString, writeStrings } from "./wire.ts";

/** The gRPC service name (the proto package is `pluginregistration`). */
export const REGISTRATION_SERVICE = "pluginregistration.Registration";

/** The plugin type a DRA driver registers as. */
export const DRA_PLUGIN_TYPE = "DRAPlugin";

/** What a plugin says about itself. */
export interface PluginInfo {
  /** "DRAPlugin", "CSIPlugin", … */
  type: string;
  /** For DRA: the driver name. */
  name: string;
  /** The socket of the plugin's own service. */
  endpoint: string;
  /** For DRA: gRPC services as "<version>.DRAPlugin", most preferred first. */
  supportedVersions: string[];
}

/** The kubelet's verdict. */
export interface RegistrationStatus {
  pluginRegistered: boolean;
  error: string;
}

/** A message without fields (InfoRequest, RegistrationStatusResponse). */
export type Empty = Record<string, never>;

/** Codec of an empty message; unknown fields are skipped. */
export const emptyCodec: Codec<Empty> = {
  encode: () => new Uint8Array(0),
  decode: (bytes) => {
    decodeFields(bytes, "empty message", () => false);
    return {};
  },
};

/** PluginInfo (1 type, 2 name, 3 endpoint, 4 supported_versions). */
export const pluginInfoCodec: Codec<PluginInfo> = {
  encode: (p: PluginInfo) =>
    encode((w) => {
      writeString(w, 1, p.type);
      writeString(w, 2, p.name);
      writeString(w, 3, p.endpoint);
      writeStrings(w, 4, p.supportedVersions);
    }),
  decode(bytes: Uint8Array): PluginInfo {
    const p: PluginInfo = { type: "", name: "", endpoint: "", supportedVersions: [] };
    decodeFields(bytes, "PluginInfo", (field, wt, r) => {
      if (wt !== WireType.LengthDelimited) return false;
      if (field === 1) p.type = r.string();
      else if (field === 2) p.name = r.string();
      else if (field === 3) p.endpoint = r.string();
      else if (field === 4) p.supportedVersions.push(r.string());
      else return false;
      return true;
    });
    return p;
  },
};

/** RegistrationStatus (1 plugin_registered, 2 error). */
export const registrationStatusCodec: Codec<RegistrationStatus> = {
  encode: (s: RegistrationStatus) =>
    encode((w) => {
      writeBool(w, 1, s.pluginRegistered);
      writeString(w, 2, s.error);
    }),
  decode(bytes: Uint8Array): RegistrationStatus {
    const s: RegistrationStatus = { pluginRegistered: false, error: "" };
    decodeFields(bytes, "RegistrationStatus", (field, wt, r) => {
      if (field === 1 && wt === WireType.Varint) s.pluginRegistered = r.bool();
      else if (field === 2 && wt === WireType.LengthDelimited) s.error = r.string();
      else return false;
      return true;
    });
    return s;
  },
};

/** Registration.GetInfo. */
export const getInfoMethod: UnaryMethod<Empty, PluginInfo> = {
  service: REGISTRATION_SERVICE,
  name: "GetInfo",
  request: emptyCodec,
  response: pluginInfoCodec,
};

/** Registration.NotifyRegistrationStatus. */
export const notifyRegistrationStatusMethod: UnaryMethod<RegistrationStatus, Empty> = {
  service: REGISTRATION_SERVICE,
  name: "NotifyRegistrationStatus",
  request: registrationStatusCodec,
  response: emptyCodec,
};
