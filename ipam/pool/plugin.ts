/**
 * hydra-pool: cluster-wide IPAM with whereabouts' configuration, its state
 * in AddressPool and AddressBlock objects (see objects.ts, allocator.ts,
 * docs/cluster-ipam.md). ADD returns only after every address is recorded
 * in the API; a failure leaves nothing recorded that a retry or the
 * reclaim controller would not find.
 *
 * Where it runs: in the node daemon when one answers on `daemonSocket`
 * (the exec'd plugin hands it the invocation: one writer per node, which
 * batches), else in this process with its own API client.
 *
 * @module
 */

import { fromInternal, parseResult } from "../../cni/convert.ts";
import { outputDocument, pluginError } from "../../cni/plugin_output.ts";
import { CniError, ErrorCode } from "../../cni/errors.ts";
import type { AnyResult, CmdArgs, IpConfig, Plugin, Result } from "../../cni/types.ts";
import { CURRENT_VERSION, SUPPORTED_VERSIONS } from "../../cni/types.ts";
import { isNotFound, isTransient, KubeApiError } from "../../kube/errors.ts";
import { withTimeout } from "../../pkg/async.ts";
import type { Pod } from "../../kube/objects.ts";
import { formatIpAddr, type IpAddr, parseIpAddrOrCidr } from "../../ipaddr/ip.ts";
import type { AllocationRequest } from "./allocator.ts";
import { PoolExhaustedError } from "./errors.ts";
import {
  type Access,
  loadAccess,
  loadPoolConfig,
  type PodRef,
  podRefOf,
  type PoolConfig,
} from "./config.ts";
import { enforceIpamShape } from "../config.ts";
import { POOL_SHAPE } from "../schemas.ts";
import { type PoolContext, poolContext } from "./host.ts";
import { networkKey } from "./objects.ts";
import { isReservedSandbox } from "./node_owned.ts";
import { ensurePools } from "./pools.ts";
import {
  ApiUnavailableError,
  type Deadline,
  deadlineIn,
  isMissingApi,
  listPools,
  withRetry,
} from "./store.ts";

/** The CNI_* variables of an invocation, to hand it on. */
function envOf(args: CmdArgs): (name: string) => string | undefined {
  const env: Record<string, string> = {
    CNI_COMMAND: args.command,
    CNI_CONTAINERID: args.containerId,
    CNI_NETNS: args.netns,
    CNI_IFNAME: args.ifName,
    CNI_ARGS: args.args,
    CNI_PATH: args.path.join(":"),
  };
  if (args.netnsOverride) env.CNI_NETNS_OVERRIDE = "1";
  return (name) => env[name];
}

/**
 * Hands the invocation to the node daemon when one answers (see
 * exec_shim.ts, which declines what must run here); undefined when it is to
 * run here. The daemon's outcome comes back as this plugin's.
 */
async function viaDaemon(args: CmdArgs): Promise<{ result?: AnyResult } | undefined> {
  if ((await import("./host.ts")).isPoolHost()) return undefined;
  const { poolViaDaemon } = await import("./exec_shim.ts");
  const out = await poolViaDaemon(envOf(args), args.stdinData);
  if (!out) return undefined;
  if (out.code !== 0) throw pluginError(out);
  return args.command === "ADD" ? { result: parseResult(outputDocument(out, "node daemon")) } : {};
}

/** Turns what went wrong into the CNI error the runtime sees. */
export function poolCniError(err: unknown, what: string): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof ApiUnavailableError) {
    return new CniError(ErrorCode.TryAgainLater, `hydra-pool: ${what}: ${err.message}`);
  }
  if (isMissingApi(err)) {
    return new CniError(
      ErrorCode.PluginNotAvailable,
      `hydra-pool: ${what}: the API server does not serve ${(err as KubeApiError).path}: ` +
        "install hydra's CRDs (deploy/crds/address-pools.yaml)",
    );
  }
  if (err instanceof KubeApiError && err.status === 403) {
    return new CniError(
      ErrorCode.Internal,
      `hydra-pool: ${what}: permission denied (${err.message}); see the hydra-ipam ClusterRole in deploy/`,
    );
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new CniError(
    isTransient(err) ? ErrorCode.TryAgainLater : ErrorCode.Internal,
    `hydra-pool: ${what}: ${msg}`,
  );
}

/** Runs `body` within the config's deadline; an API that does not answer in time is code 11. */
async function bounded<T>(
  access: Access,
  what: string,
  body: (d: Deadline) => Promise<T>,
): Promise<T> {
  const d = deadlineIn(access.apiTimeoutMs);
  try {
    return await withTimeout(
      body(d),
      access.apiTimeoutMs + 250,
      () => new ApiUnavailableError(`no answer within ${access.apiTimeoutMs / 1000} s`),
    );
  } catch (err) {
    throw poolCniError(err, what);
  }
}

