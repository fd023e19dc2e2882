/**
 * Attaching and releasing a sandbox's extra networks through the
 * attachment engine in this process (engine/attach.ts) — the same engine
 * (delegates in order, rollback on failure, a record under the cache folder
 * so DEL works after restarts) the runtime runs when hydra is its CNI
 * plugin, called directly: what it attached comes back as values.
 *
 * - attach: the source's plan becomes one engine attach with the sandbox id
 *   as container, the sandbox's netns, the first extra interface as the
 *   one it is recorded under, and the pod's K8S_* CNI_ARGS. A sandbox
 *   already attached (state file and record present) is left alone, so a
 *   repeated event or a Synchronize never attaches twice; a record without
 *   a state file is an attach that died half-way and is undone first.
 * - release: every engine record of the sandbox is detached (the engine
 *   deletes the networks in reverse and keeps what failed for the next
 *   try); then the state file goes. Nothing recorded: nothing to do.
 *
 * Calls for one sandbox run one after the other (event hooks, background
 * retries and Synchronize work may otherwise overlap). Releases of
 * different sandboxes also run one at a time: deleting a link holds the
 * JavaScript thread for tens of milliseconds (the kernel waits for RCU), so
 * a burst of Stop events would otherwise starve a RunPodSandbox of the
 * thread past its budget; this way an attach waits for one release at most.
 *
 * @module
 */

import { convertResult } from "../cni/convert.ts";
import { asCniError, CniError, ErrorCode } from "../cni/errors.ts";
import type { AnyResult, NetConf, Result } from "../cni/types.ts";
import type { Logger, LogLevel } from "../pkg/log.ts";
import {
  attach,
  type AttachRequest,
  detach,
  type NetworkPlan,
  recordedInterfaces,
} from "../engine/attach.ts";
import { BUILTINS } from "../engine/builtins.ts";
import type { NodeAgentKube } from "../engine/kube_source.ts";
import {
  createKeyedQueue,
  createSemaphore,
  type KeyedQueue,
  type Semaphore,
} from "../pkg/async.ts";
import { netnsPathOf, type PodSandbox } from "./pod.ts";
import type { AttachPlan, NetworkSource } from "./source.ts";
import {
  type AttachedNetwork,
  loadPodState,
  POD_STATE_KIND,
  type PodState,
  removePodState,
  savePodState,
} from "./state.ts";

/** Settings of the attachment engine. */
export interface AttacherOptions {
  /** Where records, results and pod state live. */
  cacheDir: string;
  /** Folders searched for delegate plugins that are not built in (CNI_PATH). */
  cniPath: readonly string[];
  source: NetworkSource;
  log: Logger;
  /** The meta-CNI's own log level and file (it logs per call). */
  metaLogLevel?: LogLevel;
  metaLogFile?: string;
  /** Bound on each exec'd delegate, seconds (the meta-CNI's `delegateTimeout`). */
  delegateTimeoutS?: number;
  /** The meta-CNI's `chrootDir`: exec'd delegates run chrooted into the node's root. */
  chrootDir?: string;
  /** Kubernetes mode: the plugin's watch caches and status queue, lent to every attach. */
  kube?: NodeAgentKube;
}

/** What an attach call did. */
export interface AttachOutcome {
  /** "attached" now, "already" attached before, "none" selected. */
  status: "attached" | "already" | "none";
  networks: AttachedNetwork[];
}

/** What a release call did. */
export interface ReleaseOutcome {
  /** Meta-CNI records deleted (0: there was nothing of ours). */
  records: number;
}

/** The engine. */
export interface Attacher {
  /**
   * Attaches the pod's extra networks. `keep` is asked after a successful
   * ADD: false undoes the attach (its caller can no longer use it) and
   * throws. Throws CniError on failure, with nothing left attached.
   */
  attach(pod: PodSandbox, keep?: () => boolean): Promise<AttachOutcome>;
  /** Releases everything attached to the sandbox; idempotent. */
  release(sandboxId: string, netns?: string): Promise<ReleaseOutcome>;
  /** Waits for every running call to settle. */
  idle(): Promise<void>;
}

