/**
 * Transport failures of the client against real sockets on loopback (the
 * API behaviour itself is tested against a real kube-apiserver in tests/kube).
 */
import assert from "node:assert/strict";
import { createKubeClient, retryTransient } from "./client.ts";
import { isTransient, kubeCniError, KubeTransportError } from "./errors.ts";
import { ErrorCode } from "../cni/errors.ts";

/** A loopback port nothing listens on. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A listener that accepts connections and never answers. */
function silentServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const c of listener) conns.push(c);
    } catch {
      // closed
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await accepting;
      for (const c of conns) c.close();
    },
  };
}

function isTransport(failure: string) {
  return (err: unknown) => {
    assert.ok(err instanceof KubeTransportError, `expected KubeTransportError, got ${err}`);
    assert.equal(err.failure, failure);
    return true;
  };
}

Deno.test("connection refused is a transient 'connection' failure, CNI code 11", async () => {
  const client = createKubeClient({ server: `http://127.0.0.1:${closedPort()}`, source: "test" });
  try {
    const err = await client.get<Error>("/api/v1/namespaces/x/pods/y").catch((e: Error) => e);
    isTransport("connection")(err);
    assert.ok(isTransient(err));
    assert.match(err.message, /GET \/api\/v1\/namespaces\/x\/pods\/y: .*refused/i);
    const cni = kubeCniError(err, "get pod x/y");
    assert.equal(cni.code, ErrorCode.TryAgainLater);
    assert.match(cni.message, /^get pod x\/y: GET/);
  } finally {
    client.close();
  }
});

Deno.test("a server that never answers hits the request deadline: transient 'timeout'", async () => {
  const server = silentServer();
  const client = createKubeClient({ server: `http://127.0.0.1:${server.port}`, source: "test" }, {
    timeoutMs: 300,
  });
  try {
    await assert.rejects(client.get("/api/v1/nodes"), (err: unknown) => {
      isTransport("timeout")(err);
      assert.ok(isTransient(err));
      assert.match((err as Error).message, /no answer from the API server within 300 ms/);
      return true;
    });
    // A per-request deadline overrides the client's.
    await assert.rejects(client.get("/api/v1/nodes", { timeoutMs: 50 }), /within 50 ms/);
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("the caller's abort is not transient", async () => {
  const server = silentServer();
  const client = createKubeClient({ server: `http://127.0.0.1:${server.port}`, source: "test" });
  try {
    const ac = new AbortController();
    const p = client.get("/api/v1/nodes", { signal: ac.signal });
    ac.abort();
    await assert.rejects(p, (err: unknown) => {
      isTransport("aborted")(err);
      assert.ok(!isTransient(err));
      return true;
    });
  } finally {
    client.close();
    await server.close();
  }
});

Deno.test("TLS to a peer that drops the handshake is a transient connection failure", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const closing = (async () => {
    for await (const c of l) c.close();
  })().catch(() => {});
  const client = createKubeClient({ server: `https://127.0.0.1:${port}`, source: "test" });
  try {
    const err = await client.get("/version").catch((e) => e);
    isTransport("connection")(err);
  } finally {
    client.close();
    l.close();
    await closing;
  }
});

Deno.test("retryTransient retries until its deadline, then throws the last error", async () => {
  const client = createKubeClient({ server: `http://127.0.0.1:${closedPort()}`, source: "test" });
  let attempts = 0;
  try {
    await assert.rejects(
      retryTransient(() => {
        attempts++;
        return client.get("/version");
      }, { deadlineMs: 400, initialDelayMs: 20 }),
      isTransport("connection"),
    );
    assert.ok(attempts >= 2, `only ${attempts} attempt(s)`);
    // Non-transient errors are not retried.
    attempts = 0;
    await assert.rejects(
      retryTransient(() => {
        attempts++;
        return Promise.reject(new Error("permanent"));
      }, { deadlineMs: 400 }),
      /permanent/,
    );
    assert.equal(attempts, 1);
  } finally {
    client.close();
  }
});