/** A StatefulSet pod's name: `<statefulset>-<ordinal>`. */
const ORDINAL_NAME = /-(0|[1-9][0-9]*)$/;

/**
 * The pod's UID and owning StatefulSet, read from a cache or the API; an
 * absent pod has none. Only a pod whose name could be a StatefulSet's (or
 * whose UID the runtime did not pass) is read: the others need nothing
 * the runtime did not say.
 */
async function podFacts(ctx: PoolContext, ref: PodRef | undefined, d: Deadline) {
  if (!ref) return { uid: undefined, statefulSet: undefined };
  if (ref.uid && !ORDINAL_NAME.test(ref.name)) return { uid: ref.uid, statefulSet: undefined };
  let pod: Pod | undefined;
  const path = `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/pods/${
    encodeURIComponent(ref.name)
  }`;
  try {
    pod = await withRetry(
      `read pod ${ref.namespace}/${ref.name}`,
      d,
      (timeoutMs) =>
        ctx.readPod
          ? ctx.readPod(ref.namespace, ref.name, ref.uid, timeoutMs)
          : ctx.client.get<Pod>(path, { timeoutMs }),
    );
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const uid = ref.uid ?? pod?.metadata.uid;
  const samePod = pod && (!ref.uid || pod.metadata.uid === ref.uid);
  const owners = (samePod ? pod!.metadata.ownerReferences : undefined) as
    | { kind?: string; name?: string; controller?: boolean }[]
    | undefined;
  const sts = owners?.find((o) => o.kind === "StatefulSet" && o.controller);
  return { uid, statefulSet: sts?.name, pod: samePod ? pod : undefined };
}

function handle(): string {
  return crypto.randomUUID().slice(0, 18);
}

function ipConfigs(cfg: PoolConfig, ips: IpAddr[]): IpConfig[] {
  return ips.map((ip, i) => {
    const r = cfg.ranges[i];
    const c: IpConfig = { address: `${formatIpAddr(ip)}/${r.cidr.prefix}` };
    if (r.gateway) c.gateway = formatIpAddr(r.gateway);
    return c;
  });
}

/** Tells the pod why it gets no address (best effort, at most a second). */
async function exhaustedEvent(ctx: PoolContext, ref: PodRef | undefined, err: PoolExhaustedError) {
  if (!ref) return;
  const pod = { metadata: { name: ref.name, namespace: ref.namespace, uid: ref.uid } } as Pod;
  const init = {
    type: "Warning" as const,
    reason: "AddressPoolExhausted",
    message: err.message,
    host: ctx.nodeName,
  };
  if (ctx.recordEvent) return ctx.recordEvent(pod, init);
  const { createEvent } = await import("../../kube/objects.ts");
  await createEvent(ctx.client, pod, init, { timeoutMs: 1_000 }).catch(() => {});
}

async function allocateHere(args: CmdArgs, cfg: PoolConfig): Promise<IpAddr[]> {
  const ctx = await poolContext(cfg).catch((err) => {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `hydra-pool: ${(err as Error).message}`);
  });
  let facts: Awaited<ReturnType<typeof podFacts>> | undefined;
  try {
    return await bounded(cfg, "allocate", async (d) => {
      facts = await podFacts(ctx, cfg.pod, d);
      await ensurePools(ctx.client, cfg, d);
      const pod = cfg.pod ? { ...cfg.pod, ...(facts.uid ? { uid: facts.uid } : {}) } : undefined;
      const reqs: AllocationRequest[] = cfg.ranges.map((range, i) => ({
        range,
        pod,
        statefulSet: facts!.statefulSet,
        containerID: args.containerId,
        ifName: args.ifName,
        static: cfg.statics.get(i),
        handle: handle(),
        importWhereabouts: cfg.importWhereabouts,
      }));
      const started = performance.now();
      try {
        const ips = await ctx.allocator(cfg.networkKey).allocate(reqs, d);
        for (const r of cfg.ranges) {
          ctx.metrics.allocation(r.name, "ok", (performance.now() - started) / 1000);
        }
        return ips;
      } catch (err) {
        const result = err instanceof PoolExhaustedError ? "exhausted" : "error";
        for (const r of cfg.ranges) {
          ctx.metrics.allocation(r.name, result, (performance.now() - started) / 1000);
        }
        throw err;
      }
    });
  } catch (err) {
    if (err instanceof PoolExhaustedError) {
      await exhaustedEvent(ctx, cfg.pod && { ...cfg.pod, uid: cfg.pod.uid ?? facts?.uid }, err);
    }
    throw err;
  }
}

