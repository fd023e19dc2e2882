/**
 * A stand-in for the runtime side of NRI, for what a real containerd does
 * not produce (containerd_test.ts covers everything it does): it listens on
 * a unix socket, serves `Runtime.RegisterPlugin` on conn 2 and calls the
 * plugin on conn 1 the way containerd does, but lets a test split
 * Synchronize, call unsubscribed methods, pick request deadlines, and write
 * raw, deliberately broken bytes. It records every message the plugin sends
 * on conn 1 so tests can look at answers to raw requests.
 *
 * @module
 */

import { join } from "node:path";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  ConfigureRequestSchema,
  ConfigureResponseSchema,
  decodeNri,
  encodeNri,
  PLUGIN_SERVICE,
  type PodSandbox,
  type RegisterPluginRequest,
  RegisterPluginRequestSchema,
  RUNTIME_SERVICE,
  SynchronizeRequestSchema,
  type SynchronizeResponse,
  SynchronizeResponseSchema,
} from "../../nri/messages.ts";
import {
  createDemux,
  frameMessage,
  PLUGIN_SERVICE_CONN,
  RUNTIME_SERVICE_CONN,
} from "../../nri/mux.ts";
import { transportFromConn } from "../../nri/transport.ts";
import { createMessageParser, type ParsedMessage } from "../../nri/ttrpc.ts";
import { createTtrpcClient } from "../../nri/ttrpc_client.ts";
import { createTtrpcServer, type UnaryHandler } from "../../nri/ttrpc_server.ts";

/** One plugin connection as the runtime sees it. */
export interface FakeConnection {
  /** The plugin's RegisterPlugin request. */
  registered: Promise<RegisterPluginRequest>;
  /** Calls `Plugin.<method>` on conn 1; rejects on error status or timeout. */
  call(method: string, payload: Uint8Array, timeoutMs?: number): Promise<Uint8Array>;
  /** Writes raw bytes to the socket. */
  raw(bytes: Uint8Array): Promise<void>;
  /** Resolves with the next message on conn 1 for `streamId` not yet claimed. */
  answer(streamId: number): Promise<ParsedMessage>;
  /** Resolves when the connection is gone (closed by either side). */
  ended: Promise<void>;
  /** Closes the connection (as a runtime restart does). */
  close(): void;
}

/** A listening fake runtime. */
export interface FakeRuntime {
  socketPath: string;
  /** The next plugin connection. */
  accept(): Promise<FakeConnection>;
  /** Stops listening. */
  close(): void;
}

/** Starts listening on `<dir>/nri.sock`. */
export function startFakeRuntime(dir: string): FakeRuntime {
  const socketPath = join(dir, "nri.sock");
  const listener = Deno.listen({ transport: "unix", path: socketPath });
  return {
    socketPath,
    async accept() {
      return wrap(await listener.accept());
    },
    close() {
      try {
        listener.close();
      } catch {
        // already closed
      }
    },
  };
}

function wrap(conn: Deno.Conn): FakeConnection {
  const transport = transportFromConn(conn);
  const sender = (connId: number) => (m: Uint8Array) => transport.write(frameMessage(connId, m));
  let registeredNow!: (req: RegisterPluginRequest) => void;
  const registered = new Promise<RegisterPluginRequest>((r) => registeredNow = r);
  const register: UnaryHandler = (payload) => {
    registeredNow(decodeNri(RegisterPluginRequestSchema, payload));
    return Promise.resolve(new Uint8Array(0));
  };
  const server = createTtrpcServer(
    sender(RUNTIME_SERVICE_CONN),
    new Map([[RUNTIME_SERVICE, new Map([["RegisterPlugin", register]])]]),
  );
  const client = createTtrpcClient(sender(PLUGIN_SERVICE_CONN));
  const unclaimed: ParsedMessage[] = [];
  const waiting = new Map<number, (m: ParsedMessage) => void>();
  const toPlugin = createMessageParser((m) => {
    const waiter = waiting.get(m.header.streamId);
    waiting.delete(m.header.streamId);
    if (waiter) waiter(m);
    else unclaimed.push(m);
    client.receive(m);
  });
  const toRuntime = createMessageParser(server.receive);
  const demux = createDemux(
    new Map([[PLUGIN_SERVICE_CONN, toPlugin.push], [RUNTIME_SERVICE_CONN, toRuntime.push]]),
  );
  const ended = (async () => {
    try {
      for await (const chunk of transport.chunks) demux.push(chunk);
    } finally {
      client.close();
      server.close();
      transport.close();
    }
  })();

  return {
    registered,
    call: (method, payload, timeoutMs) =>
      client.call(PLUGIN_SERVICE, method, payload, { timeoutMs }),
    raw: (bytes) => transport.write(bytes),
    answer(streamId) {
      const at = unclaimed.findIndex((m) => m.header.streamId === streamId);
      if (at >= 0) return Promise.resolve(unclaimed.splice(at, 1)[0]);
      return new Promise((resolve) => waiting.set(streamId, resolve));
    },
    ended,
    close: () => transport.close(),
  };
}

/** What a handshake learned. */
export interface Handshake {
  registration: RegisterPluginRequest;
  events: number;
  sync: SynchronizeResponse[];
}

/**
 * Runs the start of a connection as containerd does: waits for
 * RegisterPlugin, sends Configure, then Synchronize with `syncChunks` (each
 * but the last marked `more`).
 */
export async function handshake(
  conn: FakeConnection,
  configure: MessageInitShape<typeof ConfigureRequestSchema> = {},
  syncChunks: PodSandbox[][] = [[]],
): Promise<Handshake> {
  const registration = await conn.registered;
  const requestTimeoutMs = Number(configure.requestTimeout ?? 2000n);
  const cfg = decodeNri(
    ConfigureResponseSchema,
    await conn.call(
      "Configure",
      encodeNri(ConfigureRequestSchema, {
        runtimeName: "fake-runtime",
        runtimeVersion: "v0.0.0",
        registrationTimeout: 5000n,
        requestTimeout: BigInt(requestTimeoutMs),
        NRIVersion: "v0.12.0",
        ...configure,
      }),
      requestTimeoutMs,
    ),
  );
  const sync: SynchronizeResponse[] = [];
  for (let i = 0; i < syncChunks.length; i++) {
    const more = i < syncChunks.length - 1;
    const payload = encodeNri(SynchronizeRequestSchema, { pods: syncChunks[i], more });
    const answer = await conn.call("Synchronize", payload, requestTimeoutMs);
    sync.push(decodeNri(SynchronizeResponseSchema, answer));
  }
  return { registration, events: cfg.events, sync };
}
