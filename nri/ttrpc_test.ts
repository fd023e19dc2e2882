import assert from "node:assert/strict";
import { ConnectionClosedError, ProtocolError, StatusCode, TtrpcStatusError } from "./errors.ts";
import {
  ConfigureResponseSchema,
  encodeNri,
  PLUGIN_SERVICE,
  RegisterPluginRequestSchema,
  RUNTIME_SERVICE,
} from "./messages.ts";
import { createDemux, frameMessage } from "./mux.ts";
import { concat, hex, toHex } from "./testdata.ts";
import {
  createMessageParser,
  decodeRequest,
  decodeResponse,
  encodeMessage,
  encodeRequest,
  encodeResponse,
  MessageType,
  type ParsedMessage,
  TTRPC_MAX_DATA,
} from "./ttrpc.ts";
import { createTtrpcClient } from "./ttrpc_client.ts";
import { createTtrpcServer, type RequestContext, type UnaryHandler } from "./ttrpc_server.ts";

// The worked example: RegisterPlugin{plugin_name:"ts-net", plugin_idx:"10"},
// first request on conn 2. Each layer is written out by hand below.
const INNER = "0a06 74732d6e6574 1202 3130";
const REQUEST = "0a1c" + toHex(new TextEncoder().encode("nri.pkg.api.v1alpha1.Runtime")) +
  "120e" + toHex(new TextEncoder().encode("RegisterPlugin")) + "1a0c" + INNER;
const FRAME = "00000002 00000046 | 0000003c 00000001 01 00 |" + REQUEST;

function parseAll(bytes: Uint8Array): ParsedMessage[] {
  const out: ParsedMessage[] = [];
  const parser = createMessageParser((m) => out.push(m));
  parser.push(bytes);
  assert.equal(parser.pendingBytes, 0);
  return out;
}

Deno.test("worked example: RegisterPlugin request is byte-exact through every layer", () => {
  const inner = encodeNri(RegisterPluginRequestSchema, { pluginName: "ts-net", pluginIdx: "10" });
  assert.equal(toHex(inner), toHex(hex(INNER)));
  const request = encodeRequest({
    service: RUNTIME_SERVICE,
    method: "RegisterPlugin",
    payload: inner,
    timeoutNano: 0n,
    metadata: [],
  });
  assert.equal(request.length, 60);
  assert.equal(toHex(request), toHex(hex(REQUEST)));
  const frame = frameMessage(2, encodeMessage(1, MessageType.REQUEST, 0, request));
  assert.equal(frame.length, 78);
  assert.equal(toHex(frame), toHex(hex(FRAME)));
});

Deno.test("worked example: a 5 s deadline appends 20 80 e4 97 d0 12 and grows the lengths", () => {
  const inner = encodeNri(RegisterPluginRequestSchema, { pluginName: "ts-net", pluginIdx: "10" });
  const request = encodeRequest({
    service: RUNTIME_SERVICE,
    method: "RegisterPlugin",
    payload: inner,
    timeoutNano: 5_000_000_000n,
    metadata: [],
  });
  assert.equal(toHex(request), toHex(hex(REQUEST + "2080e497d012")));
  const frame = frameMessage(2, encodeMessage(1, MessageType.REQUEST, 0, request));
  assert.equal(toHex(frame.subarray(0, 12)), "000000020000004c00000042");
  assert.equal(decodeRequest(request).timeoutNano, 5_000_000_000n);
});

Deno.test("worked example: the client sends the frame and accepts the Go server's empty OK reply", async () => {
  const sent: Uint8Array[] = [];
  const client = createTtrpcClient((m) => {
    sent.push(frameMessage(2, m));
    return Promise.resolve();
  });
  const inner = encodeNri(RegisterPluginRequestSchema, { pluginName: "ts-net", pluginIdx: "10" });
  const answer = client.call(RUNTIME_SERVICE, "RegisterPlugin", inner);
  assert.equal(toHex(sent[0]), toHex(hex(FRAME)));
  const parser = createMessageParser(client.receive);
  createDemux(new Map([[2, parser.push]])).push(hex("00000002 0000000a | 00000000 00000001 02 00"));
  assert.equal((await answer).length, 0);
  assert.equal(client.pending, 0);
});

Deno.test("worked example: ConfigureResponse{events:7} reply on conn 1 and the status bodies", async () => {
  const sent: Uint8Array[] = [];
  const configure: UnaryHandler = () =>
    Promise.resolve(encodeNri(ConfigureResponseSchema, { events: 0x7 }));
  const boom: UnaryHandler = () => Promise.reject(new Error("boom"));
  const server = createTtrpcServer(
    (m) => {
      sent.push(frameMessage(1, m));
      return Promise.resolve();
    },
    new Map([[PLUGIN_SERVICE, new Map([["Configure", configure], ["Boom", boom]])]]),
  );
  const request = (streamId: number, method: string) => ({
    header: { length: 0, streamId, type: MessageType.REQUEST, flags: 0 },
    data: encodeRequest({
      service: PLUGIN_SERVICE,
      method,
      payload: new Uint8Array(0),
      timeoutNano: 0n,
      metadata: [],
    }),
  });
  server.receive(request(1, "Configure"));
  server.receive(request(3, "Boom"));
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(
    toHex(sent[0]),
    toHex(hex("00000001 0000000e | 00000004 00000001 02 00 | 12021007")),
  );
  assert.equal(toHex(sent[1].subarray(18)), toHex(hex("0a08 0802 1204 626f6f6d")));
  assert.equal(
    toHex(
      encodeResponse({
        status: { code: 12, message: "", details: [] },
        payload: new Uint8Array(0),
      }),
    ),
    "0a02080c",
  );
});

