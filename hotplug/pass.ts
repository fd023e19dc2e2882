/**
 * One pass over one pod: bring the networks of its running sandbox in line
 * with its networks annotation, one change at a time, then its status.
 *
 * 1. The annotation is read; one that does not parse, or asks for an
 *    impossible interface, changes nothing (a Warning says why).
 * 2. The runtime names the pod's ready sandbox and its namespace, and the
 *    sandbox's record is found (a pod with neither is not touched).
 * 3. Plugs a crash left half-done are undone.
 * 4. The plan (plan.ts): detaches first, then attaches in annotation order.
 *    Before each step the pod must still be wanted as it was (not being
 *    deleted, annotation unchanged, namespace there). A step that fails
 *    leaves the others alone; the pass then asks to be retried.
 * 5. network-status and the result annotations follow the record (status.ts).
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { AnyResult } from "../cni/types.ts";
import { toInternal } from "../cni/convert.ts";
import { delegateCniArgs, type PodArgs } from "../kube/delegate.ts";
import { resolveSelection } from "../kube/networks.ts";
import type { Pod } from "../kube/objects.ts";
import { addedInterfaceEvent } from "../kube/report.ts";
import { NETWORK_STATUS_ANNOTATION } from "../kube/status.ts";
import {
  LEGACY_NETWORKS_ANNOTATION,
  NETWORKS_ANNOTATION,
  type NetworkSelection,
  podNetworkSelections,
  SelectionError,
} from "../kube/selection.ts";
import { listLinks } from "../netlink/link.ts";
import { withHandle } from "../netlink/socket.ts";
import type { AttachmentRecord, SelectionRules } from "../engine/record.ts";
import { loadRecord } from "../engine/record.ts";
import {
  type PlugNetwork,
  plugNetwork,
  type PlugTarget,
  podRecordOf,
  recordedNetworks,
  settlePending,
  unplugNetwork,
} from "../engine/plug.ts";
import { type Arrival, networkOf, planChange, type Recorded, selectionProblem } from "./plan.ts";
import { acceptsHotplug, type HotplugOptions, type Sandbox } from "./options.ts";
import { syncStatus } from "./status.ts";

/** How a pass ended. */
export type PassOutcome =
  /** The sandbox matches the annotation (or nothing can be done until it changes). */
  | "converged"
  /** Something failed: try again after a pause. */
  | "retry"
  /** No sandbox or record yet: look again a little later. */
  | "later"
  /** The pod changed or went while the pass ran: start over with what it is now. */
  | "interrupted";

/** What a pass works with. */
export interface PassContext {
  opts: HotplugOptions;
  /** The pod as the pass started. */
  pod: Pod;
  /** The pod as known now (informer), undefined once deleted. */
  latest(): Pod | undefined;
  /** Records a Warning Event, on the side (repeats of one message are told once). */
  warn(reason: string, message: string): void;
  /** Records a Normal Event, on the side. */
  tell(reason: string, message: string): void;
  /** Counts one change. */
  counted(op: "attach" | "detach", ok: boolean, seconds: number): void;
}

/** A pod's selection as written: its networks annotations. */
export function selectionKey(pod: Pod): string {
  const a = pod.metadata.annotations ?? {};
  return `${a[NETWORKS_ANNOTATION] ?? ""}\0${a[LEGACY_NETWORKS_ANNOTATION] ?? ""}`;
}

/**
 * What a complete pass is keyed by: the selection and the network-status,
 * so a status someone else rewrote is looked at again.
 */
