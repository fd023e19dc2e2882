/**
 * Watches: a stream of change events for a collection, resumed from the
 * last seen resourceVersion whenever the connection ends or fails. A watch
 * ends only when stopped, or when the API server says the resourceVersion is
 * too old (410 Gone), at which point the caller must list again (the
 * informer in `informer.ts` does).
 *
 * @module
 */

import type { KubeClient, Query } from "./client.ts";
import { isGone, KubeApiError } from "./errors.ts";
import { type BackoffState, createBackoff, delay } from "../pkg/async.ts";

/** The kinds of watch events. */
export type WatchEventType = "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";

/** Objects carry at least their metadata. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    [key: string]: unknown;
  };
}

/** One event of a watch stream. */
export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
}

/** Exponential backoff bounds for reconnects. */
export interface Backoff {
  /** First pause after a failure; 200 ms. */
  initialMs?: number;
  /** Longest pause; 30 s. */
  maxMs?: number;
}

/** Options of {@link watch}. */
export interface WatchOptions {
  /** Start after this version; absent means "now", with existing objects sent as ADDED first. */
  resourceVersion?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Server-side end of each watch request, in seconds (it is then resumed); 300. */
  timeoutSeconds?: number;
  backoff?: Backoff;
  /**
   * How long past `timeoutSeconds` a watch request may stay open before the
   * client gives up on it and reconnects; 15 s. A dead peer that never closes
   * the connection would otherwise stall the watch forever.
   */
  graceMs?: number;
  /** Told about each failed attempt before the watch retries. */
  onError?: (err: unknown) => void;
}

/** A running watch. */
export interface WatchHandle {
  /** The newest resourceVersion seen (from events and bookmarks). */
  readonly resourceVersion: string | undefined;
  /** Settles when the watch ends: resolves after stop(), rejects with a 410 KubeApiError on Gone. */
  readonly done: Promise<void>;
  /** Ends the watch and waits for it to wind down. */
  stop(): Promise<void>;
}

/** The pauses between reconnects: {@link Backoff}'s bounds (200 ms to 30 s by default), ±20 %. */
export function reconnectBackoff(b: Backoff = {}): BackoffState {
  return createBackoff({ initialMs: b.initialMs ?? 200, maxMs: b.maxMs ?? 30_000, jitter: 0.2 });
}

/** Splits a byte stream into lines and decodes each as a watch event. */
async function* events<T>(body: ReadableStream<Uint8Array>): AsyncGenerator<WatchEvent<T>> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield JSON.parse(line) as WatchEvent<T>;
      }
    }
    if (buf.trim()) yield JSON.parse(buf) as WatchEvent<T>;
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** The error an ERROR event carries (a Status object). */
function statusError(obj: unknown, path: string): KubeApiError {
  const s = (obj ?? {}) as { code?: number; reason?: string; message?: string };
  return new KubeApiError({
    status: s.code ?? 500,
    reason: s.reason ?? "Unknown",
    message: `watch ${path}: ${s.code ?? ""} ${s.reason ?? ""}: ${s.message ?? "error event"}`,
    method: "GET",
    path,
  });
}

/**
 * Watches the collection at `path` (e.g. `/api/v1/pods`), calling `onEvent`
 * for every ADDED/MODIFIED/DELETED event in order (BOOKMARKs only advance
 * the resourceVersion). Reconnects after stream ends and failures, with
 * backoff after failures. `onEvent` may be async; the next event waits.
 */
export function watch<T extends KubeObject>(
  client: KubeClient,
  path: string,
  opts: WatchOptions,
  onEvent: (ev: WatchEvent<T>) => void | Promise<void>,
): WatchHandle {
  const stopper = new AbortController();
  let rv = opts.resourceVersion;
  const backoff = reconnectBackoff(opts.backoff);

  async function once(): Promise<void> {
    const query: Query = {
      watch: 1,
      allowWatchBookmarks: true,
      resourceVersion: rv,
      labelSelector: opts.labelSelector,
      fieldSelector: opts.fieldSelector,
      timeoutSeconds: opts.timeoutSeconds ?? 300,
    };
    const cap = new AbortController();
    const capMs = (opts.timeoutSeconds ?? 300) * 1000 + (opts.graceMs ?? 15_000);
    const timer = setTimeout(() => cap.abort(), capMs);
    try {
      const signal = AbortSignal.any([stopper.signal, cap.signal]);
      const res = await client.stream(path, { query, signal });
      for await (const ev of events<T>(res.body!)) {
        if (ev.type === "ERROR") throw statusError(ev.object, path);
        const next = ev.object?.metadata?.resourceVersion;
        if (ev.type !== "BOOKMARK") await onEvent(ev);
        if (next) rv = next;
        backoff.reset();
      }
    } catch (err) {
      // The client-side cap ending a stalled stream is a normal reconnect.
      if (!cap.signal.aborted || stopper.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  const done = (async () => {
    while (!stopper.signal.aborted) {
      try {
        const started = Date.now();
        const before = rv;
        await once();
        // A stream that ends at once with nothing in it must not turn into a busy loop.
        if (rv === before && Date.now() - started < 1_000) {
          await delay(backoff.next(), stopper.signal);
        }
      } catch (err) {
        if (stopper.signal.aborted) break;
        if (isGone(err)) throw err;
        opts.onError?.(err);
        await delay(backoff.next(), stopper.signal);
      }
    }
  })();
  // A Gone that nobody awaits must not crash the process; callers see it through `done`.
  done.catch(() => {});

  return {
    get resourceVersion() {
      return rv;
    },
    done,
    async stop() {
      stopper.abort();
      await done.catch(() => {});
    },
  };
}