Deno.test("responses: missing status, an empty status and code 0 all mean OK", () => {
  assert.equal(decodeResponse(new Uint8Array(0)).status, undefined);
  assert.equal(decodeResponse(hex("0a00")).status?.code, 0);
  const withPayload = decodeResponse(hex("0a00 1202 1007"));
  assert.equal(toHex(withPayload.payload), "1007");
  const err = decodeResponse(hex("0a08 0802 1204 626f6f6d"));
  assert.deepEqual(err.status, { code: 2, message: "boom", details: [] });
});

Deno.test("request round trip keeps metadata, deadline and payload; unknown fields are skipped", () => {
  const req = {
    service: "s",
    method: "m",
    payload: hex("0102"),
    timeoutNano: 2_000_000_000n,
    metadata: [{ key: "traceparent", value: "00-ab-cd-01" }, { key: "", value: "" }],
  };
  assert.deepEqual(decodeRequest(encodeRequest(req)), req);
  // field 9 varint, field 10 fixed64, field 11 bytes, field 12 fixed32, field 13 group
  const extra = hex("4801 5100000000000000ff 5a0161 6501020304 6b 0801 6c");
  assert.deepEqual(decodeRequest(concat(encodeRequest(req), extra)), req);
});

Deno.test("message parser: oversized data is skipped and reported with its stream id", () => {
  const out: ParsedMessage[] = [];
  const parser = createMessageParser((m) => out.push(m), 8);
  parser.push(hex("00000009 00000007 01 00"));
  parser.push(new Uint8Array(9));
  parser.push(encodeMessage(9, MessageType.REQUEST, 0, hex("0a00")));
  assert.equal(out.length, 2);
  assert.equal(out[0].data, undefined);
  assert.equal(out[0].header.streamId, 7);
  assert.equal(toHex(out[1].data!), "0a00");
  assert.throws(() => encodeMessage(1, 1, 0, new Uint8Array(TTRPC_MAX_DATA + 1)), ProtocolError);
});

function clientHarness() {
  const sent: ParsedMessage[] = [];
  const client = createTtrpcClient((m) => {
    sent.push(...parseAll(m));
    return Promise.resolve();
  });
  const reply = (streamId: number, body: Uint8Array, type: number = MessageType.RESPONSE) =>
    client.receive({ header: { length: body.length, streamId, type, flags: 0 }, data: body });
  return { client, sent, reply };
}

Deno.test("client: odd increasing stream ids, answers matched by stream id, errors as status", async () => {
  const { client, sent, reply } = clientHarness();
  const a = client.call("svc", "A", hex("01"));
  const b = client.call("svc", "B", hex("02"));
  const c = client.call("svc", "C", hex("03"));
  assert.deepEqual(sent.map((m) => m.header.streamId), [1, 3, 5]);
  assert.ok(sent.every((m) => m.header.type === MessageType.REQUEST && m.header.flags === 0));
  reply(3, encodeResponse({ payload: hex("bb") }));
  reply(1, encodeResponse({ status: { code: 9, message: "nope", details: [] }, payload: hex("") }));
  reply(5, hex("ff")); // not a Response
  reply(7, encodeResponse({ payload: hex("") })); // nobody asked: ignored
  assert.equal(toHex(await b), "bb");
  await assert.rejects(
    a,
    (e) => e instanceof TtrpcStatusError && e.code === 9 && /nope/.test(e.message),
  );
  await assert.rejects(c, ProtocolError);
  assert.equal(client.pending, 0);
});

Deno.test("client: timeout rejects with DEADLINE_EXCEEDED and sends timeout_nano", async () => {
  const { client, sent, reply } = clientHarness();
  const call = client.call("svc", "Slow", hex(""), { timeoutMs: 5 });
  assert.equal(decodeRequest(sent[0].data!).timeoutNano, 5_000_000n);
  await assert.rejects(
    call,
    (e) => e instanceof TtrpcStatusError && e.code === StatusCode.DEADLINE_EXCEEDED,
  );
  reply(1, encodeResponse({ payload: hex("") })); // late answer is dropped quietly
  assert.equal(client.pending, 0);
});