export function passKey(pod: Pod): string {
  return `${selectionKey(pod)}\0${pod.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] ?? ""}`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The pod's selections, or undefined (with a Warning) when the annotation is unusable. */
function readSelections(
  ctx: PassContext,
): { selections: NetworkSelection[]; legacy: boolean } | undefined {
  let parsed;
  try {
    parsed = podNetworkSelections(ctx.pod.metadata.annotations, ctx.pod.metadata.namespace);
  } catch (err) {
    ctx.warn("InvalidNetworkSelection", `networks not changed: ${message(err)}`);
    return undefined;
  }
  const problem = selectionProblem(parsed.selections);
  if (problem) {
    ctx.warn("InvalidNetworkSelection", `networks not changed: ${problem}`);
    return undefined;
  }
  return { selections: parsed.selections, legacy: parsed.source === "legacy" };
}

/** The names of the links in a namespace. */
function podLinks(netns: string): Set<string> {
  return withHandle({ netnsPath: netns }, (h) => new Set(listLinks(h).map((l) => l.name)));
}

/** Whether the pass may take its next step: the pod is as it was, its namespace there. */
function mayGoOn(ctx: PassContext, key: string, sandbox: Sandbox): boolean {
  const now = ctx.latest();
  if (!now || !acceptsHotplug(now) || selectionKey(now) !== key) return false;
  try {
    Deno.statSync(sandbox.netns);
    return true;
  } catch {
    return false;
  }
}

/** The pod's identity in CNI_ARGS, with the sandbox as infra container. */
function podArgsOf(pod: Pod, sandbox: Sandbox): PodArgs {
  return {
    namespace: pod.metadata.namespace,
    name: pod.metadata.name,
    uid: pod.metadata.uid ?? "",
    infraContainerId: sandbox.id,
  };
}

/** Everything one pass acts on. */
interface Work {
  ctx: PassContext;
  key: string;
  sandbox: Sandbox;
  podArgs: PodArgs;
  target: PlugTarget;
  /** Undefined until the first plug makes one (NRI, nothing attached at creation). */
  record?: AttachmentRecord;
  rules: SelectionRules;
  legacy: boolean;
  failed: boolean;
}

/** Finds the sandbox and its record; the outcome instead when the pass stops there. */
async function findWork(
  ctx: PassContext,
  key: string,
  legacy: boolean,
): Promise<Work | PassOutcome> {
  const { opts, pod } = ctx;
  const uid = pod.metadata.uid ?? "";
  const sandbox = await opts.sandboxes.find({ ...pod.metadata, uid });
  if (!sandbox) return "later";
  const podArgs = podArgsOf(pod, sandbox);
  const record = await podRecordOf(opts.cacheDir, sandbox.id, uid);
  if (!record && !opts.newRecords) return "later";
  const rules = record ? record.selectionRules : opts.newRecords!.rules(sandbox, podArgs);
  if (!rules) {
    ctx.warn(
      "HotplugUnavailable",
      "networks not changed: the pod was attached by a hydra that kept no rules for later " +
        "selections; they change when it is restarted",
    );
    return "converged";
  }
  const target: PlugTarget = {
    cacheDir: opts.cacheDir,
    containerId: sandbox.id,
    recordIfName: record?.ifName ?? "",
    netns: sandbox.netns,
    builtins: opts.builtins,
    log: opts.log.with({ pod: `${pod.metadata.namespace}/${pod.metadata.name}` }),
  };
  return { ctx, key, sandbox, podArgs, target, record, rules, legacy, failed: false };
}

/** The record's networks as the planner sees them. */
function recordedOf(record: AttachmentRecord | undefined): Recorded[] {
  return (record ? recordedNetworks(record) : []).filter((n) => !n.pending).map((n) => ({
    ...(n.network ? { network: n.network } : {}),
    ifName: n.ifName,
    selected: n.selected,
  }));
}

async function reload(w: Work): Promise<void> {
  if (!w.target.recordIfName) return;
  w.record = await loadRecord(w.target.cacheDir, w.target.containerId, w.target.recordIfName);
}

/** Detaches one recorded network. */
async function leave(w: Work, r: Recorded): Promise<void> {
  const t0 = performance.now();
  try {
    await unplugNetwork(w.target, r.ifName);
    w.ctx.counted("detach", true, (performance.now() - t0) / 1000);
    w.ctx.tell("RemovedInterface", `Remove ${r.ifName} from ${r.network ?? "?"}`);
  } catch (err) {
    w.failed = true;
    w.ctx.counted("detach", false, (performance.now() - t0) / 1000);
    w.ctx.warn(
      "DetachFailed",
      `${r.network ?? "?"} on ${r.ifName} not detached: ${message(err)}`,
    );
  }
}

/** A selection resolved into the network to plug. */
async function resolve(w: Work, a: Arrival): Promise<PlugNetwork> {
  const { opts, pod } = w.ctx;
  const common = {
    ifName: w.record?.ifName ?? a.ifName,
    containerId: w.sandbox.id,
    cniArgs: w.rules.cniArgs ?? "",
    pod: w.podArgs,
    timeoutMs: opts.apiTimeoutMs ?? 5_000,
    host: opts.host,
  };
  const where = {
    ifName: a.ifName,
    index: w.record?.delegates.length ?? 0,
    element: a.element,
    legacy: w.legacy,
  };
  const att = await resolveSelection(pod, a.sel, where, w.rules, opts.reads, {
    command: "ADD",
    ...common,
  });
  const delArgs = delegateCniArgs(w.podArgs, w.rules.cniArgs ?? "", a.sel, "DEL");
  return {
    network: att.name,
    ifName: a.ifName,
    // A network without a version takes the meta-CNI's, as at creation.
    list: att.list.cniVersion
      ? att.list
      : { ...att.list, cniVersion: w.rules.cniVersion ?? "1.1.0" },
    addArgs: att.cniArgs,
    delArgs,
    capabilityArgs: att.runtimeConfig,
  };
}

/** Plugs one selection; the first plug of a pod without a record makes it. */
async function arrive(w: Work, a: Arrival): Promise<void> {
  const t0 = performance.now();
  try {
    if (a.sel.defaultRoute) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `"default-route" is only honoured when the pod starts`,
      );
    }
    const net = await resolve(w, a);
    let created;
    if (!w.record) {
      w.target.recordIfName = a.ifName;
      w.ctx.opts.newRecords?.prepare?.(w.sandbox, w.podArgs, a.ifName);
      created = {
        pod: { namespace: w.podArgs.namespace, name: w.podArgs.name, uid: w.podArgs.uid },
        rules: w.rules,
      };
    }
    const result: AnyResult = await plugNetwork(w.target, net, created);
    await reload(w);
    w.ctx.counted("attach", true, (performance.now() - t0) / 1000);
    const ev = addedInterfaceEvent(a.ifName, toInternal(result), net.network);
    if (ev) w.ctx.tell(ev.reason, ev.message);
  } catch (err) {
    w.failed = true;
    await reload(w).catch(() => {});
    w.ctx.counted("attach", false, (performance.now() - t0) / 1000);
    const reason = err instanceof SelectionError ? "NetworkNotAllowed" : "AttachFailed";
    w.ctx.warn(
      reason,
      `${networkOf(a.sel)} (element ${a.element}) not attached on ${a.ifName}: ${message(err)}`,
    );
  }
}

