/**
 * The attachment engine's entry, the one way every caller attaches a
 * container to its networks, detaches or checks it: the meta-CNI plugin
 * (engine/meta.ts, exec'd by the runtime or run by the node daemon under
 * `daemonExec`) and the NRI plugin call {@link attach}, {@link detach} and
 * {@link checkAttachment}, and get back what was attached: each network's
 * name, interface and result.
 *
 * - ADD records the resolved delegate set, then runs each delegate's list in
 *   order (libcni semantics, own result cache under `cacheDir`). If one
 *   fails, the ones already run, the failing one included, are DELeted in
 *   reverse before the error is returned with its code. The first network's
 *   result is the attachment's (the runtime's, for the meta-CNI). An ADD of
 *   an interface that is attached already (a record is there: no DEL came
 *   since the last ADD) is refused and changes nothing; the runtime DELs
 *   first. An ADD whose caller gives up (AttachRequest.signal) stops at the
 *   next delegate and is rolled back the same way.
 * - DEL runs the recorded delegates in reverse, carries on past failures and
 *   reports them together. Without a usable record (none, or one that
 *   cannot be read, which is moved aside) it works from whatever else
 *   survives (salvage.ts) and reports what it could not delete; with no
 *   record at all, a pod Multus attached before hydra took over (the conf
 *   names Multus's `cniDir`) is deleted from Multus's cache (multus_cache.ts).
 * - CHECK checks every recorded delegate in order.
 *
 * Each runs as the attachment's only owner (ownership.ts): ADD, DEL and
 * CHECK of one container interface never overlap, whichever process runs
 * them.
 *
 * The networks come from the meta-CNI conf (`delegates`, a conf folder, or
 * Kubernetes: see config.ts and kube_config.ts), or the caller names them
 * itself ({@link AttachRequest.networks}, as the NRI plugin does with conf
 * files picked by a pod's annotation). DEL and CHECK always follow the
 * record, whichever way it was made.
 *
 * @module
 */

import { parseCniArgs } from "../cni/args.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { addNetworkList, checkNetworkList, joinErrors } from "../cni/list.ts";
import type { Builtins, CmdArgs, Command, NetConf } from "../cni/types.ts";
import { type Delegate, resolveDelegates } from "./config.ts";
import {
  asCni,
  assertPluginsExist,
  type AttachedNetwork,
  type AttachOutcome,
  checkNotCancelled,
  delegateError,
  deleteAll,
  type Invocation,
  loadRecordForDel,
  prepare,
  runtimeFor,
  saveRecordFirst,
  warnAboutNetworks,
  withSignal,
} from "./run.ts";
import {
  type AttachmentRecord,
  loadRecord,
  RECORD_KIND,
  recordDelegates,
  recordPath,
  type StoredDelegate,
  storeDelegate,
} from "./record.ts";
import type { NodeAgentKube } from "./kube_source.ts";
import { withAttachment } from "./ownership.ts";
import { detachWithoutRecord } from "./salvage.ts";

