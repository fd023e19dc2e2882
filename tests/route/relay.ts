/**
 * A TCP relay from inside a node's namespace to the host's loopback, so a
 * router running in the node namespace reaches the test API server (which
 * listens on the host's 127.0.0.1) at the same address and port. Bytes are
 * passed through untouched: TLS is end to end between the router and the
 * real kube-apiserver.
 *
 * The listening socket is opened while the thread is inside the node's
 * namespace, so it lives there; connections to the API server are opened
 * from the host namespace.
 *
 * @module
 */

import { withNetnsSync } from "../../netlink/mod.ts";

/** A running relay. */
export interface Relay {
  stop(): Promise<void>;
}

/** Relays 127.0.0.1:`port` in namespace `netnsPath` to 127.0.0.1:`port` of the host. */
export function startRelay(netnsPath: string, port: number): Relay {
  const listener = withNetnsSync(netnsPath, () => Deno.listen({ hostname: "127.0.0.1", port }));
  const open = new Set<Deno.Conn>();
  const pipes = new Set<Promise<void>>();
  const closeConn = (c: Deno.Conn) => {
    open.delete(c);
    try {
      c.close();
    } catch {
      // already closed
    }
  };

  async function relay(down: Deno.Conn): Promise<void> {
    open.add(down);
    let up: Deno.Conn;
    try {
      up = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      closeConn(down); // the API server is away: the client sees the connection drop
      return;
    }
    open.add(up);
    const copy = async (from: Deno.Conn, to: Deno.Conn) => {
      const buf = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          let off = 0;
          while (off < n) off += await to.write(buf.subarray(off, n));
        }
      } catch {
        // either side went away
      }
      closeConn(from);
      closeConn(to);
    };
    await Promise.all([copy(down, up), copy(up, down)]);
  }

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        const p = relay(conn);
        pipes.add(p);
        p.finally(() => pipes.delete(p));
      }
    } catch {
      // listener closed
    }
  })();

  return {
    async stop() {
      try {
        listener.close();
      } catch {
        // already closed
      }
      for (const c of [...open]) closeConn(c);
      await accepting;
      await Promise.all([...pipes]);
    },
  };
}
