/**
 * The hand-written codecs against the committed .proto files, read by
 * @grpc/proto-loader (protobufjs): what one side encodes, the other decodes
 * to the same values, for every message hydra exchanges with the kubelet.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as loader from "@grpc/proto-loader";
import {
  claimsRequestCodec,
  DRA_SERVICES,
  prepareResponseCodec,
  unprepareResponseCodec,
} from "./dra_api.ts";
import { pluginInfoCodec, registrationStatusCodec } from "./registration.ts";
import { listMethod, resourceMapOf } from "./podresources.ts";
import { decodeFields, WireError } from "./wire.ts";

const PROTO_DIR = new URL("./proto/", import.meta.url).pathname;

type Method = {
  requestSerialize(v: unknown): Buffer;
  requestDeserialize(b: Buffer): Record<string, unknown>;
  responseSerialize(v: unknown): Buffer;
  responseDeserialize(b: Buffer): Record<string, unknown>;
};

function service(file: string, name: string): Record<string, Method> {
  const def = loader.loadSync(`${PROTO_DIR}${file}`, { defaults: true, arrays: true });
  return def[name] as unknown as Record<string, Method>;
}

const bytes = (b: Buffer) => new Uint8Array(b);

for (const [version, name] of Object.entries(DRA_SERVICES)) {
  Deno.test(`dra ${version}: claims request both ways`, () => {
    const m = service(`dra_${version}.proto`, name).NodePrepareResources;
    const req = {
      claims: [
        { namespace: "ns", uid: "u-1", name: "c1" },
        { namespace: "ns2", uid: "u-2", name: "c2" },
      ],
    };
    assert.deepEqual(m.requestDeserialize(Buffer.from(claimsRequestCodec.encode(req))), req);
    assert.deepEqual(claimsRequestCodec.decode(bytes(m.requestSerialize(req))), req);
  });

  Deno.test(`dra ${version}: prepare and unprepare responses both ways`, () => {
    const svc = service(`dra_${version}.proto`, name);
    const res = {
      claims: {
        "u-1": {
          devices: [{
            requestNames: ["nic"],
            poolName: "node-a",
            deviceName: "nic-eth1",
            cdiDeviceIds: [],
          }],
          error: "",
        },
        "u-2": { devices: [], error: 'interface name "eth0" is taken' },
      },
    };
    const theirs = svc.NodePrepareResources.responseDeserialize(
      Buffer.from(prepareResponseCodec.encode(res)),
    );
    assert.deepEqual(JSON.parse(JSON.stringify(theirs)), {
      claims: {
        "u-1": {
          devices: [{
            requestNames: ["nic"],
            poolName: "node-a",
            deviceName: "nic-eth1",
            cdiDeviceIds: [],
          }],
          error: "",
        },
        "u-2": { devices: [], error: 'interface name "eth0" is taken' },
      },
    });
    const ours = prepareResponseCodec.decode(
      bytes(svc.NodePrepareResources.responseSerialize(res)),
    );
    assert.deepEqual({ ...ours.claims }, res.claims);
    const un = { claims: { "u-1": { error: "" }, "u-2": { error: "busy" } } };
    assert.deepEqual(
      {
        ...unprepareResponseCodec.decode(bytes(svc.NodeUnprepareResources.responseSerialize(un)))
          .claims,
      },
      un.claims,
    );
    const back = svc.NodeUnprepareResources.responseDeserialize(
      Buffer.from(unprepareResponseCodec.encode(un)),
    );
    assert.deepEqual(JSON.parse(JSON.stringify(back)), un);
  });
}

Deno.test("pluginregistration: PluginInfo and RegistrationStatus both ways", () => {
  const svc = service("pluginregistration_v1.proto", "pluginregistration.Registration");
  const info = {
    type: "DRAPlugin",
    name: "hydra.clusternet.io",
    endpoint: "/var/lib/kubelet/plugins/hydra.clusternet.io/dra.sock",
    supportedVersions: ["v1.DRAPlugin", "v1beta1.DRAPlugin"],
  };
  assert.deepEqual(
    { ...svc.GetInfo.responseDeserialize(Buffer.from(pluginInfoCodec.encode(info))) },
    info,
  );
  assert.deepEqual(pluginInfoCodec.decode(bytes(svc.GetInfo.responseSerialize(info))), info);
  for (
    const status of [{ pluginRegistered: true, error: "" }, {
      pluginRegistered: false,
      error: "no",
    }]
  ) {
    const m = svc.NotifyRegistrationStatus;
    assert.deepEqual(registrationStatusCodec.decode(bytes(m.requestSerialize(status))), status);
    assert.deepEqual(
      { ...m.requestDeserialize(Buffer.from(registrationStatusCodec.encode(status))) },
      status,
    );
  }
});

Deno.test("podresources: List response decoded, resource map as Multus builds it", () => {
  const svc = service("podresources_v1.proto", "v1.PodResourcesLister");
  const wire = svc.List.responseSerialize({
    podResources: [{
      name: "p",
      namespace: "ns",
      containers: [{
        name: "c",
        devices: [{ resourceName: "example.com/nic", deviceIds: ["dev-b", "dev-a"] }],
        cpuIds: [1, 2],
        dynamicResources: [{
          claimName: "gpu",
          claimNamespace: "ns",
          claimResources: [{
            cdiDevices: [{ name: "vendor.com/gpu=g0" }, { name: "no-equals" }],
            driverName: "d",
            poolName: "p",
            deviceName: "g0",
          }],
        }],
      }, {
        name: "c2",
        devices: [{ resourceName: "example.com/nic", deviceIds: ["dev-c"] }],
      }],
    }, { name: "other", namespace: "ns", containers: [] }],
  });
  const pods = listMethod.response.decode(bytes(wire));
  assert.equal(pods.length, 2);
  assert.equal(pods[0].containers[0].dynamicResources[0].claimResources[0].deviceName, "g0");
  const map = resourceMapOf(pods, "ns", "p");
  assert.deepEqual(map.get("example.com/nic"), ["dev-a", "dev-b", "dev-c"]);
  assert.deepEqual(map.get("gpu"), ["g0"]);
  assert.equal(resourceMapOf(pods, "ns", "absent").size, 0);
  // And back: our encoding reads the same in protobufjs.
  const again = svc.List.responseDeserialize(Buffer.from(listMethod.response.encode(pods)));
  assert.equal(
    (again.podResources as { containers: { devices: { deviceIds: string[] }[] }[] }[])[0]
      .containers[0].devices[0].deviceIds.join(),
    "dev-b,dev-a",
  );
});

Deno.test("wire: truncated and mistyped bytes are a WireError naming the message", () => {
  const good = claimsRequestCodec.encode({ claims: [{ namespace: "a", uid: "b", name: "c" }] });
  assert.throws(() => claimsRequestCodec.decode(good.slice(0, good.length - 1)), WireError);
  assert.throws(
    () => decodeFields(new Uint8Array([0x0a, 0x05, 0x01]), "X", () => false),
    /malformed X/,
  );
  // A known field number with another wire type is skipped, as proto3 says.
  assert.deepEqual(claimsRequestCodec.decode(new Uint8Array([0x08, 0x01])), { claims: [] });
});