/** A network the caller chose: a delegate, its name, and what its plugins get. */
export interface NetworkPlan extends Delegate {
  /** The network's name as reported (a conf's `name`). */
  name: string;
  /** Capability arguments (runtimeConfig) for the plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
}

/** One attach, detach or check of a container interface. */
export interface AttachRequest {
  /**
   * The meta-CNI conf (`"type": "hydra"`): the engine's options (`cacheDir`,
   * `binDir`, `logLevel`, `delegateTimeout`, …) and, unless {@link networks}
   * is given, the networks to attach.
   */
  conf: NetConf;
  containerId: string;
  /** The container's network namespace; "" on a detach when it is gone. */
  netns: string;
  /** The interface the attachment is recorded under (CNI_IFNAME). */
  ifName: string;
  /** CNI_ARGS ("K=V;K2=V2"). */
  cniArgs: string;
  /** CNI_PATH: where delegate plugins that are not built in are found. */
  path: readonly string[];
  /** Plugins run in-process (engine/builtins.ts); default none. */
  builtins?: Builtins;
  /** On attach: the networks, in order, instead of the conf's; the first gets {@link ifName}. */
  networks?: readonly NetworkPlan[];
  /** Aborted when the caller gives up: an attach stops and is rolled back (CNI code 11). */
  signal?: AbortSignal;
  /**
   * Kubernetes mode in a node agent: its watch caches and report queue
   * instead of a connection per attach (engine/kube_source.ts).
   */
  kube?: NodeAgentKube;
}

export type { AttachedNetwork, AttachOutcome } from "./run.ts";
export { recordedContainers, recordedInterfaces } from "./record.ts";

function nonEmpty(v: unknown): boolean {
  return typeof v === "string" && v !== "";
}

/**
 * Kubernetes mode (kept here, free of imports, so conf-file mode loads
 * nothing of it): a `clusterNetwork`, or a `kubeconfig` (or
 * `skipDefaultNetwork`) with the pod named.
 */
export function kubeMode(args: CmdArgs): boolean {
  const c = args.config as Record<string, unknown>;
  if (nonEmpty(c.clusterNetwork)) return true;
  return (nonEmpty(c.kubeconfig) || c.skipDefaultNetwork === true) &&
    /(^|;)K8S_POD_NAME=[^;]/.test(args.args) &&
    /(^|;)K8S_POD_NAMESPACE=[^;]/.test(args.args);
}

/** Kubernetes mode's module, loaded only when it is used. */
export function loadKube() {
  return import("./kube.ts");
}

/** A request as the invocation a runtime would make of the meta-CNI. */
export function invocationOf(req: AttachRequest, command: Command): CmdArgs {
  return {
    command,
    containerId: req.containerId,
    netns: req.netns,
    ifName: req.ifName,
    args: req.cniArgs,
    path: [...req.path],
    stdinData: new TextEncoder().encode(JSON.stringify(req.conf)),
    config: req.conf,
    ...(req.builtins ? { builtins: req.builtins } : {}),
    ...(req.signal ? { signal: req.signal } : {}),
  };
}

/** Attaches the container to its networks; throws CniError with nothing left attached. */
export function attach(req: AttachRequest): Promise<AttachOutcome> {
  return attachInvocation(invocationOf(req, "ADD"), req.networks, req.kube);
}

/** Detaches whatever is recorded for the container interface; idempotent. */
export function detach(req: AttachRequest): Promise<void> {
  return detachInvocation(invocationOf(req, "DEL"));
}

/** Checks every recorded network of the container interface; throws what is wrong. */
export function checkAttachment(req: AttachRequest): Promise<void> {
  return checkInvocation(invocationOf(req, "CHECK"));
}

/** The networks of a conf-file mode ADD: the caller's, else the conf's delegates. */
async function plannedNetworks(
  args: CmdArgs,
  inv: Invocation,
  networks: readonly NetworkPlan[] | undefined,
): Promise<NetworkPlan[]> {
  if (!networks) {
    const delegates = await resolveDelegates(args.config, inv.options, args.ifName);
    return delegates.map((d) => ({ ...d, name: d.list.name }));
  }
  if (networks.length === 0) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, "no networks to attach");
  }
  const seen = new Set<string>();
  const planned: NetworkPlan[] = [];
  for (const n of networks) {
    if (seen.has(n.ifName)) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `network "${n.name}": interface "${n.ifName}" is already used by another network`,
      );
    }
    seen.add(n.ifName);
    // A network without a version takes hydra's, as in the other modes.
    planned.push(
      n.list.cniVersion ? n : { ...n, list: { ...n.list, cniVersion: inv.options.cniVersion } },
    );
  }
  return planned;
}

function storedNetwork(n: NetworkPlan): StoredDelegate {
  const stored = storeDelegate(n);
  if (n.capabilityArgs && Object.keys(n.capabilityArgs).length) {
    stored.capabilityArgs = n.capabilityArgs;
  }
  return stored;
}

/** The record of a conf-file mode ADD, before anything is attached. */
function newRecord(args: CmdArgs, networks: readonly NetworkPlan[]): AttachmentRecord {
  const record: AttachmentRecord = {
    kind: RECORD_KIND,
    containerId: args.containerId,
    ifName: args.ifName,
    netns: args.netns,
    delegates: networks.map(storedNetwork),
  };
  const cniArgs = parseCniArgs(args.args);
  if (cniArgs.length) record.cniArgs = cniArgs;
  const caps = args.config.runtimeConfig;
  if (caps && typeof caps === "object" && Object.keys(caps).length) record.capabilityArgs = caps;
  return record;
}

/** True when the container interface has a record file (readable or not). */
function hasRecord(inv: Invocation, args: CmdArgs): boolean {
  try {
    Deno.statSync(recordPath(inv.options.cacheDir, args.containerId, args.ifName));
    return true;
  } catch {
    return false;
  }
}

/** Refuses (changing nothing) an ADD of an interface that has a record: no DEL came since. */
function refuseSecondAdd(inv: Invocation, args: CmdArgs): void {
  if (!hasRecord(inv, args)) return;
  throw new CniError(
    ErrorCode.InvalidEnvironmentVariables,
    `container "${args.containerId}" interface "${args.ifName}" is attached already: ` +
      `DEL it before adding it again`,
  );
}

