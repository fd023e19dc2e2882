/**
 * Where a pod's running sandbox and its network namespace come from: the
 * runtime, never a guess from names.
 *
 * - {@link criSandboxes}: ask the runtime's CRI socket (the node daemon,
 *   beside a runtime that runs hydra as its CNI): the pod's READY sandbox
 *   and the namespace its verbose status names (asked once per sandbox).
 * - {@link sandboxTable}: what NRI told (the NRI plugin): sandboxes noted
 *   as they start and are listed on Synchronize, forgotten as they stop.
 *
 * @module
 */

import { createRuntimeClient, readySandboxOf } from "../cri/runtime.ts";
import type { Sandbox, SandboxFinder } from "./options.ts";

/** A finder asking the CRI runtime on `socket`; `close` ends its connection. */
export function criSandboxes(
  socket: string,
  timeoutMs: number,
): SandboxFinder & { close(): void } {
  const client = createRuntimeClient(socket);
  const known = new Map<string, Sandbox>();
  return {
    async find(pod) {
      const found = await readySandboxOf(client, pod.uid, timeoutMs, known.get(pod.uid));
      if (found) known.set(pod.uid, found);
      else known.delete(pod.uid);
      return found;
    },
    forget: (uid) => known.delete(uid),
    close: () => client.close(),
  };
}

/** A sandbox as NRI describes it. */
export interface NotedSandbox {
  id: string;
  /** The pod's UID. */
  uid: string;
  /** Its network namespace; undefined for a host-network pod. */
  netns?: string;
}

/** Sandboxes noted from NRI events. */
export interface SandboxTable extends SandboxFinder {
  /** A sandbox runs (RunPodSandbox, or listed by Synchronize). */
  started(s: NotedSandbox): void;
  /** A sandbox stopped or was removed. */
  stopped(id: string): void;
  /** Synchronize's list: the sandboxes that exist, all others forgotten. */
  listed(all: readonly NotedSandbox[]): void;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** An empty table. */
export function sandboxTable(): SandboxTable {
  const byUid = new Map<string, NotedSandbox>();
  const find = (pod: { uid: string }): Promise<Sandbox | undefined> => {
    const s = byUid.get(pod.uid);
    return Promise.resolve(s?.netns && exists(s.netns) ? { id: s.id, netns: s.netns } : undefined);
  };
  return {
    find,
    started(s) {
      byUid.set(s.uid, s);
    },
    stopped(id) {
      for (const [uid, s] of byUid) if (s.id === id) byUid.delete(uid);
    },
    listed(all) {
      byUid.clear();
      for (const s of all) byUid.set(s.uid, s);
    },
  };
}
