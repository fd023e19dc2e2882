import assert from "node:assert/strict";
import { ProtocolError } from "./errors.ts";
import {
  ConfigureRequestSchema,
  ConfigureResponseSchema,
  decodeNri,
  EmptySchema,
  encodeNri,
  eventMask,
  netnsPathOf,
  NriEvent,
  POD_NETWORK_EVENTS,
  PodSandboxSchema,
  RegisterPluginRequestSchema,
  RunPodSandboxRequestSchema,
  StateChangeEventSchema,
  SynchronizeRequestSchema,
  SynchronizeResponseSchema,
} from "./messages.ts";
import { concat, hex, samplePod, toHex } from "./testdata.ts";

// A Container as the runtime would send it: id, pod_sandbox_id, name, state,
// a label, args, pid and a created_at timestamp; hydra never decodes it.
const CONTAINER = hex(
  "0a03 637472 1203 706f64 1a04 6d61696e 2003 2a08 0a01 61 1203 627574" +
    "3a02 7368 6011 70c0c4c2b4b02f",
);

const decodePod = (bytes: Uint8Array) => decodeNri(PodSandboxSchema, bytes);

Deno.test("events mask: RUN|STOP|REMOVE_POD_SANDBOX is 0x7 and bits are 1 << (event-1)", () => {
  assert.equal(POD_NETWORK_EVENTS, 0x7);
  assert.equal(eventMask(NriEvent.VALIDATE_CONTAINER_ADJUSTMENT), 0x2000);
  assert.equal(eventMask(NriEvent.CREATE_CONTAINER, NriEvent.REMOVE_CONTAINER), 0x408);
  assert.throws(() => eventMask(NriEvent.UNKNOWN), RangeError);
});

Deno.test("PodSandbox: hand-encoded bytes decode field by field", () => {
  const bytes = hex(
    "0a02 6964" + // 1 id "id"
      "1201 6e" + // 2 name "n"
      "2a08 0a01 61 1203 776562" + // 5 labels {a: web}
      "3a02 7263" + // 7 runtime_handler "rc" (field 7, wire 2 = 0x3a)
      "4211 2a0f 0a07 6e6574776f726b 1204 2f6e2f78" + // 8 linux{5 ns{network, /n/x}}
      "4892 21" + // 9 pid 4242
      "5208 31302e302e302e35", // 10 ips "10.0.0.5"
  );
  const pod = decodePod(bytes);
  assert.equal(pod.id, "id");
  assert.equal(pod.name, "n");
  assert.deepEqual(pod.labels, { a: "web" });
  assert.equal(pod.runtimeHandler, "rc");
  assert.deepEqual(
    pod.linux?.namespaces.map(({ type, path }) => ({ type, path })),
    [{ type: "network", path: "/n/x" }],
  );
  assert.equal(pod.pid, 4242);
  assert.deepEqual(pod.ips, ["10.0.0.5"]);
  assert.equal(netnsPathOf(pod), "/n/x");
});

Deno.test("PodSandbox: encodes field by field as the runtime's Go code reads it", () => {
  const pod = samplePod({
    labels: { a: "web" },
    annotations: {},
    runtimeHandler: "",
    uid: "",
    namespace: "",
    linux: { namespaces: [{ type: "network", path: "/n/x" }] },
    ips: ["10.0.0.5"],
    id: "id",
    name: "n",
  });
  assert.equal(
    toHex(encodeNri(PodSandboxSchema, pod)),
    toHex(hex(
      "0a02 6964" + // 1 id
        "1201 6e" + // 2 name
        "2a08 0a01 61 1203 776562" + // 5 labels {a: web}
        "4211 2a0f 0a07 6e6574776f726b 1204 2f6e2f78" + // 8 linux{5 ns{network, /n/x}}
        "4892 21" + // 9 pid 4242
        "5208 31302e302e302e35", // 10 ips
    )),
  );
});

