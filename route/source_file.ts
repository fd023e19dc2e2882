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
 * since a YAML list cut short at a line boundary is still a valid list. A
 * file renamed into place is read at once, without that wait.
 *
 * @module
 */

import { type NodeInfo, NodeListError, parseNodeList } from "./nodes.ts";
import { delay } from "../pkg/async.ts";
import { baseName, parentDir } from "../pkg/fsutil.ts";

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
  return await parseNodeList(text, path);
}

/** One watched file's state, shared by the steps below. */
interface Watched {
  path: string;
  handlers: FileSourceHandlers;
  settleMs: number;
  lastText?: string;
  lastStamp: string;
  ok: boolean;
  stopped: boolean;
  reading?: Promise<void>;
  again: boolean;
}

/** What identifies the file's content without reading it: inode, size, mtime. */
async function fileStamp(path: string): Promise<string> {
  try {
    const st = await Deno.stat(path);
    return `${st.ino}:${st.size}:${st.mtime?.getTime()}`;
  } catch {
    return "missing";
  }
}

/** Reads the file once; reports the nodes when its text changed, or what is wrong with it. */
async function readOnce(w: Watched): Promise<void> {
  w.lastStamp = await fileStamp(w.path);
  let text: string;
  try {
    text = await Deno.readTextFile(w.path);
  } catch (err) {
    w.ok = false;
    w.handlers.onError(
      new NodeListError(`cannot read node list ${w.path}: ${(err as Error).message}`),
    );
    return;
  }
  if (text === w.lastText) {
    w.ok = true;
    return;
  }
  let nodes: NodeInfo[];
  try {
    nodes = await parseNodeList(text, w.path);
  } catch (err) {
    w.ok = false;
    w.handlers.onError(err as Error);
    return;
  }
  w.lastText = text;
  w.ok = true;
  w.handlers.onNodes(nodes);
}

/** Reads now, or once more after the read in progress (never two at once). */
function read(w: Watched, settle = true): Promise<void> {
  if (w.stopped) return Promise.resolve();
  if (w.reading) {
    w.again = true;
    return w.reading;
  }
  w.reading = (async () => {
    try {
      do {
        w.again = false;
        // A writer's truncate and write arrive as separate events: let it finish.
        if (settle) await delay(w.settleMs);
        await readOnce(w);
        settle = true;
      } while (w.again && !w.stopped);
    } finally {
      w.reading = undefined;
    }
  })();
  return w.reading;
}

/** Reads again on every inotify event about the file (nothing when inotify is missing). */
function watchEvents(w: Watched): { watcher?: Deno.FsWatcher; watching: Promise<void> } {
  const name = baseName(w.path);
  let watcher: Deno.FsWatcher | undefined;
  try {
    watcher = Deno.watchFs(parentDir(w.path), { recursive: false });
  } catch {
    // No inotify (or the folder is missing): polling alone still works.
  }
  const watching = (async () => {
    if (!watcher) return;
    try {
      for await (const ev of watcher) {
        if (!ev.paths.some((p) => baseName(p) === name)) continue;
        // A file renamed into place is complete: no writer can still be busy with it.
        read(w, !(ev.kind === "rename" && await fileStamp(w.path) !== "missing"));
      }
    } catch {
      // Watcher closed.
    }
  })();
  return { watcher, watching };
}

/** Watches a node list file, reporting each new content. */
export function watchNodeFile(
  path: string,
  handlers: FileSourceHandlers,
  pollMs = 1000,
  settleMs = 10,
): FileSource {
  const w: Watched = {
    path,
    handlers,
    settleMs,
    lastStamp: "",
    ok: false,
    stopped: false,
    again: false,
  };
  const ready = read(w, false);
  const { watcher, watching } = watchEvents(w);
  const poller = setInterval(async () => {
    if ((await fileStamp(path)) !== w.lastStamp) read(w);
  }, pollMs);
  return {
    ready,
    get ok() {
      return w.ok;
    },
    async stop() {
      w.stopped = true;
      clearInterval(poller);
      try {
        watcher?.close();
      } catch {
        // already closed
      }
      await watching;
      await w.reading;
    },
  };
}
