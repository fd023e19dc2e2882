/**
 * Events about policies and pods, as `kubectl describe` shows them: an
 * invalid policy, a network a policy names that does not exist, a pod whose
 * rules could not be written. Each distinct message is recorded once per
 * object version (a node agent re-evaluates often; the same Warning every
 * pass would flood the API server), and at most `burst` Events go out at
 * once; writing them never holds up enforcement.
 *
 * @module
 */

import type { KubeClient } from "../kube/client.ts";
import type { KubeEvent } from "../kube/objects.ts";
import { eventPath } from "../kube/objects.ts";

/** The object an Event is about. */
export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
  /** Part of the de-duplication key: a new version may be told again. */
  resourceVersion?: string;
}

/** Records Events. */
export interface EventSink {
  /** Records an Event unless the same one was recorded for this version already. */
  record(obj: InvolvedObject, type: "Normal" | "Warning", reason: string, message: string): void;
  /** Forgets an object (deleted), so a new one of the same name is told afresh. */
  forget(obj: { namespace: string; name: string; kind: string }): void;
  /** Waits for Events in flight (for a clean stop). */
  drain(): Promise<void>;
}

/** Event messages longer than this are cut, as event recorders do. */
const MESSAGE_MAX = 1024;

/** Options of {@link createEventSink}. */
export interface EventSinkOptions {
  host: string;
  component?: string;
  /** Events in flight at most (the rest are dropped and counted); 16. */
  burst?: number;
  onError?: (err: unknown) => void;
}

/** An Event sink writing through `client`. */
export function createEventSink(client: KubeClient, opts: EventSinkOptions): EventSink {
  const told = new Map<string, Set<string>>();
  const inFlight = new Set<Promise<unknown>>();
  const component = opts.component ?? "hydra-policy";
  const objKey = (o: { kind: string; namespace: string; name: string }) =>
    `${o.kind}/${o.namespace}/${o.name}`;
  return {
    record(obj, type, reason, message) {
      const key = objKey(obj);
      const seen = told.get(key) ?? new Set();
      told.set(key, seen);
      const id = `${obj.uid}/${obj.resourceVersion}/${reason}/${message}`;
      if (seen.has(id) || inFlight.size >= (opts.burst ?? 16)) return;
      seen.add(id);
      const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      const text = message.length > MESSAGE_MAX
        ? message.slice(0, MESSAGE_MAX - 3) + "..."
        : message;
      const event: KubeEvent = {
        apiVersion: "v1",
        kind: "Event",
        metadata: {
          name: `${obj.name}.${Date.now().toString(16)}${
            crypto.getRandomValues(new Uint32Array(1))[0].toString(16)
          }`,
          namespace: obj.namespace,
        },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: obj.name,
          namespace: obj.namespace,
          uid: obj.uid,
        },
        reason,
        message: text,
        type,
        source: { component, host: opts.host },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        reportingComponent: component,
        reportingInstance: opts.host,
      };
      const p = client.create(eventPath(obj.namespace), event).catch((err) => {
        seen.delete(id);
        opts.onError?.(err);
      }).finally(() => inFlight.delete(p));
      inFlight.add(p);
    },
    forget(obj) {
      told.delete(objKey(obj));
    },
    async drain() {
      await Promise.all([...inFlight]);
    },
  };
}
