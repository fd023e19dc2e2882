/**
 * The byte stream under the NRI multiplexer: a unix stream socket, either
 * dialled (external plugin) or inherited as an open fd (plugin launched by
 * the runtime with `NRI_PLUGIN_SOCKET`).
 *
 * Dialling uses `Deno.connect({ transport: "unix" })`: native, and tracked by
 * Deno's resource sanitizer in tests. Deno has no API to wrap an inherited fd
 * in a `Deno.Conn`, and its `node:fs` does not map raw fds, but `node:net`
 * accepts `{ fd }` for a connected unix socket, so an inherited socket goes
 * through `node:net`.
 *
 * @module
 */

import { Socket } from "node:net";

/** A connected byte stream. */
export interface ByteTransport {
  /** Chunks as they are read, ending at EOF; a read error also ends it. */
  readonly chunks: AsyncIterable<Uint8Array>;
  /** Writes all bytes; writes are applied in call order, never interleaved. */
  write(bytes: Uint8Array): Promise<void>;
  /** Closes the stream; pending reads end and later writes fail. Idempotent. */
  close(): void;
}

const READ_SIZE = 64 * 1024;

/** Wraps a `Deno.Conn` (unix or tcp) as a transport. */
export function transportFromConn(conn: Deno.Conn): ByteTransport {
  let closed = false;
  let tail: Promise<void> = Promise.resolve();

  async function* chunks(): AsyncGenerator<Uint8Array> {
    while (!closed) {
      const buf = new Uint8Array(READ_SIZE);
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        return; // reset, or closed under us: both are the end of the stream
      }
      if (n === null) return;
      yield buf.subarray(0, n);
    }
  }

  async function writeAll(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) {
      if (closed) throw new Deno.errors.BadResource("transport closed");
      at += await conn.write(bytes.subarray(at));
    }
  }

  return {
    chunks: chunks(),
    write(bytes) {
      const done = tail.then(() => writeAll(bytes));
      tail = done.catch(() => {});
      return done;
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        conn.close();
      } catch {
        // already closed by the peer side of a failed read
      }
    },
  };
}

/** Connects to the runtime's NRI socket. */
export async function dialUnix(path: string): Promise<ByteTransport> {
  const conn = await Deno.connect({ transport: "unix", path });
  return transportFromConn(conn);
}

/**
 * Adopts an inherited, already connected unix stream socket. The fd is owned
 * by the transport from then on and closed with it.
 */
export function adoptSocketFd(fd: number): ByteTransport {
  const socket = new Socket({ fd, readable: true, writable: true });
  let closed = false;

  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      for await (const chunk of socket) yield chunk as Uint8Array;
    } catch {
      // a socket error ends the stream like EOF does
    }
  }

  return {
    chunks: chunks(),
    write(bytes) {
      // node:net queues writes in call order itself.
      return new Promise((resolve, reject) => {
        if (closed) return reject(new Error("transport closed"));
        socket.write(bytes, (err) => err ? reject(err) : resolve());
      });
    },
    close() {
      if (closed) return;
      closed = true;
      socket.destroy();
    },
  };
}
