/**
 * The process's stdin and stdout as a plugin process uses them: read the
 * config to its end, write the answer whole. Plain synchronous calls: a
 * plugin process lives for milliseconds, and setting up the streams
 * machinery (`Response(Deno.stdin.readable)`) costs several of them.
 *
 * Kept apart from the skel so the daemonExec shim (daemonclient/forward.ts)
 * reads and writes the same way without loading the plugin path.
 *
 * @module
 */

/** Reads stdin to its end; empty when stdin is a terminal. */
export function readStdin(): Uint8Array {
  if (Deno.stdin.isTerminal()) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = Deno.stdin.readSync(buf);
    if (n === null || n === 0) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  return joinChunks(chunks, total);
}

/** `chunks` as one array of `total` bytes (the chunk itself when there is one). */
export function joinChunks(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Writes all of `text` to stdout. */
export function writeStdout(text: string): void {
  let data = new TextEncoder().encode(text);
  while (data.length) {
    const n = Deno.stdout.writeSync(data);
    data = data.subarray(n);
  }
}
