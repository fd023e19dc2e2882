import assert from "node:assert/strict";
import {
  formatListenAddress,
  getFromEndpoint,
  ListenAddressError,
  parseListenAddress,
  serveHealth,
} from "./http.ts";
import { createRegistry } from "./metrics.ts";

Deno.test("listen addresses: host:port, [v6]:port, :port and unix:path", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:9472"), {
    transport: "tcp",
    hostname: "127.0.0.1",
    port: 9472,
  });
  assert.deepEqual(parseListenAddress("[::1]:80"), { transport: "tcp", hostname: "::1", port: 80 });
  assert.deepEqual(parseListenAddress(":9472"), {
    transport: "tcp",
    hostname: "0.0.0.0",
    port: 9472,
  });
  assert.deepEqual(parseListenAddress("unix:/run/x.sock"), {
    transport: "unix",
    path: "/run/x.sock",
  });
  assert.equal(formatListenAddress(parseListenAddress("[::1]:80")), "[::1]:80");
  for (const bad of ["9472", "host:", "host:99999", "unix:", "a:b:1"]) {
    assert.throws(() => parseListenAddress(bad), ListenAddressError, bad);
  }
});

Deno.test("health endpoint answers /healthz, /readyz and /metrics over TCP and a unix socket", async () => {
  const registry = createRegistry();
  registry.counter("t_total", "T.").inc();
  let ready = false;
  const ep = {
    registry,
    healthz: () => ({ ok: true, detail: "fine" }),
    readyz: () => ready ? { ok: true } : { ok: false, detail: "waiting for nodes" },
  };
  const dir = await Deno.makeTempDir();
  const tcp = await serveHealth({ transport: "tcp", hostname: "127.0.0.1", port: 0 }, ep);
  const unix = await serveHealth({ transport: "unix", path: `${dir}/h.sock` }, ep);
  try {
    for (const server of [tcp, unix]) {
      assert.deepEqual(await getFromEndpoint(server.address, "/healthz"), {
        status: 200,
        body: "ok: fine\n",
      });
      ready = false;
      assert.deepEqual(await getFromEndpoint(server.address, "/readyz"), {
        status: 503,
        body: "waiting for nodes\n",
      });
      ready = true;
      assert.equal((await getFromEndpoint(server.address, "/readyz")).status, 200);
      const metrics = await getFromEndpoint(server.address, "/metrics");
      assert.match(metrics.body, /^t_total 1$/m);
      assert.equal((await getFromEndpoint(server.address, "/nope")).status, 404);
    }
  } finally {
    await tcp.shutdown();
    await unix.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
  const gone = await Deno.stat(`${dir}/h.sock`).catch(() => undefined);
  assert.equal(gone, undefined, "socket file removed on shutdown");
});
