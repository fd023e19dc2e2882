/**
 * Forwards TCP across network namespaces through a unix socket (a filesystem path, visible from
 * every network namespace). Two halves make a bridge: in the namespace that has the server,
 * `unix-to-tcp` listens on a socket file and connects to the server; in the other namespace,
 * `tcp-to-unix` listens on a TCP address and connects to that socket file. Used to let a kubelet in
 * a private namespace reach the API server on the host's loopback.
 *
 *   deno run -A tcp_bridge.ts unix-to-tcp <socket> <host:port>
 *   deno run -A tcp_bridge.ts tcp-to-unix <host:port> <socket>
 *
 * @module
 */

function parseHostPort(text: string): { hostname: string; port: number } {
  const at = text.lastIndexOf(":");
  const port = Number(text.slice(at + 1));
  if (at < 0 || !Number.isInteger(port)) throw new Error(`not host:port: ${text}`);
  return { hostname: text.slice(0, at), port };
}

async function pipe(a: Deno.Conn, b: Deno.Conn): Promise<void> {
  // Either direction ending closes both connections.
  await Promise.race([
    a.readable.pipeTo(b.writable).catch(() => {}),
    b.readable.pipeTo(a.writable).catch(() => {}),
  ]);
  for (const conn of [a, b]) {
    try {
      conn.close();
    } catch {
      // already closed by pipeTo
    }
  }
}

async function serve(listener: Deno.Listener, dial: () => Promise<Deno.Conn>): Promise<void> {
  for await (const conn of listener) {
    dial().then((upstream) => pipe(conn, upstream), () => conn.close());
  }
}

/** Runs one half of a bridge until killed. */
export async function runBridge(args: string[]): Promise<void> {
  const [mode, from, to] = args;
  if (mode === "unix-to-tcp") {
    await Deno.remove(from).catch(() => {});
    const target = parseHostPort(to);
    await serve(
      Deno.listen({ transport: "unix", path: from }),
      () => Deno.connect({ ...target, transport: "tcp" }),
    );
  } else if (mode === "tcp-to-unix") {
    await serve(
      Deno.listen({ ...parseHostPort(from), transport: "tcp" }),
      () => Deno.connect({ transport: "unix", path: to }),
    );
  } else {
    throw new Error(
      "usage: tcp_bridge.ts unix-to-tcp <socket> <host:port> | " +
        "tcp-to-unix <host:port> <socket>",
    );
  }
}

if (import.meta.main) await runBridge(Deno.args);
