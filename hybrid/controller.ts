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
import { isNodeGateway } from "../hybridnet/gateway.ts";
import { NETWORK_STATUS_ANNOTATION, parseNetworkStatus } from "../kube/status.ts";
import { createLogger, type Logger } from "../pkg/log.ts";
import { createRegistry } from "../pkg/metrics.ts";
import { type ListenAddress, parseListenAddress, startHealthEndpoint } from "../pkg/http.ts";
import {
  evaluate,
  type Evaluation,
  HYBRID_API,
  type NetworkObject,
  type SubnetObject,
} from "../hybridnet/objects.ts";

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
  // A node's gateway on a pool-backed overlay subnet is the node's, not a pod's: not counted.
  const pooled = blocks.items.flatMap((b) =>
    (b.spec.allocations ?? []).filter((a) => !isNodeGateway(a)).map((a) => a.ip)
  );
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

interface ControllerOptions {
  kubeconfig?: string;
  intervalMs: number;
  once: boolean;
  healthAddr?: ListenAddress;
}

function parseControllerArgs(args: string[]): ControllerOptions {
  const o: ControllerOptions = {
    intervalMs: 10_000,
    once: false,
    healthAddr: parseListenAddress(":9478"),
  };
  for (let i = 0; i < args.length; i++) {
    const value = () => {
      if (args[i + 1] === undefined) throw new Error(`${args[i]} needs a value`);
      return args[++i];
    };
    if (args[i] === "--kubeconfig") o.kubeconfig = value();
    else if (args[i] === "--interval") o.intervalMs = Number(value()) * 1000;
    else if (args[i] === "--once") o.once = true;
    else if (args[i] === "--health-addr") {
      const v = value();
      o.healthAddr = v === "off" ? undefined : parseListenAddress(v);
    } else throw new Error(`unknown argument ${args[i]}`);
  }
  if (!Number.isFinite(o.intervalMs) || o.intervalMs <= 0) {
    throw new Error("--interval must be a positive number of seconds");
  }
  return o;
}

/** The controller's metrics: subnets by phase, addresses by subnet, passes. */
function controllerMetrics() {
  const registry = createRegistry();
  const passes = registry.counter("hydra_hybrid_controller_passes_total", "Passes, by result", [
    "result",
  ]);
  const subnets = registry.gauge("hydra_hybrid_subnets", "Subnets, by phase", ["phase"]);
  const addrs = registry.gauge("hydra_hybrid_subnet_addresses", "Addresses of a subnet", [
    "subnet",
    "state",
  ]);
  let lastOk = false;
  return {
    registry,
    get lastOk() {
      return lastOk;
    },
    record(ev: Evaluation | undefined) {
      lastOk = ev !== undefined;
      passes.inc({ result: ev ? "ok" : "error" });
      if (!ev) return;
      subnets.reset();
      addrs.reset();
      for (const [name, st] of ev.subnets) {
        subnets.inc({ phase: st.phase });
        for (const state of ["total", "used", "available"] as const) {
          addrs.set({ subnet: name, state }, st[state]);
        }
      }
    },
  };
}

/** Runs the controller until SIGTERM/SIGINT (one pass with --once); returns the exit status. */
export async function runHybridController(args: string[]): Promise<number> {
  let o: ControllerOptions;
  try {
    o = parseControllerArgs(args);
  } catch (err) {
    console.error(`hydra hybrid controller: ${(err as Error).message}`);
    return 2;
  }
  const log = createLogger({ fields: { role: "hybrid-controller" } });
  const { resolveConnection } = await import("../kube/kubeconfig.ts");
  const { createKubeClient } = await import("../kube/client.ts");
  const conn = await resolveConnection(o.kubeconfig);
  if (!conn) {
    console.error("hydra hybrid controller: no kubeconfig and not in a cluster");
    return 2;
  }
  const client = createKubeClient(conn, { userAgent: "hydra-hybrid-controller" });
  try {
    if (o.once) {
      const ev = await reconcileHybridObjects(client, log);
      console.log(JSON.stringify(Object.fromEntries(ev.subnets)));
      return 0;
    }
    return await controllerLoop(client, o, log);
  } catch (err) {
    console.error(`hydra hybrid controller: ${(err as Error).message}`);
    return 1;
  } finally {
    client.close();
  }
}

async function controllerLoop(
  client: KubeClient,
  o: ControllerOptions,
  log: Logger,
): Promise<number> {
  const m = controllerMetrics();
  const server = o.healthAddr
    ? await startHealthEndpoint(o.healthAddr, {
      registry: m.registry,
      healthz: () => ({ ok: true }),
      readyz: () => (m.lastOk ? { ok: true } : { ok: false, detail: "no pass succeeded yet" }),
    }, log)
    : undefined;
  let stop = false;
  let wake = () => {};
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(sig, () => {
      stop = true;
      wake();
    });
  }
  while (!stop) {
    try {
      m.record(await reconcileHybridObjects(client, log));
    } catch (err) {
      m.record(undefined);
      log.error("pass failed", { error: (err as Error).message });
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, o.intervalMs);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
  await server?.shutdown();
  return 0;
}
