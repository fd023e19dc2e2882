/**
 * Property-based tests of every decoder on hostile input: whatever the bytes
 * and however they are split, decoding either succeeds or throws a
 * `ProtocolError`, and well-formed streams survive any chunking.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { ProtocolError } from "./errors.ts";
import { create, type DescMessage } from "@bufbuild/protobuf";
import {
  ConfigureRequestSchema,
  ConfigureResponseSchema,
  decodeNri,
  EmptySchema,
  encodeNri,
  NriEvent,
  PodSandboxSchema,
  RegisterPluginRequestSchema,
  RunPodSandboxRequestSchema,
  StateChangeEventSchema,
  SynchronizeRequestSchema,
  SynchronizeResponseSchema,
} from "./messages.ts";
import { createDemux, encodeFrame, MUX_HEADER_LENGTH } from "./mux.ts";
import { createPluginService } from "./plugin_service.ts";
import { concat, type PodInit, samplePod } from "./testdata.ts";
import {
  createMessageParser,
  decodeRequest,
  decodeResponse,
  decodeStatus,
  encodeMessage,
  encodeRequest,
  MessageType,
  type ParsedMessage,
} from "./ttrpc.ts";
import { createTtrpcServer } from "./ttrpc_server.ts";

const RUNS = { numRuns: 300 };

/** Runs `fn`, failing the property on anything thrown but a ProtocolError. */
function onlyProtocolErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
  }
}

/** Cuts `bytes` at the given (sorted, deduplicated) points. */
function splitAt(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const cuts = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let from = 0;
  for (const cut of cuts) {
    parts.push(bytes.subarray(from, cut));
    from = cut;
  }
  parts.push(bytes.subarray(from));
  return parts;
}

/** The generated NRI messages hydra decodes, each behind the strict check. */
const NRI_SCHEMAS: DescMessage[] = [
  PodSandboxSchema,
  RegisterPluginRequestSchema,
  ConfigureRequestSchema,
  ConfigureResponseSchema,
  SynchronizeRequestSchema,
  SynchronizeResponseSchema,
  StateChangeEventSchema,
  RunPodSandboxRequestSchema,
  EmptySchema,
];

const DECODERS: [string, (b: Uint8Array) => unknown][] = [
  ["Request", decodeRequest],
  ["Response", decodeResponse],
  ["Status", decodeStatus],
  ...NRI_SCHEMAS.map((schema): [string, (b: Uint8Array) => unknown] => [
    schema.name,
    (bytes) => decodeNri(schema, bytes),
  ]),
];

const VALID: Uint8Array[] = [
  encodeNri(PodSandboxSchema, samplePod()),
  encodeNri(SynchronizeRequestSchema, {
    pods: [samplePod(), samplePod({ id: "b" })],
    containers: [{}],
    more: true,
  }),
  encodeNri(StateChangeEventSchema, { event: NriEvent.STOP_POD_SANDBOX, pod: samplePod() }),
  encodeNri(RunPodSandboxRequestSchema, { pod: samplePod() }),
  encodeNri(ConfigureRequestSchema, {
    config: "x",
    runtimeName: "containerd",
    runtimeVersion: "v2.3.7",
    registrationTimeout: 5000n,
    requestTimeout: 2000n,
    NRIVersion: "v0.12.0",
  }),
  encodeRequest({
    service: "nri.pkg.api.v1alpha1.Plugin",
    method: "RunPodSandbox",
    payload: encodeNri(RunPodSandboxRequestSchema, { pod: samplePod() }),
    timeoutNano: 2_000_000_000n,
    metadata: [{ key: "k", value: "v" }],
  }),
];

Deno.test("fuzz: every message decoder throws nothing but ProtocolError on random bytes", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      for (const [, decode] of DECODERS) onlyProtocolErrors(() => decode(bytes));
    }),
    RUNS,
  );
});

Deno.test("fuzz: truncated and bit-flipped valid messages decode or fail with ProtocolError", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...VALID),
      fc.nat(),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { maxLength: 4 }),
      (valid, cut, flips) => {
        const bytes = valid.slice(0, cut % (valid.length + 1));
        for (const [at, mask] of flips) if (bytes.length) bytes[at % bytes.length] ^= mask;
        for (const [, decode] of DECODERS) onlyProtocolErrors(() => decode(bytes));
      },
    ),
    RUNS,
  );
});

Deno.test("fuzz: demux and ttrpc parser on random bytes in random splits throw only ProtocolError", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 600 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      fc.integer({ min: 0, max: 64 }),
      (bytes, cuts, maxPayload) => {
        const messages: ParsedMessage[] = [];
        const parser = createMessageParser((m) => messages.push(m), 32);
        const demux = createDemux(new Map([[1, parser.push], [2, parser.push]]), { maxPayload });
        onlyProtocolErrors(() => {
          for (const part of splitAt(bytes, cuts)) demux.push(part);
        });
        for (const m of messages) {
          assert.ok(
            m.data === undefined ? m.header.length > 32 : m.data.length === m.header.length,
          );
        }
      },
    ),
    RUNS,
  );
});