/** Undoes half-done plugs and plans the change. */
async function prepare(w: Work, selections: NetworkSelection[]) {
  if (w.record) {
    const undone = await settlePending(w.target);
    if (undone.length) {
      w.target.log.info("half-done hot plugs undone", { interfaces: undone });
      await reload(w);
    }
  }
  return planChange(recordedOf(w.record), selections, podLinks(w.sandbox.netns));
}

/** Runs the plan's steps one at a time while the pod stays as it was. */
async function runSteps(
  w: Work,
  plan: ReturnType<typeof planChange>,
): Promise<PassOutcome | undefined> {
  for (const r of plan.refused) {
    w.failed = true;
    w.ctx.warn(
      "InterfaceNameTaken",
      `${networkOf(r.sel)} (element ${r.element}) not attached: ${r.message}`,
    );
  }
  for (const r of plan.leave) {
    if (!mayGoOn(w.ctx, w.key, w.sandbox)) return "interrupted";
    await leave(w, r);
  }
  for (const a of plan.arrive) {
    if (!mayGoOn(w.ctx, w.key, w.sandbox)) return "interrupted";
    await arrive(w, a);
  }
  return undefined;
}

/** Brings the pod's status in line with its record; false when the write failed. */
async function status(w: Work): Promise<boolean> {
  if (!w.record) return true;
  const pod = w.ctx.latest() ?? w.ctx.pod;
  try {
    await syncStatus(
      w.ctx.opts.writes,
      pod,
      w.podArgs,
      w.target.cacheDir,
      w.record,
      w.ctx.opts.kind,
      w.ctx.opts.apiTimeoutMs ?? 5_000,
    );
    return true;
  } catch (err) {
    w.target.log.warn("pod network status not written; retrying", { error: err });
    return false;
  }
}

/** One pass over the pod (see the module doc). */
export async function runPass(ctx: PassContext): Promise<PassOutcome> {
  if (!acceptsHotplug(ctx.pod)) return "converged";
  const key = selectionKey(ctx.pod);
  const read = readSelections(ctx);
  if (!read) return "converged";
  const t0 = performance.now();
  const found = await findWork(ctx, key, read.legacy);
  if (typeof found === "string") return found;
  const t1 = performance.now();
  const plan = await prepare(found, read.selections);
  const t2 = performance.now();
  const stopped = await runSteps(found, plan);
  if (stopped) return stopped;
  const t3 = performance.now();
  await reload(found);
  const written = await status(found);
  const ms = (a: number, b: number) => Math.round(b - a);
  found.target.log.debug("hot plug pass", {
    leave: plan.leave.length,
    arrive: plan.arrive.length,
    ms: {
      find: ms(t0, t1),
      plan: ms(t1, t2),
      steps: ms(t2, t3),
      status: ms(t3, performance.now()),
    },
  });
  return found.failed || !written ? "retry" : "converged";
}
