/** The unary gRPC helpers over a real unix socket: calls, errors, deadlines, stale sockets. */

import assert from "node:assert/strict";
import { bind, dialUnix, GrpcCode, GrpcStatusError, serveUnix } from "./grpc.ts";
import { DRA_SERVICES, draMethods } from "./dra_api.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "hydra-grpc-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("grpc: a unary call is answered; errors keep their code; the socket is 0600", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/dra.sock`;
    // A stale socket file from an earlier run is replaced.
    const stale = Deno.listen({ transport: "unix", path });
    stale.close();
    const m = draMethods(DRA_SERVICES.v1);
    const server = await serveUnix(path, [
      bind(m.prepare, (req) => {
        if (req.claims.some((c) => c.name === "bad")) {
          throw new GrpcStatusError(GrpcCode.INVALID_ARGUMENT, "bad claim");
        }
        if (req.claims.some((c) => c.name === "boom")) throw new Error("exploded");
        return Promise.resolve({
          claims: Object.fromEntries(req.claims.map((c) => [c.uid, { devices: [], error: "" }])),
        });
      }),
      bind(m.unprepare, () => new Promise(() => {})),
    ]);
    const client = dialUnix(path);
    try {
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      const res = await client.call(m.prepare, {
        claims: [{ namespace: "n", uid: "u1", name: "ok" }],
      }, 2000);
      assert.deepEqual(Object.keys(res.claims), ["u1"]);
      await assert.rejects(
        client.call(m.prepare, { claims: [{ namespace: "n", uid: "u", name: "bad" }] }, 2000),
        (e: unknown) => e instanceof GrpcStatusError && e.code === GrpcCode.INVALID_ARGUMENT,
      );
      await assert.rejects(
        client.call(m.prepare, { claims: [{ namespace: "n", uid: "u", name: "boom" }] }, 2000),
        (e: unknown) =>
          e instanceof GrpcStatusError && e.code === GrpcCode.INTERNAL &&
          e.message.includes("exploded"),
      );
      await assert.rejects(
        client.call(m.unprepare, { claims: [] }, 100),
        (e: unknown) => e instanceof GrpcStatusError && e.code === GrpcCode.DEADLINE_EXCEEDED,
      );
      // Another service version on the same server is not served.
      await assert.rejects(
        client.call(draMethods(DRA_SERVICES.v1beta1).prepare, { claims: [] }, 2000),
        (e: unknown) => e instanceof GrpcStatusError && e.code === GrpcCode.UNIMPLEMENTED,
      );
    } finally {
      client.close();
      await server.close();
    }
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  });
});