Deno.test("fuzz: ttrpc messages split across random frames and chunks arrive intact", () => {
  const message = fc.record({
    streamId: fc.integer({ min: 1, max: 0xffffffff }),
    type: fc.integer({ min: 0, max: 255 }),
    flags: fc.integer({ min: 0, max: 255 }),
    data: fc.uint8Array({ maxLength: 200 }),
  });
  fc.assert(
    fc.property(
      fc.array(message, { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 10 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      (msgs, frameSizes, cuts) => {
        const stream = concat(
          ...msgs.map((m) => encodeMessage(m.streamId, m.type, m.flags, m.data)),
        );
        // Frame the stream with varying frame sizes, noise frames on conn 9 in between.
        const frames: Uint8Array[] = [];
        for (let at = 0, i = 0; at < stream.length; i++) {
          const size = frameSizes[i % frameSizes.length];
          frames.push(encodeFrame(1, stream.subarray(at, at + size)));
          if (i % 3 === 0) frames.push(encodeFrame(9, new Uint8Array(size)));
          at += size;
        }
        const got: ParsedMessage[] = [];
        const parser = createMessageParser((m) => got.push(m));
        const demux = createDemux(new Map([[1, parser.push]]));
        for (const part of splitAt(concat(...frames), cuts)) demux.push(part);
        assert.equal(got.length, msgs.length);
        got.forEach((m, i) => {
          assert.equal(m.header.streamId, msgs[i].streamId);
          assert.equal(m.header.type, msgs[i].type);
          assert.equal(m.header.flags, msgs[i].flags);
          assert.deepEqual(m.data, msgs[i].data);
        });
        assert.equal(demux.pendingHeaderBytes, 0);
        assert.ok(frames.every((f) => f.length >= MUX_HEADER_LENGTH));
      },
    ),
    RUNS,
  );
});

const text = fc.string({ unit: "binary", maxLength: 20 });
const podArb: fc.Arbitrary<PodInit> = fc.record({
  id: text,
  name: text,
  uid: text,
  namespace: text,
  labels: fc.dictionary(text, text, { maxKeys: 4 }),
  annotations: fc.dictionary(text, text, { maxKeys: 4 }),
  runtimeHandler: text,
  linux: fc.option(
    fc.record({
      cgroupParent: text,
      cgroupsPath: text,
      namespaces: fc.array(fc.record({ type: text, path: text }), { maxLength: 4 }),
    }),
    { nil: undefined },
  ),
  pid: fc.integer({ min: 0, max: 0xffffffff }),
  ips: fc.array(text, { maxLength: 3 }),
}, {
  requiredKeys: [
    "id",
    "name",
    "uid",
    "namespace",
    "labels",
    "annotations",
    "runtimeHandler",
    "pid",
    "ips",
  ],
});

Deno.test("fuzz: any PodSandbox survives encode and decode", () => {
  // JSON turns generated null-prototype records into plain objects.
  const plain = (x: unknown) => JSON.parse(JSON.stringify(x));
  fc.assert(
    fc.property(podArb, (init) => {
      const pod = create(PodSandboxSchema, init);
      assert.deepEqual(
        plain(decodeNri(PodSandboxSchema, encodeNri(PodSandboxSchema, pod))),
        plain(pod),
      );
    }),
    RUNS,
  );
});

Deno.test("fuzz: any ConfigureRequest and StateChangeEvent survive encode and decode", () => {
  const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
  fc.assert(
    fc.property(
      fc.record({
        config: text,
        runtimeName: text,
        runtimeVersion: text,
        registrationTimeout: int64,
        requestTimeout: int64,
        NRIVersion: text,
      }),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      (fields, event) => {
        const cfg = create(ConfigureRequestSchema, fields);
        assert.deepEqual(
          decodeNri(ConfigureRequestSchema, encodeNri(ConfigureRequestSchema, cfg)),
          cfg,
        );
        // Event numbers from later NRI versions, even negative ones, stay numbers.
        const evt = create(StateChangeEventSchema, { event, pod: samplePod() });
        assert.deepEqual(
          decodeNri(StateChangeEventSchema, encodeNri(StateChangeEventSchema, evt)),
          evt,
        );
      },
    ),
    RUNS,
  );
});

Deno.test("fuzz: the plugin service answers random requests without throwing", async () => {
  const connection = new AbortController();
  const services = createPluginService({
    hooks: { onRunPodSandbox: () => Promise.resolve() },
    events: 7,
    budgetMarginMs: 10,
    defaultRequestTimeoutMs: 200,
    log: () => {},
    connection: connection.signal,
  });
  const answers: Promise<void>[] = [];
  const server = createTtrpcServer((m) => {
    answers.push(Promise.resolve());
    assert.ok(m.length >= 10);
    return Promise.resolve();
  }, services);
  const methods = [
    "Configure",
    "Synchronize",
    "Shutdown",
    "StateChange",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "CreateContainer",
    "",
  ];
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...methods),
      fc.uint8Array({ maxLength: 200 }),
      async (method, payload) => {
        const data = encodeRequest({
          service: "nri.pkg.api.v1alpha1.Plugin",
          method,
          payload,
          timeoutNano: 0n,
          metadata: [],
        });
        const before = answers.length;
        server.receive({
          header: {
            length: data.length,
            streamId: 2 * before + 1,
            type: MessageType.REQUEST,
            flags: 0,
          },
          data,
        });
        while (server.inflight > 0) await new Promise((r) => setTimeout(r, 1));
        assert.equal(answers.length, before + 1);
      },
    ),
    { numRuns: 150 },
  );
  connection.abort();
});
