/**
 * `hydra hybrid controller`: keeps the status of Network and Subnet
 * objects — address counts (total, used, available, shown by
 * `kubectl get`) and whether each subnet is Ready or Refused (overlapping
 * an older one, invalid) — from the objects and the addresses pods hold
 * (their `k8s.v1.cni.cncf.io/network-status`, and the allocations the
 * cluster IPAM records in AddressBlocks; an address counts once). One pass lists everything
 * and writes only the statuses that changed; passes repeat every
 * `--interval` seconds.
 *
 * @module
 */

import type { KubeClient } from "../kube/client.ts";
import { isNotFound } from "../kube/errors.ts";
import type { AddressBlock } from "../ipam/pool/objects.ts";
import { NETWORK_STATUS_ANNOTATION, parseNetworkStatus } from "../kube/status.ts";
import { createLogger, type Logger } from "../pkg/log.ts";
import type { HybridNetwork } from "./model.ts";
import {
  evaluate,
  type Evaluation,
  HYBRID_API,
  type NetworkObject,
  type SubnetObject,
} from "./objects.ts";

interface PodLike {
  metadata: { annotations?: Record<string, string> };
  status?: { phase?: string };
}

/** The addresses pods that are not finished hold, from their network-status. */
export function podAddresses(pods: readonly PodLike[]): string[] {
  const ips: string[] = [];
  for (const pod of pods) {
    if (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed") continue;
    const text = pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION];
    if (!text) continue;
    let entries: unknown[];
    try {
      entries = parseNetworkStatus(text);
    } catch {
      continue; // a hostile or broken annotation counts nothing
    }
    for (const e of entries) {
      const list = (e as { ips?: unknown }).ips;
      if (Array.isArray(list)) {
        ips.push(...list.filter((ip): ip is string => typeof ip === "string"));
      }
    }
  }
  return ips;
}

function sameStatus(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** One pass: lists the objects and pods, writes the statuses that changed; returns the evaluation. */
export async function reconcileHybridObjects(
  client: KubeClient,
  log?: Logger,
): Promise<Evaluation> {
  const base = `/apis/${HYBRID_API}`;
  const [nets, subnets, pods, blocks] = await Promise.all([
    client.list<NetworkObject>(`${base}/networks`),
    client.list<SubnetObject>(`${base}/subnets`),
    client.list<PodLike>("/api/v1/pods"),
    // The cluster IPAM's records, where it is installed (a pool address counts once a pod holds it).
    client.list<AddressBlock>(`${base}/addressblocks`).catch((err) => {
      if (isNotFound(err)) return { items: [] as AddressBlock[] };
      throw err;
    }),
  ]);
  const pooled = blocks.items.flatMap((b) => (b.spec.allocations ?? []).map((a) => a.ip));
  const ev = evaluate(nets.items, subnets.items, [...podAddresses(pods.items), ...pooled]);
  const writes: Promise<unknown>[] = [];
  for (const s of subnets.items) {
    const status = ev.subnets.get(s.metadata.name);
    if (!status || sameStatus(status, s.status)) continue;
    if (status.phase === "Refused") {
      log?.warn(status.message ?? "refused", { subnet: s.metadata.name });
    }
    writes.push(client.patch(`${base}/subnets/${s.metadata.name}/status`, { status }, "merge"));
  }
  for (const n of nets.items) {
    const status = ev.networks.get(n.metadata.name);
    if (!status || sameStatus(status, n.status)) continue;
    writes.push(client.patch(`${base}/networks/${n.metadata.name}/status`, { status }, "merge"));
  }
  const results = await Promise.allSettled(writes);
  const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
  if (failed.length) {
    // An object deleted or changed meanwhile: the next pass writes what is then true.
    log?.warn("status writes failed", { failed: failed.length, error: String(failed[0].reason) });
  }
  return ev;
}

/** Runs the controller until SIGTERM/SIGINT; returns the exit status. */
export async function runHybridController(args: string[]): Promise<number> {
  let kubeconfig: string | undefined;
  let intervalMs = 10_000;
  let once = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--kubeconfig") kubeconfig = args[++i];
    else if (args[i] === "--interval") intervalMs = Number(args[++i]) * 1000;
    else if (args[i] === "--once") once = true;
    else {
      console.error(`hydra hybrid controller: unknown argument ${args[i]}`);
      return 2;
    }
  }
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    console.error("hydra hybrid controller: --interval must be a positive number of seconds");
    return 2;
  }
  const log = createLogger({ fields: { role: "hybrid-controller" } });
  const { resolveConnection } = await import("../kube/kubeconfig.ts");
  const { createKubeClient } = await import("../kube/client.ts");
  const conn = await resolveConnection(kubeconfig);
  if (!conn) {
    console.error("hydra hybrid controller: no kubeconfig and not in a cluster");
    return 2;
  }
  const client = createKubeClient(conn, { userAgent: "hydra-hybrid-controller" });
  let stop = false;
  const stopped = new Promise<void>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(sig, () => {
        stop = true;
        resolve();
      });
    }
  });
  try {
    do {
      try {
        const ev = await reconcileHybridObjects(client, log);
        if (once) console.log(JSON.stringify(Object.fromEntries(ev.subnets)));
      } catch (err) {
        log.error("pass failed", { error: (err as Error).message });
        if (once) return 1;
      }
      if (once) return 0;
      await Promise.race([stopped, new Promise((r) => setTimeout(r, intervalMs))]);
    } while (!stop);
    return 0;
  } finally {
    client.close();
  }
}

/**
 * The hybrid networks as the router programs them from the API: each
 * Network with its accepted Subnets (an overlapping, invalid or orphaned
 * subnet is left out, exactly as its status says).
 */
export async function networksFromApi(client: KubeClient): Promise<HybridNetwork[]> {
  const base = `/apis/${HYBRID_API}`;
  const [nets, subnets] = await Promise.all([
    client.list<NetworkObject>(`${base}/networks`),
    client.list<SubnetObject>(`${base}/subnets`),
  ]);
  return evaluate(nets.items, subnets.items, []).accepted;
}