/** Runs `fn` as the attachment's only owner, with the owner's signal. */
function owned<T>(
  args: CmdArgs,
  inv: Invocation,
  fn: (inv: Invocation) => Promise<T>,
): Promise<T> {
  return withAttachment(
    inv.options.cacheDir,
    args.containerId,
    args.ifName,
    args.command,
    args.signal,
    (signal) => fn(withSignal(inv, signal)),
  );
}

/** ADD of a meta-CNI invocation (either mode), or of the caller's networks. */
export function attachInvocation(
  args: CmdArgs,
  networks?: readonly NetworkPlan[],
  kube?: NodeAgentKube,
): Promise<AttachOutcome> {
  return owned(args, prepare(args), async (inv) => {
    refuseSecondAdd(inv, args);
    if (!networks && kubeMode(args)) return (await loadKube()).addKube(args, inv, kube);
    return await attachNetworks(args, inv, networks);
  });
}

/** The conf-file mode ADD (or the caller's networks), as the owner. */
async function attachNetworks(
  args: CmdArgs,
  inv: Invocation,
  networks: readonly NetworkPlan[] | undefined,
): Promise<AttachOutcome> {
  const planned = await plannedNetworks(args, inv, networks);
  if (networks) warnAboutNetworks(inv, planned);
  // Checked up front so a missing binary changes nothing at all.
  await assertPluginsExist(planned, inv.listOptions);
  checkNotCancelled(inv);
  const record = newRecord(args, planned);
  await saveRecordFirst(inv, record);
  const attached: AttachedNetwork[] = [];
  for (const [i, n] of planned.entries()) {
    try {
      checkNotCancelled(inv);
      const rt = runtimeFor(record, n, i, args.netns);
      attached.push({
        name: n.name,
        ifName: n.ifName,
        result: await addNetworkList(n.list, rt, inv.listOptions),
      });
      inv.log.info("delegate added", { network: n.list.name, delegateIfName: n.ifName });
    } catch (err) {
      const failure = delegateError(err, n, "adding");
      inv.log.error(failure.message, { network: n.list.name, code: failure.code });
      // Delegates after the failing one never ran.
      for (let j = i + 1; j < record.delegates.length; j++) record.delegates[j].deleted = true;
      await deleteAll(record, args.netns, inv, i);
      throw failure;
    }
  }
  return { result: attached[0].result, networks: attached };
}

/** DEL of a meta-CNI invocation: whatever its record says, else whatever survives. */
export function detachInvocation(args: CmdArgs): Promise<void> {
  return owned(args, prepare(args), async (inv) => {
    const { record, damaged } = await loadRecordForDel(inv, args.containerId, args.ifName);
    const joined = joinErrors(
      record
        ? await deleteAll(record, args.netns, inv)
        : await detachUnrecorded(args, inv, damaged),
    );
    if (joined) throw joined;
  });
}

/**
 * DEL with no usable record: a pod Multus attached before hydra took over
 * from Multus's cache (only when no record was there at all: a damaged one
 * is hydra's), else from whatever survives (salvage.ts).
 */
async function detachUnrecorded(
  args: CmdArgs,
  inv: Invocation,
  damaged: boolean,
): Promise<CniError[]> {
  if (!damaged && inv.options.multusCacheDir) {
    const { delFromMultusCache } = await import("./multus_cache.ts");
    const fromMultus = await delFromMultusCache(args, inv, inv.options.multusCacheDir);
    if (fromMultus.handled) return fromMultus.errors.map(asCni);
  }
  const kube = kubeMode(args) ? await loadKube() : undefined;
  return await detachWithoutRecord(
    args,
    inv,
    damaged,
    kube && (() => kube.kubeDelegatesWithoutRecord(args, inv)),
  );
}

/** CHECK of a meta-CNI invocation: every recorded delegate, in order. */
export function checkInvocation(args: CmdArgs): Promise<void> {
  return owned(args, prepare(args), async (inv) => {
    const record = await loadRecord(inv.options.cacheDir, args.containerId, args.ifName);
    if (!record) {
      throw new CniError(
        ErrorCode.UnknownContainer,
        `no attachments recorded for container "${args.containerId}" interface "${args.ifName}"`,
      );
    }
    const delegates = recordDelegates(record);
    for (let i = 0; i < delegates.length; i++) {
      const d = delegates[i];
      if (record.delegates[i].deleted) continue;
      try {
        await checkNetworkList(d.list, runtimeFor(record, d, i, args.netns), inv.listOptions);
      } catch (err) {
        throw delegateError(err, d, "checking");
      }
    }
  });
}
