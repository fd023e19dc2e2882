/**
 * The API calls of the cluster-wide IPAM on its two kinds of objects, each
 * bounded by the caller's deadline and retried while the API server is
 * only briefly away (transient failures, see kube/errors.ts). A
 * compare-and-swap that loses is not an error here: `update` and `create`
 * answer "conflict" / "exists" and the caller reads again.
 *
 * When the deadline passes with the API still away the call throws
 * {@link ApiUnavailableError}; the plugin answers CNI code 11 with it.
 *
 * @module
 */

import type { KubeClient } from "../../kube/client.ts";
import { createBackoff, delay } from "../../pkg/async.ts";
import { isConflict, isNotFound, isTransient, KubeApiError } from "../../kube/errors.ts";
import {
  type AddressBlock,
  type AddressPool,
  blockPath,
  NETWORK_LABEL,
  NODE_LABEL,
  nodeKey,
  poolPath,
} from "./objects.ts";

/** The API server did not answer in time; what was being done is in the message. */
export class ApiUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ApiUnavailableError";
  }
}

/** A point in time (ms since the epoch) work must finish by. */
export interface Deadline {
  readonly end: number;
}

/** A deadline `ms` from now. */
export function deadlineIn(ms: number): Deadline {
  return { end: Date.now() + ms };
}

/** Milliseconds left (0 when past). */
export function remaining(d: Deadline): number {
  return Math.max(0, d.end - Date.now());
}

/** Longest single request: a slow answer is retried rather than waited for. */
const REQUEST_CAP_MS = 5_000;

/**
 * Runs `call` with a per-request deadline inside `d`, retrying transient
 * failures with backoff; throws ApiUnavailableError once `d` has passed.
 */
export async function withRetry<T>(
  what: string,
  d: Deadline,
  call: (timeoutMs: number) => Promise<T>,
): Promise<T> {
  const backoff = createBackoff({ initialMs: 50, maxMs: 1_000, jitter: 0.2 });
  let last: unknown;
  for (;;) {
    const left = remaining(d);
    if (left <= 0) {
      const why = last instanceof Error ? `: ${last.message}` : "";
      throw new ApiUnavailableError(`${what}: the API server did not answer in time${why}`);
    }
    try {
      return await call(Math.min(left, REQUEST_CAP_MS));
    } catch (err) {
      if (!isTransient(err)) throw err;
      last = err;
      await delay(Math.min(backoff.next(), remaining(d)));
    }
  }
}

/** Reads one block; undefined when it does not exist. */
export async function getBlock(
  client: KubeClient,
  name: string,
  d: Deadline,
): Promise<AddressBlock | undefined> {
  try {
    return await withRetry(
      `get address block ${name}`,
      d,
      (timeoutMs) => client.get<AddressBlock>(blockPath(name), { timeoutMs }),
    );
  } catch (err) {
    if (isNotFound(err) && !isMissingApi(err)) return undefined;
    throw err;
  }
}

/** Blocks of a network (all of them, or those affine to `node`). */
export async function listBlocks(
  client: KubeClient,
  network: string,
  d: Deadline,
  node?: string,
): Promise<AddressBlock[]> {
  let selector = `${NETWORK_LABEL}=${network}`;
  if (node !== undefined) selector += `,${NODE_LABEL}=${nodeKey(node)}`;
  const list = await withRetry(
    `list address blocks of network "${network}"`,
    d,
    (timeoutMs) => client.list<AddressBlock>(blockPath(), { labelSelector: selector, timeoutMs }),
  );
  return list.items ?? [];
}

/** Creates a block; "exists" when another writer created it first. */
export async function createBlock(
  client: KubeClient,
  obj: AddressBlock,
  d: Deadline,
): Promise<AddressBlock | "exists"> {
  try {
    return await withRetry(
      `create address block ${obj.metadata.name}`,
      d,
      (timeoutMs) => client.create<AddressBlock>(blockPath(), obj, { timeoutMs }),
    );
  } catch (err) {
    if (isConflict(err)) return "exists";
    throw err;
  }
}

/**
 * Replaces a block if it is still at the resourceVersion `obj` carries;
 * "conflict" when someone changed (or deleted) it since.
 */
export async function updateBlock(
  client: KubeClient,
  obj: AddressBlock,
  d: Deadline,
): Promise<AddressBlock | "conflict"> {
  try {
    return await withRetry(
      `update address block ${obj.metadata.name}`,
      d,
      (timeoutMs) => client.update<AddressBlock>(blockPath(obj.metadata.name), obj, { timeoutMs }),
    );
  } catch (err) {
    if (isConflict(err) || (isNotFound(err) && !isMissingApi(err))) return "conflict";
    throw err;
  }
}

/** Deletes a block if it is still at `resourceVersion`; false when it changed or is gone. */
export async function deleteBlock(
  client: KubeClient,
  name: string,
  resourceVersion: string,
  d: Deadline,
): Promise<boolean> {
  try {
    await withRetry(
      `delete address block ${name}`,
      d,
      (timeoutMs) =>
        client.request("DELETE", blockPath(name), {
          apiVersion: "v1",
          kind: "DeleteOptions",
          preconditions: { resourceVersion },
        }, { timeoutMs }),
    );
    return true;
  } catch (err) {
    if (isConflict(err) || isNotFound(err)) return false;
    throw err;
  }
}

/** Reads one pool; undefined when it does not exist. */
export async function getPool(
  client: KubeClient,
  name: string,
  d: Deadline,
): Promise<AddressPool | undefined> {
  try {
    return await withRetry(
      `get address pool ${name}`,
      d,
      (timeoutMs) => client.get<AddressPool>(poolPath(name), { timeoutMs }),
    );
  } catch (err) {
    if (isNotFound(err) && !isMissingApi(err)) return undefined;
    throw err;
  }
}

/** Pools of a network (every network when `network` is undefined). */
export async function listPools(
  client: KubeClient,
  d: Deadline,
  network?: string,
): Promise<AddressPool[]> {
  const labelSelector = network === undefined ? undefined : `${NETWORK_LABEL}=${network}`;
  const list = await withRetry(
    "list address pools",
    d,
    (timeoutMs) => client.list<AddressPool>(poolPath(), { labelSelector, timeoutMs }),
  );
  return list.items ?? [];
}

/** Creates a pool; "exists" when it already does. */
export async function createPool(
  client: KubeClient,
  obj: AddressPool,
  d: Deadline,
): Promise<AddressPool | "exists"> {
  try {
    return await withRetry(
      `create address pool ${obj.metadata.name}`,
      d,
      (timeoutMs) => client.create<AddressPool>(poolPath(), obj, { timeoutMs }),
    );
  } catch (err) {
    if (isConflict(err)) return "exists";
    throw err;
  }
}

/**
 * True when the error says the resource type itself is not served (its CRD
 * is not installed): a 404 that is not an object's NotFound Status.
 */
export function isMissingApi(err: unknown): boolean {
  return err instanceof KubeApiError && err.status === 404 && err.reason !== "NotFound";
}
