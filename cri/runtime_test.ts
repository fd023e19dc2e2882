import assert from "node:assert/strict";
import { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  CriDecodeError,
  decodeListResponse,
  decodeStatusResponse,
  encodeListRequest,
  encodeStatusRequest,
  netnsFromInfo,
} from "./runtime.ts";

const LEN = WireType.LengthDelimited;

function entry(key: string, value: string): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, LEN).string(key);
  w.tag(2, LEN).string(value);
  return w.finish();
}

/** A PodSandbox as a runtime encodes it (with a field hydra does not know). */
function sandbox(id: string, uid: string, state: number, attempt: number): Uint8Array {
  const meta = new BinaryWriter();
  meta.tag(1, LEN).string("web-0").tag(2, LEN).string(uid).tag(3, LEN).string("ns");
  meta.tag(4, WireType.Varint).uint32(attempt);
  const w = new BinaryWriter();
  w.tag(1, LEN).string(id);
  w.tag(2, LEN).bytes(meta.finish());
  w.tag(3, WireType.Varint).int32(state);
  w.tag(4, WireType.Varint).int64(1700000000000000000n);
  w.tag(5, LEN).bytes(entry("io.kubernetes.pod.uid", uid));
  w.tag(7, LEN).string("runc");
  return w.finish();
}

Deno.test("cri: ListPodSandbox asks by label and READY state", () => {
  const r = new BinaryReader(encodeListRequest({ labels: { a: "b" }, ready: true }));
  const [field] = r.tag();
  assert.equal(field, 1);
  const filter = new BinaryReader(r.bytes());
  const seen: string[] = [];
  while (filter.pos < filter.len) {
    const [f] = filter.tag();
    const body = new BinaryReader(filter.bytes());
    if (f === 2) seen.push(`state:${body.len}`);
    if (f === 3) {
      body.tag();
      const k = body.string();
      body.tag();
      seen.push(`label:${k}=${body.string()}`);
    }
  }
  assert.deepEqual(seen, ["state:0", "label:a=b"]);
  assert.equal(encodeListRequest({}).length, 2, "no filter fields: an empty filter");
});

Deno.test("cri: sandboxes decoded, unknown fields skipped", () => {
  const w = new BinaryWriter();
  w.tag(1, LEN).bytes(sandbox("abc", "u1", 0, 2));
  w.tag(1, LEN).bytes(sandbox("def", "u1", 1, 1));
  w.tag(9, LEN).string("from a newer runtime");
  assert.deepEqual(decodeListResponse(w.finish()), [
    {
      id: "abc",
      name: "web-0",
      namespace: "ns",
      uid: "u1",
      attempt: 2,
      ready: true,
      labels: { "io.kubernetes.pod.uid": "u1" },
    },
    {
      id: "def",
      name: "web-0",
      namespace: "ns",
      uid: "u1",
      attempt: 1,
      ready: false,
      labels: { "io.kubernetes.pod.uid": "u1" },
    },
  ]);
  assert.throws(() => decodeListResponse(new Uint8Array([0x0a, 0x05, 0x01])), CriDecodeError);
});

Deno.test("cri: PodSandboxStatus names the namespace from the verbose info", () => {
  const req = new BinaryReader(encodeStatusRequest("abc"));
  req.tag();
  assert.equal(req.string(), "abc");
  assert.deepEqual(req.tag(), [2, WireType.Varint]);
  assert.equal(req.bool(), true);

  const status = new BinaryWriter();
  status.tag(1, LEN).string("abc").tag(3, WireType.Varint).int32(0);
  const info = JSON.stringify({
    pid: 42,
    runtimeSpec: {
      linux: {
        namespaces: [{ type: "pid" }, { type: "network", path: "/var/run/netns/cni-1" }],
      },
    },
  });
  const w = new BinaryWriter();
  w.tag(1, LEN).bytes(status.finish());
  w.tag(2, LEN).bytes(entry("info", info));
  assert.deepEqual(decodeStatusResponse(w.finish()), {
    id: "abc",
    ready: true,
    netns: "/var/run/netns/cni-1",
  });
});

Deno.test("cri: a namespace is only what the runtime spec names as an absolute path", () => {
  const spec = (namespaces: unknown) => JSON.stringify({ runtimeSpec: { linux: { namespaces } } });
  assert.equal(netnsFromInfo(undefined), undefined);
  assert.equal(netnsFromInfo("not json"), undefined);
  assert.equal(netnsFromInfo(spec([{ type: "network" }])), undefined, "host network");
  assert.equal(netnsFromInfo(spec([{ type: "network", path: "netns/x" }])), undefined);
  assert.equal(netnsFromInfo(spec("network")), undefined);
  assert.equal(
    netnsFromInfo(spec([{ type: "network", path: "/proc/7/ns/net" }])),
    "/proc/7/ns/net",
  );
});
