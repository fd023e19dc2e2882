/**
 * Unary gRPC over unix sockets, the way the kubelet talks to its plugins
 * and serves its local APIs, on @grpc/grpc-js. Messages are encoded by the
 * small codecs beside this module (no .proto files are read at run time).
 *
 * - {@link serveUnix}: a server on a socket path (a stale socket file is
 *   replaced; the socket is made 0600, the kubelet is root).
 * - {@link dialUnix}: a client with a deadline on every call.
 *
 * A handler that throws {@link GrpcStatusError} answers with its code;
 * anything else is INTERNAL with the error's message.
 *
 * The gRPC library is loaded on first use only: the meta-CNI imports this
 * module on its exec path (a NAD naming a device resource) and must not
 * pay for loading it otherwise.
 *
 * @module
 */

import type * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";
import { settlesWithin } from "../pkg/async.ts";

type Grpc = typeof grpc;
let loaded: Promise<Grpc> | undefined;

/** The gRPC library, loaded once. */
function grpcLibrary(): Promise<Grpc> {
  loaded ??= import("@grpc/grpc-js");
  return loaded;
}

/** Encodes and decodes one message type. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** One unary RPC: `/<service>/<name>`. */
export interface UnaryMethod<Req, Res> {
  service: string;
  name: string;
  request: Codec<Req>;
  response: Codec<Res>;
}

/** gRPC status codes hydra answers or expects. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** A call that ended with a non-OK status. */
export class GrpcStatusError extends Error {
  readonly code: number;
  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GrpcStatusError";
    this.code = code;
  }
}

/** A handler of one method. */
export type UnaryHandler<Req, Res> = (request: Req) => Promise<Res>;

/** A method bound to its handler, for {@link serveUnix}. */
export interface Binding {
  definition: grpc.MethodDefinition<unknown, unknown>;
  service: string;
  name: string;
  handle: (request: unknown) => Promise<unknown>;
}

function definition<Req, Res>(m: UnaryMethod<Req, Res>): grpc.MethodDefinition<Req, Res> {
  return {
    path: `/${m.service}/${m.name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (v: Req) => Buffer.from(m.request.encode(v)),
    requestDeserialize: (b: Buffer) => m.request.decode(new Uint8Array(b)),
    responseSerialize: (v: Res) => Buffer.from(m.response.encode(v)),
    responseDeserialize: (b: Buffer) => m.response.decode(new Uint8Array(b)),
  };
}

/** Binds `handler` to `method`. */
export function bind<Req, Res>(
  method: UnaryMethod<Req, Res>,
  handler: UnaryHandler<Req, Res>,
): Binding {
  return {
    definition: definition(method) as grpc.MethodDefinition<unknown, unknown>,
    service: method.service,
    name: method.name,
    handle: (request) => handler(request as Req),
  };
}

/** A running server. */
export interface UnixServer {
  readonly path: string;
  /** Stops accepting calls, waits briefly for running ones, removes the socket. */
  close(): Promise<void>;
}

function asStatus(lib: Grpc, err: unknown): grpc.ServiceError {
  const code = err instanceof GrpcStatusError ? err.code : GrpcCode.INTERNAL;
  const message = err instanceof Error ? err.message : String(err);
  return Object.assign(new Error(message), {
    code,
    details: message,
    metadata: new lib.Metadata(),
  }) as grpc.ServiceError;
}

function removeStale(path: string): void {
  try {
    const info = Deno.lstatSync(path);
    if (!info.isSocket) throw new Error(`${path} exists and is not a socket`);
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** Serves `bindings` on a unix socket at `path`. */
export async function serveUnix(path: string, bindings: readonly Binding[]): Promise<UnixServer> {
  const lib = await grpcLibrary();
  const server = new lib.Server();
  const services = new Map<string, Binding[]>();
  for (const b of bindings) services.set(b.service, [...(services.get(b.service) ?? []), b]);
  for (const list of services.values()) {
    const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    const impl: grpc.UntypedServiceImplementation = {};
    for (const b of list) {
      def[b.name] = b.definition;
      impl[b.name] = ((
        call: grpc.ServerUnaryCall<unknown, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        // A handler that throws before returning its promise answers the same way.
        Promise.resolve().then(() => b.handle(call.request)).then(
          (res) => callback(null, res),
          (err) => callback(asStatus(lib, err)),
        );
      }) as grpc.handleUnaryCall<unknown, unknown>;
    }
    server.addService(def as grpc.ServiceDefinition, impl);
  }
  removeStale(path);
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(
      `unix:${path}`,
      lib.ServerCredentials.createInsecure(),
      (err) => err ? reject(err) : resolve(),
    )
  );
  Deno.chmodSync(path, 0o600);
  let closing: Promise<void> | undefined;
  return {
    path,
    close() {
      closing ??= (async () => {
        const calm = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        // Calls still running after 2 s are cut off.
        if (!await settlesWithin(calm, 2000)) server.forceShutdown();
        try {
          Deno.removeSync(path);
        } catch {
          // already gone
        }
      })();
      return closing;
    },
  };
}

/** A client on one socket. */
export interface UnixClient {
  /** Calls `method`; rejects with {@link GrpcStatusError} on a non-OK status. */
  call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, timeoutMs: number): Promise<Res>;
  close(): void;
}

/** A client for the gRPC server listening on `path`. */
export function dialUnix(path: string): UnixClient {
  let closed = false;
  let client: grpc.Client | undefined;
  const connect = async () => {
    const lib = await grpcLibrary();
    if (closed) throw new GrpcStatusError(GrpcCode.CANCELLED, "client closed");
    client ??= new lib.Client(`unix:${path}`, lib.credentials.createInsecure());
    return { lib, client };
  };
  return {
    async call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, timeoutMs: number) {
      const def = definition(method);
      const { lib, client } = await connect();
      return await new Promise<Res>((resolve, reject) => {
        client.makeUnaryRequest(
          def.path,
          def.requestSerialize,
          def.responseDeserialize,
          request,
          new lib.Metadata(),
          { deadline: Date.now() + timeoutMs },
          (err, value) => {
            if (err) reject(new GrpcStatusError(err.code, err.details || err.message));
            else resolve(value as Res);
          },
        );
      });
    },
    close() {
      closed = true;
      client?.close();
    },
  };
}