Deno.test("PodSandbox round trip, resources and unknown fields skipped", () => {
  const pod = samplePod();
  assert.deepEqual(decodePod(encodeNri(PodSandboxSchema, pod)), pod);
  // LinuxPodSandbox with pod_overhead (1), pod_resources (2) and resources (6)
  // filled, plus a field from a future version, must still yield the namespaces.
  const resources = hex("0a04 0a02 0801"); // LinuxResources{memory{limit}} shape, opaque here
  const linux = concat(
    hex("0a06"),
    resources,
    hex("1206"),
    resources,
    hex("2a12 0a07 6e6574776f726b 1207 2f72756e2f6e73"),
    hex("3206"),
    resources,
    hex("b80601"), // field 103 varint
  );
  const bytes = concat(
    hex("0a01 78"),
    hex("42"),
    Uint8Array.of(linux.length),
    linux,
    hex("f8070a"),
  );
  const decoded = decodePod(bytes);
  assert.equal(decoded.id, "x");
  assert.equal(netnsPathOf(decoded), "/run/ns");
  // Nothing of the skipped parts is kept (it would pin the request's buffer).
  assert.equal(decoded.$unknown, undefined);
  assert.equal(decoded.linux?.$unknown, undefined);
  assert.equal(decoded.linux?.resources?.$unknown, undefined);
});

Deno.test("PodSandbox maps: empty keys and values, repeated keys (last wins), __proto__ stays data", () => {
  const pod = decodePod(
    hex("3200 3204 0a02 6b31 3209 0a02 6b31 1203 763232 320d 0a09 5f5f70726f746f5f5f 1200"),
  );
  assert.equal(pod.annotations[""], "");
  assert.equal(pod.annotations.k1, "v22");
  assert.ok(Object.hasOwn(pod.annotations, "__proto__"));
  assert.equal(Object.getPrototypeOf(pod.annotations), Object.prototype);
});

Deno.test("netnsPathOf: none for host-network pods or a missing linux section", () => {
  assert.equal(netnsPathOf(samplePod({ linux: undefined })), undefined);
  const hostNet = samplePod();
  hostNet.linux!.namespaces = hostNet.linux!.namespaces.filter((ns) => ns.type !== "network");
  assert.equal(netnsPathOf(hostNet), undefined);
  assert.equal(
    netnsPathOf(samplePod()),
    "/var/run/netns/cni-3c1a1d3e-8a0d-4e5c-9d6b-2f1e0a9b8c7d",
  );
});

Deno.test("RegisterPluginRequest and ConfigureRequest/Response round trip", () => {
  const reg = encodeNri(RegisterPluginRequestSchema, {
    pluginName: "hydra",
    pluginIdx: "10",
    NRIVersion: "v0.12.0",
  });
  assert.equal(toHex(reg), "0a056879647261" + "12023130" + "1a0776302e31322e30");
  const back = decodeNri(RegisterPluginRequestSchema, reg);
  assert.deepEqual([back.pluginName, back.pluginIdx, back.NRIVersion], ["hydra", "10", "v0.12.0"]);
  const cfg = decodeNri(
    ConfigureRequestSchema,
    encodeNri(ConfigureRequestSchema, {
      runtimeName: "containerd",
      runtimeVersion: "v2.3.7",
      registrationTimeout: 5000n,
      requestTimeout: 2000n,
      NRIVersion: "v0.12.0",
    }),
  );
  assert.equal(cfg.runtimeName, "containerd");
  assert.equal(cfg.registrationTimeout, 5000n);
  assert.equal(cfg.requestTimeout, 2000n);
  assert.equal(cfg.NRIVersion, "v0.12.0");
  // A v0.3 runtime sends neither timeouts nor a version.
  const old = decodeNri(ConfigureRequestSchema, hex("120a 636f6e7461696e657264 1a06 312e372e3130"));
  assert.equal(old.runtimeName, "containerd");
  assert.equal(old.runtimeVersion, "1.7.10");
  assert.equal(old.requestTimeout, 0n);
  assert.equal(toHex(encodeNri(ConfigureResponseSchema, { events: 7 })), "1007");
  assert.equal(decodeNri(ConfigureResponseSchema, hex("1007")).events, 7);
  assert.equal(decodeNri(ConfigureResponseSchema, hex("0805 1007")).events, 7); // no field 1
});