/**
 * Refuses a pod's invocation under a sandbox id reserved for a node's own
 * allocation (see node_owned.ts): it must never take over, nor free, the
 * node's gateway, which the reclaim controller judges by the node alone.
 */
function refuseReservedSandbox(args: CmdArgs, pod: PodRef | undefined): void {
  if (!pod || !isReservedSandbox(args.containerId)) return;
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `hydra-pool: sandbox id ${args.containerId} is reserved for a node's own address; ` +
      `pod ${pod.namespace}/${pod.name} cannot use it`,
  );
}

async function add(args: CmdArgs): Promise<AnyResult> {
  enforceIpamShape(args, POOL_SHAPE);
  const cfg = loadPoolConfig(args);
  refuseReservedSandbox(args, cfg.pod);
  const handed = await viaDaemon(args);
  if (handed?.result) return handed.result;
  const ips = await allocateHere(args, cfg);
  const result: Result = { cniVersion: CURRENT_VERSION, ips: ipConfigs(cfg, ips) };
  if (cfg.routes.length > 0) result.routes = cfg.routes;
  if (cfg.dns) result.dns = cfg.dns;
  return fromInternal(result, cfg.cniVersion);
}

/** Addresses of a prevResult, in any version's shape. */
export function previousAddresses(prev: unknown): IpAddr[] {
  if (typeof prev !== "object" || prev === null) return [];
  const p = prev as Record<string, unknown>;
  const texts: unknown[] = [];
  if (Array.isArray(p.ips)) texts.push(...p.ips.map((c) => (c as IpConfig | null)?.address));
  for (const key of ["ip4", "ip6"]) {
    const block = p[key] as { ip?: unknown } | undefined;
    if (block && typeof block === "object") texts.push(block.ip);
  }
  return texts.flatMap((t) => {
    const ip = typeof t === "string" ? parseIpAddrOrCidr(t) : undefined;
    return ip ? [ip] : [];
  });
}

/** The network key of a config, read leniently (DEL must work even on a broken config). */
function networkOf(args: CmdArgs): string {
  const name = (args.config.ipam as Record<string, unknown> | undefined)?.network_name;
  return networkKey(typeof name === "string" ? name : "");
}

async function del(args: CmdArgs): Promise<void> {
  const access = loadAccess(args);
  refuseReservedSandbox(args, podRefOf(args.args));
  if (await viaDaemon(args)) return;
  const ctx = await poolContext(access).catch((err) => {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `hydra-pool: ${(err as Error).message}`);
  });
  await bounded(access, "release", (d) =>
    ctx.allocator(networkOf(args)).release({
      containerID: args.containerId,
      ifName: args.ifName,
      hints: previousAddresses(args.config.prevResult),
    }, d));
}

async function check(args: CmdArgs): Promise<void> {
  enforceIpamShape(args, POOL_SHAPE);
  const cfg = loadPoolConfig(args);
  const ctx = await poolContext(cfg).catch((err) => {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `hydra-pool: ${(err as Error).message}`);
  });
  const hints = previousAddresses(args.config.prevResult);
  const held = await bounded(
    cfg,
    "check",
    (d) => ctx.allocator(cfg.networkKey).held(args.containerId, args.ifName, hints, d),
  );
  const missing = cfg.ranges.filter((r) => !held.some((a) => a.pool === r.name));
  if (missing.length > 0) {
    throw new CniError(
      ErrorCode.Internal,
      `no address of pool ${missing.map((r) => r.name).join(", ")} is recorded for container ` +
        `${args.containerId} interface ${args.ifName}`,
    );
  }
  const prev = previousAddresses(args.config.prevResult).map(formatIpAddr);
  const stray = prev.filter((ip) => !held.some((a) => a.ip === ip));
  if (stray.length > 0) {
    throw new CniError(
      ErrorCode.Internal,
      `address ${stray.join(", ")} of the previous result is not recorded for container ` +
        `${args.containerId} interface ${args.ifName}`,
    );
  }
}

async function status(args: CmdArgs): Promise<void> {
  const access = loadAccess(args);
  const ctx = await poolContext(access).catch((err) => {
    throw new CniError(ErrorCode.PluginNotAvailable, `hydra-pool: ${(err as Error).message}`);
  });
  try {
    await bounded(access, "status", (d) => listPools(ctx.client, d, networkOf(args)));
  } catch (err) {
    const e = err as CniError;
    throw new CniError(ErrorCode.PluginNotAvailable, e.message, e.details);
  }
}

/** The cluster-wide IPAM plugin (invoked as `hydra-pool`). */
export const plugin: Plugin = {
  kind: "whereabouts",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del,
  check,
  status,
};
