/**
 * An informer: a local cache of a collection kept current by list + watch.
 * It lists (in pages), then watches from the list's resourceVersion; when
 * the watch says that version is gone (410) it lists again and reports the
 * differences as events, and it backs off while the API server is away.
 * Daemons (router, NRI plugin) read from the cache instead of asking the API
 * server per request.
 *
 * @module
 */

import type { KubeClient } from "./client.ts";
import { isGone } from "./errors.ts";
import { delay } from "../pkg/async.ts";
import {
  type Backoff,
  type KubeObject,
  reconnectBackoff,
  watch,
  type WatchEvent,
  type WatchHandle,
} from "./watch.ts";

/** A change the informer applied to its cache. */
export type InformerEventType = "ADDED" | "MODIFIED" | "DELETED";

/** Options of {@link startInformer}. */
export interface InformerOptions<T> {
  labelSelector?: string;
  fieldSelector?: string;
  /** Items per list page; 500. */
  pageSize?: number;
  /**
   * Size the pages after the first by their objects: about this many bytes
   * of JSON each (never fewer items than `pageSize`). Fewer round trips
   * when objects are small, bounded memory when they are large. Off when
   * unset: every page has `pageSize` items.
   */
  pageBytes?: number;
  backoff?: Backoff;
  /** Server-side end of each watch request (then resumed), in seconds. */
  watchTimeoutSeconds?: number;
  /** See `WatchOptions.graceMs`. */
  watchGraceMs?: number;
  /**
   * Applied to every object as it arrives, before it is cached or handed
   * on: a slimmer object (only the fields the caller reads, with name,
   * namespace and resourceVersion kept) costs less memory and garbage
   * collection for as long as it is cached.
   */
  transform?: (obj: T) => T;
  /** Called after each cache change; `old` is the previous object when there was one. */
  onEvent?: (type: InformerEventType, obj: T, old: T | undefined) => void;
  /** Told about every failed list or watch attempt (the informer keeps going). */
  onError?: (err: unknown) => void;
}

/** A running informer. */
export interface Informer<T> {
  /** The cached object, by namespace (undefined for cluster-scoped) and name. */
  get(namespace: string | undefined, name: string): T | undefined;
  /** Every cached object. */
  list(): T[];
  /** Resolves once the first list is in the cache. */
  readonly synced: Promise<void>;
  hasSynced(): boolean;
  /** The resourceVersion the cache reflects. */
  readonly resourceVersion: string | undefined;
  /** How many times it listed (1 after start; more after 410s). */
  readonly lists: number;
  /** Stops watching; the cache stays readable. */
  stop(): Promise<void>;
}

/** Objects asked for to learn their size (see `pageBytes`). */
const PROBE = 8;

/** Most items asked for in one page, however small they are. */
const MAX_PAGE = 10_000;

/** The cache key of an object: "namespace/name", or "name" when cluster-scoped. */
export function objectKey(obj: KubeObject): string {
  const { namespace, name } = obj.metadata;
  return namespace ? `${namespace}/${name}` : `${name}`;
}

