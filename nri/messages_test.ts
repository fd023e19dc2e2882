import assert from "node:assert/strict";
import { ProtocolError } from "./errors.ts";
import {
  decodeConfigureRequest,
  decodeConfigureResponse,
  decodeEmpty,
  decodePodSandbox,
  decodePodSandboxRequest,
  decodeRegisterPluginRequest,
  decodeStateChangeEvent,
  decodeSynchronizeRequest,
  decodeSynchronizeResponse,
  encodeConfigureRequest,
  encodeConfigureResponse,
  encodeEmpty,
  encodePodSandbox,
  encodePodSandboxRequest,
  encodeRegisterPluginRequest,
  encodeStateChangeEvent,
  encodeSynchronizeRequest,
  encodeSynchronizeResponse,
  eventMask,
  netnsPathOf,
  NriEvent,
  POD_NETWORK_EVENTS,
} from "./messages.ts";
import { concat, hex, samplePod, toHex } from "./testdata.ts";

// A Container as the runtime would send it: id, pod_sandbox_id, name, state,
// a label, args, pid and a created_at timestamp; hydra never decodes it.
const CONTAINER = hex(
  "0a03 637472 1203 706f64 1a04 6d61696e 2003 2a08 0a01 61 1203 627574" +
    "3a02 7368 6011 70c0c4c2b4b02f",
);

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
  const pod = decodePodSandbox(bytes);
  assert.equal(pod.id, "id");
  assert.equal(pod.name, "n");
  assert.deepEqual(pod.labels, { a: "web" });
  assert.equal(pod.runtimeHandler, "rc");
  assert.deepEqual(pod.linux?.namespaces, [{ type: "network", path: "/n/x" }]);
  assert.equal(pod.pid, 4242);
  assert.deepEqual(pod.ips, ["10.0.0.5"]);
  assert.equal(netnsPathOf(pod), "/n/x");
});

Deno.test("PodSandbox round trip, resources and unknown fields skipped", () => {
  const pod = samplePod();
  assert.deepEqual(decodePodSandbox(encodePodSandbox(pod)), pod);
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
  const decoded = decodePodSandbox(bytes);
  assert.equal(decoded.id, "x");
  assert.equal(netnsPathOf(decoded), "/run/ns");
});

Deno.test("PodSandbox maps: empty keys and values, repeated keys (last wins), __proto__ stays data", () => {
  const pod = decodePodSandbox(
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
  const reg = { pluginName: "hydra", pluginIdx: "10", nriVersion: "v0.12.0" };
  assert.deepEqual(decodeRegisterPluginRequest(encodeRegisterPluginRequest(reg)), reg);
  const cfg = {
    config: "",
    runtimeName: "containerd",
    runtimeVersion: "v2.3.7",
    registrationTimeoutMs: 5000,
    requestTimeoutMs: 2000,
    nriVersion: "v0.12.0",
  };
  assert.deepEqual(decodeConfigureRequest(encodeConfigureRequest(cfg)), cfg);
  // A v0.3 runtime sends neither timeouts nor a version.
  const old = decodeConfigureRequest(hex("120a 636f6e7461696e657264 1a06 312e372e3130"));
  assert.equal(old.runtimeName, "containerd");
  assert.equal(old.runtimeVersion, "1.7.10");
  assert.equal(old.requestTimeoutMs, 0);
  assert.equal(toHex(encodeConfigureResponse({ events: 7 })), "1007");
  assert.deepEqual(decodeConfigureResponse(hex("1007")), { events: 7 });
  assert.deepEqual(decodeConfigureResponse(hex("0805 1007")), { events: 7 }); // no field 1
});

Deno.test("SynchronizeRequest/Response round trip; containers stay opaque", () => {
  const req = {
    pods: [samplePod(), samplePod({ id: "b", name: "web-1" })],
    containers: [CONTAINER],
    more: true,
  };
  assert.deepEqual(decodeSynchronizeRequest(encodeSynchronizeRequest(req)), req);
  assert.deepEqual(decodeSynchronizeRequest(new Uint8Array(0)), {
    pods: [],
    containers: [],
    more: false,
  });
  assert.equal(toHex(encodeSynchronizeResponse({ update: [], more: true })), "1001");
  assert.equal(encodeSynchronizeResponse({ update: [], more: false }).length, 0);
  const rsp = { update: [hex("0a0163")], more: false };
  assert.deepEqual(decodeSynchronizeResponse(encodeSynchronizeResponse(rsp)), rsp);
});

Deno.test("StateChangeEvent: event 1 with the pod in field 2 and a container in field 3", () => {
  const evt = { event: NriEvent.RUN_POD_SANDBOX, pod: samplePod(), container: CONTAINER };
  const bytes = encodeStateChangeEvent(evt);
  assert.equal(toHex(bytes.subarray(0, 3)), "080112");
  assert.deepEqual(decodeStateChangeEvent(bytes), evt);
  assert.deepEqual(decodeStateChangeEvent(hex("0803")), { event: 3 });
});

Deno.test("Run/Stop/RemovePodSandboxRequest: the pod is field 1; Empty is zero bytes", () => {
  const pod = samplePod();
  const bytes = encodePodSandboxRequest({ pod });
  assert.equal(bytes[0], 0x0a);
  assert.deepEqual(decodePodSandboxRequest(bytes), { pod });
  assert.deepEqual(decodePodSandboxRequest(new Uint8Array(0)), {});
  assert.equal(encodeEmpty().length, 0);
  assert.deepEqual(decodeEmpty(hex("0801 1200")), {});
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
  for (const bytes of bad) {
    for (
      const decode of [
        decodePodSandbox,
        decodeSynchronizeRequest,
        decodeStateChangeEvent,
        decodeEmpty,
      ]
    ) {
      assert.throws(() => decode(bytes), ProtocolError, `${decode.name}(${toHex(bytes)})`);
    }
  }
  // Nested garbage: a pod whose linux section is truncated.
  assert.throws(() => decodePodSandboxRequest(hex("0a03 4205 2a")), ProtocolError);
});