/** The path if it exists, else "" (DEL without a namespace still frees addresses). */
function existingNetns(...candidates: (string | undefined)[]): string {
  for (const path of candidates) {
    if (!path) continue;
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // gone
    }
  }
  return "";
}

/** A network's result in the 1.1.0 shape the state file keeps; undefined when it has none. */
function asCurrent(result: AnyResult): Result | undefined {
  try {
    return convertResult(result, "1.1.0") as Result;
  } catch {
    return undefined;
  }
}

/** K8S_* CNI_ARGS of a pod, as the kubelet's runtime passes them to CNI. */
export function podCniArgs(pod: Pick<PodSandbox, "namespace" | "name" | "id" | "uid">): string {
  return [
    "IgnoreUnknown=1",
    `K8S_POD_NAMESPACE=${pod.namespace}`,
    `K8S_POD_NAME=${pod.name}`,
    `K8S_POD_INFRA_CONTAINER_ID=${pod.id}`,
    `K8S_POD_UID=${pod.uid}`,
  ].join(";");
}

/** One attacher: its settings, the per-sandbox order and the release slot. */
interface AttacherState {
  options: AttacherOptions;
  /** Calls for one sandbox run one after the other. */
  sandboxes: KeyedQueue;
  /** Releases of all sandboxes run one at a time (see the module doc). */
  releases: Semaphore;
}

/** The engine-owned keys of every conf. */
function engineConf(
  options: AttacherOptions,
  conf: NetConf = { cniVersion: "1.1.0", name: "hydra-nri", type: "hydra" },
): NetConf {
  const out: NetConf = { ...conf, cacheDir: options.cacheDir };
  out.logLevel = options.metaLogLevel ?? "warn";
  if (options.metaLogFile) out.logFile = options.metaLogFile;
  if (options.delegateTimeoutS) out.delegateTimeout = options.delegateTimeoutS;
  if (options.chrootDir) out.chrootDir = options.chrootDir;
  return out;
}

/** One engine request for the sandbox. */
function engineRequest(
  options: AttacherOptions,
  sandboxId: string,
  netns: string,
  ifName: string,
  extra: { conf?: NetConf; cniArgs?: string; networks?: NetworkPlan[] } = {},
): AttachRequest {
  return {
    conf: engineConf(options, extra.conf),
    containerId: sandboxId,
    netns,
    ifName,
    cniArgs: extra.cniArgs ?? "",
    path: options.cniPath,
    builtins: BUILTINS,
    ...(extra.networks ? { networks: extra.networks } : {}),
  };
}

/** Releases the sandbox once no other release runs. */
function release(st: AttacherState, sandboxId: string, netns?: string): Promise<ReleaseOutcome> {
  return st.releases.run(() => releaseNow(st.options, sandboxId, netns));
}

/** Detaches every engine record of the sandbox, then drops its state file. */
async function releaseNow(
  options: AttacherOptions,
  sandboxId: string,
  netns?: string,
): Promise<ReleaseOutcome> {
  const { cacheDir, log } = options;
  const state = loadPodState(cacheDir, sandboxId);
  const ifNames = recordedInterfaces(cacheDir, sandboxId);
  const path = existingNetns(netns, state?.netns);
  const errors: CniError[] = [];
  for (const ifName of ifNames) {
    try {
      await detach(engineRequest(options, sandboxId, path, ifName));
    } catch (err) {
      errors.push(asCniError(err));
    }
  }
  if (errors.length) {
    // The engine kept what it could not delete; the state file stays too.
    throw new CniError(
      errors[0].code,
      `releasing sandbox ${sandboxId}: ${errors.map((e) => e.message).join("; ")}`,
    );
  }
  removePodState(cacheDir, sandboxId);
  if (ifNames.length) log.info("networks released", { sandbox: sandboxId, records: ifNames });
  return { records: ifNames.length };
}

/**
 * What to do before a new attach: "already" when the sandbox is attached,
 * after undoing an attach that did not finish (a record without a state file).
 */