/** Starts an informer over the collection at `path`, e.g. `/api/v1/nodes`. */
export function startInformer<T extends KubeObject>(
  client: KubeClient,
  path: string,
  opts: InformerOptions<T> = {},
): Informer<T> {
  const cache = new Map<string, T>();
  const stopper = new AbortController();
  let rv: string | undefined;
  let lists = 0;
  let synced = false;
  let current: WatchHandle | undefined;
  let markSynced!: () => void;
  let failSynced!: (err: unknown) => void;
  const syncedPromise = new Promise<void>((resolve, reject) => {
    markSynced = resolve;
    failSynced = reject;
  });
  syncedPromise.catch(() => {});

  function apply(type: InformerEventType, obj: T) {
    const key = objectKey(obj);
    const old = cache.get(key);
    if (type === "DELETED") cache.delete(key);
    else cache.set(key, obj);
    opts.onEvent?.(type === "DELETED" ? type : old ? "MODIFIED" : "ADDED", obj, old);
  }

  /** Lists every page and replaces the cache, reporting what changed. */
  async function relist(): Promise<string | undefined> {
    const items: T[] = [];
    let cont: string | undefined;
    let listRv: string | undefined;
    const first = opts.pageSize ?? 500;
    // With pageBytes, a few objects first tell their size; the list then starts over in pages
    // of that size (a continued page costs the API server more than a fresh one).
    let probing = opts.pageBytes !== undefined;
    let limit = probing ? PROBE : first;
    for (;;) {
      try {
        const page = await client.list<T>(path, {
          labelSelector: opts.labelSelector,
          fieldSelector: opts.fieldSelector,
          limit,
          continue: cont,
          signal: stopper.signal,
        });
        if (probing) {
          probing = false;
          if (page.metadata.continue && page.bytes && page.items.length) {
            const perItem = page.bytes / page.items.length;
            limit = Math.max(first, Math.min(MAX_PAGE, Math.floor(opts.pageBytes! / perItem)));
            continue;
          }
        }
        const transform = opts.transform;
        for (const item of page.items) items.push(transform ? transform(item) : item);
        if (opts.pageBytes && page.bytes && page.items.length) {
          const perItem = page.bytes / page.items.length;
          limit = Math.max(first, Math.min(MAX_PAGE, Math.floor(opts.pageBytes / perItem)));
        }
        cont = page.metadata.continue || undefined;
        listRv = page.metadata.resourceVersion;
      } catch (err) {
        // An expired continue token: start the list over.
        if (cont && isGone(err)) {
          items.length = 0;
          cont = undefined;
          limit = first;
          continue;
        }
        throw err;
      }
      if (!cont) break;
    }
    lists++;
    const seen = new Set<string>();
    for (const item of items) {
      const key = objectKey(item);
      seen.add(key);
      const old = cache.get(key);
      if (old?.metadata.resourceVersion !== item.metadata.resourceVersion) apply("ADDED", item);
    }
    for (const [key, obj] of [...cache]) if (!seen.has(key)) apply("DELETED", obj);
    return listRv;
  }

  const loop = (async () => {
    const backoff = reconnectBackoff(opts.backoff);
    while (!stopper.signal.aborted) {
      try {
        rv = await relist();
        backoff.reset();
      } catch (err) {
        if (stopper.signal.aborted) break;
        opts.onError?.(err);
        await delay(backoff.next(), stopper.signal);
        continue;
      }
      if (!synced) {
        synced = true;
        markSynced();
      }
      if (stopper.signal.aborted) break;
      current = watch<T>(
        client,
        path,
        {
          resourceVersion: rv,
          labelSelector: opts.labelSelector,
          fieldSelector: opts.fieldSelector,
          timeoutSeconds: opts.watchTimeoutSeconds,
          graceMs: opts.watchGraceMs,
          backoff: opts.backoff,
          onError: opts.onError,
        },
        (ev: WatchEvent<T>) => {
          apply(
            ev.type as InformerEventType,
            opts.transform ? opts.transform(ev.object) : ev.object,
          );
          rv = ev.object.metadata.resourceVersion ?? rv;
        },
      );
      try {
        await current.done;
      } catch (err) {
        // Gone: the cache is too old to resume from; list again right away.
        if (!isGone(err)) opts.onError?.(err);
      }
    }
  })();

  return {
    get: (namespace, name) => cache.get(namespace ? `${namespace}/${name}` : name),
    list: () => [...cache.values()],
    synced: syncedPromise,
    hasSynced: () => synced,
    get resourceVersion() {
      return rv;
    },
    get lists() {
      return lists;
    },
    async stop() {
      stopper.abort();
      await current?.stop();
      await loop;
      if (!synced) failSynced(new Error(`informer for ${path} stopped before it synced`));
    },
  };
}
