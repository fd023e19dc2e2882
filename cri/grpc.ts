/**
 * Unary gRPC calls over a unix socket, on @grpc/grpc-js, for the runtime's
 * CRI socket. Messages are encoded and decoded by the caller's codecs (no
 * .proto file is read at run time).
 *
 * The gRPC library is loaded on the first call only: a process that never
 * asks the runtime does not pay for loading it.
 *
 * @module
 */

import type * as grpc from "@grpc/grpc-js";
import { Buffer } from "node:buffer";

type Grpc = typeof grpc;
let loaded: Promise<Grpc> | undefined;

/** The gRPC library, loaded once. */
function grpcLibrary(): Promise<Grpc> {
  loaded ??= import("@grpc/grpc-js");
  return loaded;
}

/** One unary method: `/<service>/<name>` with its message codecs. */
export interface UnaryMethod<Req, Res> {
  service: string;
  name: string;
  encode(request: Req): Uint8Array;
  decode(bytes: Uint8Array): Res;
}

/** gRPC status codes hydra tells apart. */
export const GrpcCode = {
  CANCELLED: 1,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  UNIMPLEMENTED: 12,
  UNAVAILABLE: 14,
} as const;

/** A call that ended with a status other than OK. */
export class GrpcStatusError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.name = "GrpcStatusError";
    this.code = code;
  }
}

/** A client of one socket. */
export interface UnixGrpcClient {
  /** Calls `method`; rejects with {@link GrpcStatusError} on a status other than OK. */
  call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, timeoutMs: number): Promise<Res>;
  close(): void;
}

/** A client of the gRPC server on the unix socket `path` (connected on first use). */
export function dialUnix(path: string): UnixGrpcClient {
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
      const { lib, client } = await connect();
      return await new Promise<Res>((resolve, reject) => {
        client.makeUnaryRequest(
          `/${method.service}/${method.name}`,
          (v: Req) => Buffer.from(method.encode(v)),
          (b: Buffer) => method.decode(new Uint8Array(b)),
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