Deno.test("client: oversized answers fail the call; close fails pending and later calls", async () => {
  const { client } = clientHarness();
  const big = client.call("svc", "Big", hex(""));
  client.receive({ header: { length: TTRPC_MAX_DATA + 1, streamId: 1, type: 2, flags: 0 } });
  await assert.rejects(
    big,
    (e) => e instanceof TtrpcStatusError && e.code === StatusCode.RESOURCE_EXHAUSTED,
  );
  const pending = client.call("svc", "Never", hex(""));
  client.close(new Error("trunk gone"));
  await assert.rejects(pending, ConnectionClosedError);
  await assert.rejects(client.call("svc", "After", hex("")), ConnectionClosedError);
});

function serverHarness(handlers: Record<string, UnaryHandler>) {
  const answers: ParsedMessage[] = [];
  const server = createTtrpcServer(
    (m) => {
      answers.push(...parseAll(m));
      return Promise.resolve();
    },
    new Map([["svc", new Map(Object.entries(handlers))]]),
  );
  const send = (streamId: number, data: Uint8Array, type: number = MessageType.REQUEST) =>
    server.receive({ header: { length: data.length, streamId, type, flags: 0 }, data });
  const req = (method: string, payload = hex(""), timeoutNano = 0n, service = "svc") =>
    encodeRequest({ service, method, payload, timeoutNano, metadata: [] });
  const settle = () => new Promise((r) => setTimeout(r, 0));
  const responseOf = (streamId: number) => {
    const m = answers.find((a) => a.header.streamId === streamId);
    assert.ok(m, `answer on stream ${streamId}`);
    assert.equal(m.header.type, MessageType.RESPONSE);
    return decodeResponse(m.data!);
  };
  const statusOf = (streamId: number) => responseOf(streamId).status;
  return { server, send, req, settle, statusOf, responseOf, answers };
}

Deno.test("server: dispatch, unknown service/method, handler errors and status codes", async () => {
  let seen: RequestContext | undefined;
  const h = serverHarness({
    Echo: (p, ctx) => {
      seen = ctx;
      return Promise.resolve(p);
    },
    Fail: () => Promise.reject(new TtrpcStatusError(StatusCode.FAILED_PRECONDITION, "not ready")),
    Throw: () => {
      throw new Error("sync throw");
    },
    Garbage: () => Promise.reject(new ProtocolError("protobuf", "bad payload")),
  });
  h.send(1, h.req("Echo", hex("abcd"), 2_000_000_000n));
  h.send(3, h.req("Nope"));
  h.send(5, h.req("Echo", hex(""), 0n, "other"));
  h.send(7, h.req("Fail"));
  h.send(9, h.req("Throw"));
  h.send(11, h.req("constructor"));
  h.send(13, h.req("Garbage"));
  await h.settle();
  assert.equal(h.statusOf(1), undefined);
  assert.equal(toHex(h.responseOf(1).payload), "abcd");
  assert.ok(seen && Math.abs(seen.deadline! - seen.receivedAt - 2000) < 1e-6);
  assert.deepEqual(h.statusOf(3), { code: 12, message: "method Nope", details: [] });
  assert.deepEqual(h.statusOf(5), { code: 12, message: "service other", details: [] });
  assert.deepEqual(h.statusOf(7), { code: 9, message: "not ready", details: [] });
  assert.deepEqual(h.statusOf(9), { code: 2, message: "sync throw", details: [] });
  assert.equal(h.statusOf(11)?.code, 12);
  assert.equal(h.statusOf(13)?.code, StatusCode.INVALID_ARGUMENT);
  assert.equal(h.server.inflight, 0);
});

Deno.test("server: bad stream ids, data messages, garbage and oversized requests get INVALID_ARGUMENT or RESOURCE_EXHAUSTED", async () => {
  const h = serverHarness({ Echo: (p) => Promise.resolve(p) });
  h.send(2, h.req("Echo")); // even
  h.send(5, h.req("Echo"));
  h.send(3, h.req("Echo")); // not increasing
  h.send(7, hex("0a05 01"), MessageType.REQUEST); // truncated protobuf
  h.send(9, hex(""), MessageType.DATA);
  h.send(11, hex(""), 0x7f); // unknown type: ignored
  h.server.receive({ header: { length: TTRPC_MAX_DATA + 1, streamId: 13, type: 1, flags: 0 } });
  await h.settle();
  assert.equal(h.statusOf(2)?.code, StatusCode.INVALID_ARGUMENT);
  assert.equal(h.statusOf(5), undefined);
  assert.equal(h.statusOf(3)?.code, StatusCode.INVALID_ARGUMENT);
  assert.equal(h.statusOf(7)?.code, StatusCode.INVALID_ARGUMENT);
  assert.equal(h.statusOf(9)?.code, StatusCode.INVALID_ARGUMENT);
  assert.ok(!h.answers.some((a) => a.header.streamId === 11));
  assert.equal(h.statusOf(13)?.code, StatusCode.RESOURCE_EXHAUSTED);
});

Deno.test("server: answers after close are dropped", async () => {
  let release!: () => void;
  const h = serverHarness({
    Wait: () => new Promise<Uint8Array>((r) => release = () => r(hex(""))),
  });
  h.send(1, h.req("Wait"));
  h.server.close();
  release();
  await h.settle();
  assert.equal(h.answers.length, 0);
});