Deno.test("SynchronizeRequest/Response round trip; containers are counted, never read", () => {
  const pods = [samplePod(), samplePod({ id: "b", name: "web-1" })];
  const bytes = concat(
    encodeNri(SynchronizeRequestSchema, { pods, more: true }),
    hex("12"),
    Uint8Array.of(CONTAINER.length),
    CONTAINER,
  );
  const req = decodeNri(SynchronizeRequestSchema, bytes);
  assert.deepEqual(req.pods, pods);
  assert.equal(req.more, true);
  assert.equal(req.containers.length, 1);
  assert.deepEqual(Object.keys(req.containers[0]), ["$typeName"]);
  const empty = decodeNri(SynchronizeRequestSchema, new Uint8Array(0));
  assert.deepEqual([empty.pods, empty.containers, empty.more], [[], [], false]);
  assert.equal(toHex(encodeNri(SynchronizeResponseSchema, { more: true })), "1001");
  assert.equal(encodeNri(SynchronizeResponseSchema).length, 0);
  assert.equal(decodeNri(SynchronizeResponseSchema, hex("0a00 0a00 1001")).update.length, 2);
});

Deno.test("StateChangeEvent: event 1 with the pod in field 2 and a container in field 3", () => {
  const pod = samplePod();
  const bytes = encodeNri(StateChangeEventSchema, {
    event: NriEvent.RUN_POD_SANDBOX,
    pod,
    container: {},
  });
  assert.equal(toHex(bytes.subarray(0, 3)), "080112");
  assert.equal(toHex(bytes.subarray(-2)), "1a00");
  const evt = decodeNri(StateChangeEventSchema, bytes);
  assert.equal(evt.event, NriEvent.RUN_POD_SANDBOX);
  assert.deepEqual(evt.pod, pod);
  assert.ok(evt.container);
  const bare = decodeNri(StateChangeEventSchema, hex("0803"));
  assert.deepEqual([bare.event, bare.pod, bare.container], [3, undefined, undefined]);
  // An event from a later NRI version is still an event number.
  assert.equal(decodeNri(StateChangeEventSchema, hex("0828")).event, 40);
});

Deno.test("Run/Stop/RemovePodSandboxRequest: the pod is field 1; Empty is zero bytes", () => {
  const pod = samplePod();
  const bytes = encodeNri(RunPodSandboxRequestSchema, { pod });
  assert.equal(bytes[0], 0x0a);
  assert.deepEqual(decodeNri(RunPodSandboxRequestSchema, bytes).pod, pod);
  assert.equal(decodeNri(RunPodSandboxRequestSchema, new Uint8Array(0)).pod, undefined);
  assert.equal(encodeNri(EmptySchema).length, 0);
  assert.deepEqual(Object.keys(decodeNri(EmptySchema, hex("0801 1200"))), ["$typeName"]);
});

Deno.test("decoders reject malformed bytes with ProtocolError only", () => {
  const bad = [
    hex("0a05 6869"), // length past the end
    hex("08"), // varint cut short
    hex("08ffffffffffffffffffff01"), // varint too long
    hex("0f"), // wire type 7
    hex("00"), // field 0
    hex("0b 0801"), // group without end
    hex("0c"), // end group without start
    hex("0d 0102"), // fixed32 cut short
  ];
  const schemas = [PodSandboxSchema, SynchronizeRequestSchema, StateChangeEventSchema, EmptySchema];
  for (const bytes of bad) {
    for (const schema of schemas) {
      assert.throws(
        () => decodeNri(schema, bytes),
        ProtocolError,
        `${schema.name}(${toHex(bytes)})`,
      );
    }
  }
  // Nested garbage: a pod whose linux section is truncated, or runs past the pod.
  assert.throws(() => decodeNri(RunPodSandboxRequestSchema, hex("0a03 4205 2a")), ProtocolError);
  assert.throws(
    () => decodeNri(RunPodSandboxRequestSchema, hex("0a02 4204 2a02 0a00")),
    ProtocolError,
  );
  // A known field with another wire type than its own: the pod's id as a varint.
  assert.throws(() => decodeNri(PodSandboxSchema, hex("0805")), /field 1 \(id\)/);
  // proto3 strings are UTF-8, as the runtime's Go decoder insists too.
  assert.throws(() => decodeNri(PodSandboxSchema, hex("0a02 c328")), ProtocolError);
  // A map entry whose value is not a string.
  assert.throws(() => decodeNri(PodSandboxSchema, hex("2a04 0a01 61 1001")), ProtocolError);
});
