/**
 * The static node source: a node list file (see `nodes.ts` for its shape),
 * re-read whenever it changes. Changes are noticed through file system
 * events on its folder (which also catch an editor's or a script's
 * write-then-rename) and, as a fallback, by polling its size and mtime.
 *
 * A file that is missing, empty or cannot be parsed leaves the previous node
 * set in force: a half-written file must never remove routes (an empty list
 * is said explicitly, `nodes: []`). Reads wait a few milliseconds after a
 * change and read again when the file changed meanwhile; writers should
 * still replace the file atomically (write a temporary file, rename it),
 * since a YAML list cut short at a line boundary is still a valid list.
 *
 * @module
 */

import { basename, dirname } from "node:path";
import { type NodeInfo, NodeListError, parseNodeList } from "./nodes.ts";
import { delay } from "../pkg/async.ts";

/** Callbacks of {@link watchNodeFile}. */
export interface FileSourceHandlers {
  /** A new complete node set (only called when the file's content changed). */
  onNodes(nodes: NodeInfo[]): void;
  /** The file could not be read or parsed; the previous set stays. */
  onError(err: Error): void;
}

/** A running file source. */
export interface FileSource {
  /** Resolves after the first read (successful or not). */
  readonly ready: Promise<void>;
  /** Whether the last read succeeded. */
  readonly ok: boolean;
  stop(): Promise<void>;
}

/** Reads and parses a node list file once; throws NodeListError. */
export async function readNodeFile(path: string): Promise<NodeInfo[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new NodeListError(`cannot read node list ${path}: ${(err as Error).message}`);
  }
  return parseNodeList(text, path);
}

/** Watches a node list file, reporting each new content. */
export function watchNodeFile(
  path: string,
  handlers: FileSourceHandlers,
  pollMs = 1000,
  settleMs = 10,
): FileSource {
  let lastText: string | undefined;
  let lastStamp = "";
  let ok = false;
  let stopped = false;
  let reading: Promise<void> | undefined;
  let again = false;

  async function stamp(): Promise<string> {
    try {
      const st = await Deno.stat(path);
      return `${st.ino}:${st.size}:${st.mtime?.getTime()}`;
    } catch {
      return "missing";
    }
  }

  async function readOnce(): Promise<void> {
    lastStamp = await stamp();
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      ok = false;
      handlers.onError(
        new NodeListError(`cannot read node list ${path}: ${(err as Error).message}`),
      );
      return;
    }
    if (text === lastText) {
      ok = true;
      return;
    }
    let nodes: NodeInfo[];
    try {
      nodes = parseNodeList(text, path);
    } catch (err) {
      ok = false;
      handlers.onError(err as Error);
      return;
    }
    lastText = text;
    ok = true;
    handlers.onNodes(nodes);
  }

  /** Reads now, or once more after the read in progress (never two at once). */
  function read(settle = true): Promise<void> {
    if (stopped) return Promise.resolve();
    if (reading) {
      again = true;
      return reading;
    }
    reading = (async () => {
      try {
        do {
          again = false;
          // A writer's truncate and write arrive as separate events: let it finish.
          if (settle) await delay(settleMs);
          await readOnce();
          settle = true;
        } while (again && !stopped);
      } finally {
        reading = undefined;
      }
    })();
    return reading;
  }

  const ready = read(false);
  const name = basename(path);
  let watcher: Deno.FsWatcher | undefined;
  try {
    watcher = Deno.watchFs(dirname(path), { recursive: false });
  } catch {
    // No inotify (or the folder is missing): polling alone still works.
  }
  const watching = (async () => {
    if (!watcher) return;
    try {
      for await (const ev of watcher) {
        if (ev.paths.some((p) => basename(p) === name)) read();
      }
    } catch {
      // Watcher closed.
    }
  })();
  const poller = setInterval(async () => {
    if ((await stamp()) !== lastStamp) read();
  }, pollMs);

  return {
    ready,
    get ok() {
      return ok;
    },
    async stop() {
      stopped = true;
      clearInterval(poller);
      try {
        watcher?.close();
      } catch {
        // already closed
      }
      await watching;
      await reading;
    },
  };
}