async function settlePrevious(
  st: AttacherState,
  pod: PodSandbox,
  netns: string | undefined,
): Promise<AttachOutcome | undefined> {
  const { cacheDir, log } = st.options;
  const state = loadPodState(cacheDir, pod.id);
  const recorded = recordedInterfaces(cacheDir, pod.id);
  if (state && recorded.includes(state.ifName)) {
    return { status: "already", networks: state.networks };
  }
  if (recorded.length || state) {
    log.warn("undoing an attach that did not finish", { sandbox: pod.id, records: recorded });
    await release(st, pod.id, netns);
  }
  return undefined;
}

/** Whether to go on with a plan: no for a host-network pod; throws for a gone namespace. */
function attachable(options: AttacherOptions, pod: PodSandbox, netns: string | undefined) {
  if (!netns) {
    // The runtime's own CNI is not called for host-network pods either.
    options.log.warn("host-network pod selects networks; they are not attached", {
      sandbox: pod.id,
      pod: `${pod.namespace}/${pod.name}`,
    });
    return false;
  }
  if (!existingNetns(netns)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `the network namespace of sandbox ${pod.id} (${netns}) is gone`,
    );
  }
  return true;
}

/** Records the sandbox as attached; undoes the attach when the state cannot be written. */
async function recordAttached(
  st: AttacherState,
  pod: PodSandbox,
  netns: string,
  plan: AttachPlan,
  networks: AttachedNetwork[],
): Promise<void> {
  const next: PodState = {
    kind: POD_STATE_KIND,
    sandboxId: pod.id,
    pod: { namespace: pod.namespace, name: pod.name, uid: pod.uid },
    netns,
    ifName: plan.ifName,
    networks,
    attachedAt: new Date().toISOString(),
  };
  try {
    savePodState(st.options.cacheDir, next);
  } catch (err) {
    await release(st, pod.id, netns).catch(() => {});
    throw new CniError(ErrorCode.IoFailure, `cannot record sandbox ${pod.id}: ${err}`);
  }
}

/** The attach of one sandbox, run in the sandbox's order. */
async function attachNow(
  st: AttacherState,
  pod: PodSandbox,
  keep: () => boolean,
): Promise<AttachOutcome> {
  const { options } = st;
  const netns = netnsPathOf(pod);
  const previous = await settlePrevious(st, pod, netns);
  if (previous) return previous;
  const plan: AttachPlan | undefined = await options.source.plan(pod);
  if (!plan) return { status: "none", networks: [] };
  if (!keep()) {
    throw new CniError(ErrorCode.TryAgainLater, "attach not started: its caller gave up");
  }
  if (!attachable(options, pod, netns)) return { status: "none", networks: [] };
  const req = engineRequest(options, pod.id, netns!, plan.ifName, {
    conf: plan.conf,
    cniArgs: podCniArgs(pod),
    networks: plan.networks,
  });
  if (options.kube) req.kube = options.kube;
  const outcome = await attach(req).catch((err) => {
    throw asCniError(err);
  });
  if (!keep()) {
    await release(st, pod.id, netns).catch((err) =>
      options.log.error("cannot undo an attach nobody waits for", { sandbox: pod.id, error: err })
    );
    throw new CniError(ErrorCode.TryAgainLater, "attach finished after its caller gave up");
  }
  const networks: AttachedNetwork[] = outcome.networks.map((n) => {
    const result = asCurrent(n.result);
    return { name: n.name, ifName: n.ifName, ...(result ? { result } : {}) };
  });
  await recordAttached(st, pod, netns!, plan, networks);
  return { status: "attached", networks };
}

/** Creates the engine. */
export function createAttacher(options: AttacherOptions): Attacher {
  const st: AttacherState = {
    options,
    sandboxes: createKeyedQueue(),
    releases: createSemaphore(1),
  };
  return {
    attach: (pod, keep = () => true) => st.sandboxes.run(pod.id, () => attachNow(st, pod, keep)),
    release: (sandboxId, netns) => st.sandboxes.run(sandboxId, () => release(st, sandboxId, netns)),
    idle: () => st.sandboxes.idle(),
  };
}
