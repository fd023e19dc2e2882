/**
 * Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
 * leaderelection does it: the holder renews the lease every `retryMs`;
 * another candidate takes it over only once the lease has not changed for
 * `leaseMs` by its own clock (so clock skew between machines does not
 * matter), with a compare-and-swap on the Lease's resourceVersion. A
 * leader that could not renew for `renewDeadlineMs` stops leading.
 *
 * Only the reclaim controller uses it; allocation never waits for a lease.
 *
 * @module
 */

import type { Logger } from "../pkg/log.ts";
import type { KubeClient } from "../kube/client.ts";
import { isConflict, isNotFound } from "../kube/errors.ts";
import { delay } from "../pkg/async.ts";

/** coordination.k8s.io/v1 Lease, the fields used. */
interface Lease {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** Options of {@link startLeaderElection}. */
export interface LeaderOptions {
  client: KubeClient;
  namespace: string;
  name: string;
  identity: string;
  /** How long a lease not renewed stays someone's; 15 s. */
  leaseMs?: number;
  /** A leader that could not renew for this long steps down; 10 s. */
  renewDeadlineMs?: number;
  /** Between attempts; 2 s. */
  retryMs?: number;
  log?: Logger;
  onChange?: (leading: boolean) => void;
}

/** A running election. */
export interface LeaderElection {
  isLeader(): boolean;
  /** Stops; a leader gives the lease up (so a successor need not wait it out). */
  stop(): Promise<void>;
}

function microTime(ms = Date.now()): string {
  return new Date(ms).toISOString().replace("Z", "000Z");
}

function leasePath(ns: string, name?: string): string {
  const base = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/leases`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

/** Starts campaigning for the lease. */
export function startLeaderElection(opts: LeaderOptions): LeaderElection {
  const leaseMs = opts.leaseMs ?? 15_000;
  const renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
  const retryMs = opts.retryMs ?? 2_000;
  const { client } = opts;
  let leading = false;
  let lastRenew = 0;
  let observed: { key: string; at: number } | undefined;
  const stopper = new AbortController();

  const set = (v: boolean) => {
    if (v === leading) return;
    leading = v;
    opts.log?.info(v ? "leading" : "not leading", { lease: `${opts.namespace}/${opts.name}` });
    opts.onChange?.(v);
  };

  function body(prev: Lease | undefined, transitions: number): Lease {
    const now = microTime();
    const keep = prev?.spec.holderIdentity === opts.identity;
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name: opts.name,
        namespace: opts.namespace,
        ...(prev?.metadata.resourceVersion
          ? { resourceVersion: prev.metadata.resourceVersion }
          : {}),
      },
      spec: {
        holderIdentity: opts.identity,
        leaseDurationSeconds: Math.ceil(leaseMs / 1000),
        acquireTime: keep ? prev!.spec.acquireTime : now,
        renewTime: now,
        leaseTransitions: transitions,
      },
    };
  }

  /** One attempt to acquire or renew; true when this candidate holds the lease afterwards. */
  async function attempt(): Promise<boolean> {
    const timeoutMs = Math.min(retryMs * 2, 5_000);
    let lease: Lease | undefined;
    try {
      lease = await client.get<Lease>(leasePath(opts.namespace, opts.name), { timeoutMs });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!lease) {
      await client.create(leasePath(opts.namespace), body(undefined, 0), { timeoutMs });
      return true;
    }
    const holder = lease.spec.holderIdentity ?? "";
    const key = `${holder}|${lease.spec.renewTime ?? ""}`;
    if (observed?.key !== key) observed = { key, at: Date.now() };
    const mine = holder === opts.identity;
    const expired = holder === "" ||
      Date.now() - observed.at > (lease.spec.leaseDurationSeconds ?? 15) * 1000;
    if (!mine && !expired) return false;
    const transitions = (lease.spec.leaseTransitions ?? 0) + (mine ? 0 : 1);
    await client.update(leasePath(opts.namespace, opts.name), body(lease, transitions), {
      timeoutMs,
    });
    return true;
  }

  const loop = (async () => {
    while (!stopper.signal.aborted) {
      try {
        if (await attempt()) {
          lastRenew = Date.now();
          set(true);
        } else set(false);
      } catch (err) {
        if (!isConflict(err)) opts.log?.warn("lease attempt failed", { error: err });
        if (leading && Date.now() - lastRenew > renewDeadlineMs) set(false);
        else if (!leading) set(false);
      }
      await delay(retryMs, stopper.signal);
    }
  })();

  return {
    isLeader: () => leading,
    async stop() {
      stopper.abort();
      await loop;
      if (!leading) return;
      set(false);
      try {
        const lease = await client.get<Lease>(leasePath(opts.namespace, opts.name), {
          timeoutMs: 2_000,
        });
        if (lease.spec.holderIdentity === opts.identity) {
          lease.spec.holderIdentity = "";
          lease.spec.renewTime = microTime();
          await client.update(leasePath(opts.namespace, opts.name), lease, { timeoutMs: 2_000 });
        }
      } catch {
        // The lease runs out by itself.
      }
    },
  };
}
