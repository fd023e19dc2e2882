/**
 * Hot plug: one more network attached to a running pod, or one detached,
 * on the record its sandbox's ADD wrote (record.ts), so that everything
 * that works from the record — the pod's final DEL, CHECK, GC, the policy
 * agent — sees the change, and a restart finds it.
 *
 * - plug: the network is appended to the record marked `pending` before
 *   its ADD runs (a crash leaves a trace, never an unknown interface), the
 *   ADD runs in the sandbox's namespace with the record's rules (plugin
 *   path, timeout), and the mark is cleared. A failed ADD is DELeted with
 *   the same arguments and taken out again; nothing else in the record is
 *   touched (a DEL that fails too is logged, as at creation). An interface
 *   name the record or the namespace already has is refused before anything
 *   runs.
 * - unplug: DEL of one recorded network with the arguments its ADD had
 *   (as recorded), then it leaves the record; it is marked `pending` while
 *   the DEL runs, so a crash then leaves it to be undone rather than taken
 *   for attached. Only networks the pod's annotation selected can go:
 *   never its default network.
 * - settlePending: a `pending` network (its plug died half-way) is
 *   DELeted — harmless if its ADD never ran — and taken out.
 *
 * Each runs as the owner of the pod's attachment (the record's container
 * and interface), one at a time with the runtime's ADD, DEL and CHECK of
 * it (see {@link owned}).
 *
 * @module
 */

import { parseCniArgs } from "../cni/args.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import {
  addNetworkList,
  delNetworkList,
  getCachedResult,
  type ListOptions,
  type RuntimeConf,
} from "../cni/list.ts";
import type { ConfList } from "../cni/conf.ts";
import type { AnyResult, Builtins } from "../cni/types.ts";
import type { Logger } from "../pkg/log.ts";
import { withHandle } from "../netlink/socket.ts";
import { findLink } from "../netlink/link.ts";
import { withRemovalBatch } from "../plugins/link_batch.ts";
import { withAttachment } from "./ownership.ts";
import { assertPluginsExist, chrootedRunner, delegateError, runtimeFor } from "./run.ts";
import {
  type AttachmentRecord,
  loadRecord,
  RECORD_KIND,
  recordDelegates,
  recordedInterfaces,
  type RecordedPod,
  saveRecord,
  type SelectionRules,
  type StoredDelegate,
  storeDelegate,
} from "./record.ts";

/** The pod attachment a hot plug acts on. */
export interface PlugTarget {
  /** The folder of the records (the meta-CNI's or the NRI plugin's `cacheDir`). */
  cacheDir: string;
  /** The sandbox: the record's container. */
  containerId: string;
  /** The interface the record is kept under (CNI_IFNAME of the sandbox's ADD). */
  recordIfName: string;
  /** The sandbox's network namespace, as the runtime says now. */
  netns: string;
  /** Plugins run in-process (engine/builtins.ts). */
  builtins?: Builtins;
  log: Logger;
}

/** A network to plug, resolved as at the pod's creation. */
export interface PlugNetwork {
  /** Its name in network-status ("namespace/name" of the NAD). */
  network: string;
  ifName: string;
  list: ConfList;
  /** CNI_ARGS of the ADD (with the selection's MAC= and IP= requests). */
  addArgs: string;
  /** CNI_ARGS kept for DEL and CHECK. */
  delArgs: string;
  /** Capability arguments (runtimeConfig). */
  capabilityArgs: Record<string, unknown>;
}

/** For a pod with no record yet (the NRI plugin attached nothing at creation): the one to make. */
export interface NewRecord {
  pod: RecordedPod;
  rules: SelectionRules;
}

/** One network of a pod's record, as hot plug sees it. */
export interface RecordedNetwork {
  /** Position in the record. */
  index: number;
  network?: string;
  ifName: string;
  /** The pod's annotation selected it (it may be detached). */
  selected: boolean;
  /** Its hot plug did not finish. */
  pending: boolean;
}

/**
 * Runs `fn` as the owner of the target's attachment, with the runtime's
 * ADD, DEL and CHECK of it (ownership.ts): across processes by its lock. A
 * PLUG gets a signal a DEL of the attachment aborts; its ADD then stops
 * and is undone.
 */
function owned<T>(
  t: PlugTarget,
  action: "PLUG" | "UNPLUG",
  fn: (signal: AbortSignal | undefined) => Promise<T>,
): Promise<T> {
  return withAttachment(t.cacheDir, t.containerId, t.recordIfName, action, undefined, fn);
}

function unknownAttachment(t: PlugTarget): CniError {
  return new CniError(
    ErrorCode.UnknownContainer,
    `no attachment of sandbox ${t.containerId} is recorded under ${t.recordIfName}`,
  );
}

/** How the record's networks run: its plugin path, timeout and chroot, as at creation. */
function listOptionsOf(t: PlugTarget, rules: SelectionRules | undefined): ListOptions {
  return {
    path: rules?.cniPath ?? [],
    cacheDir: t.cacheDir,
    timeoutMs: rules?.delegateTimeoutMs,
    builtins: chrootedRunner(t.builtins, rules?.chrootDir),
  };
}

/** True when the namespace at `netns` has a link named `ifName`. */
function linkExists(netns: string, ifName: string): boolean {
  return withHandle({ netnsPath: netns }, (h) => findLink(h, ifName) !== undefined);
}

/** Throws unless the namespace is there: a sandbox that is gone is not touched. */
function requireNetns(t: PlugTarget): void {
  try {
    Deno.statSync(t.netns);
  } catch {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `the network namespace of sandbox ${t.containerId} (${t.netns}) is gone`,
    );
  }
}

/** Refuses an interface name the record or the namespace already has. */
function checkFree(t: PlugTarget, record: AttachmentRecord, ifName: string): void {
  const holder = record.delegates.find((d) => !d.deleted && d.ifName === ifName);
  if (holder) {
    const name = holder.network ?? String(holder.config.name ?? "");
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `interface "${ifName}" is taken by network "${name}"`,
    );
  }
  if (linkExists(t.netns, ifName)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `interface "${ifName}" already exists in the pod's network namespace`,
    );
  }
}

/** The record of the target, a new one (`create`), or an error. */
async function recordFor(t: PlugTarget, create?: NewRecord): Promise<AttachmentRecord> {
  const found = await loadRecord(t.cacheDir, t.containerId, t.recordIfName);
  if (found) return found;
  if (!create) throw unknownAttachment(t);
  return {
    kind: RECORD_KIND,
    containerId: t.containerId,
    ifName: t.recordIfName,
    netns: t.netns,
    pod: create.pod,
    selectionRules: create.rules,
    delegates: [],
  };
}

/** DELs recorded network `index` with its recorded arguments; throws what failed. */
async function deleteOne(
  t: PlugTarget,
  record: AttachmentRecord,
  index: number,
  opts: ListOptions,
): Promise<void> {
  const d = recordDelegates(record)[index];
  // The built-ins set their pod-side links aside; they go (or are deferred) in one batch.
  const failures = await withRemovalBatch(
    record.containerId,
    t.netns,
    () =>
      delNetworkList(d.list, runtimeFor(record, d, index, t.netns), opts).catch((err) => {
        throw delegateError(err, d, "deleting");
      }),
    index,
  );
  if (failures.length) throw delegateError(failures[0].error, d, "deleting");
}

/** The stored form of a network to plug, marked pending. */
function pendingDelegate(net: PlugNetwork): StoredDelegate {
  const stored: StoredDelegate = {
    ...storeDelegate({ ifName: net.ifName, list: net.list }),
    network: net.network,
    cniArgs: parseCniArgs(net.delArgs),
    selected: true,
    pending: true,
  };
  if (Object.keys(net.capabilityArgs).length) stored.capabilityArgs = net.capabilityArgs;
  return stored;
}

/**
 * Attaches `net` to the running pod and records it (see the module doc);
 * returns its result. Throws CniError with nothing of it left attached.
 * `create` makes the record when the sandbox has none.
 */
export function plugNetwork(
  t: PlugTarget,
  net: PlugNetwork,
  create?: NewRecord,
): Promise<AnyResult> {
  return owned(t, "PLUG", async (signal) => {
    requireNetns(t);
    const record = await recordFor(t, create);
    if (!record.selectionRules) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        "the pod was attached by a hydra that kept no rules for later selections",
      );
    }
    const opts = listOptionsOf(t, record.selectionRules);
    checkFree(t, record, net.ifName);
    await assertPluginsExist([{ ifName: net.ifName, list: net.list }], opts);
    const stored = pendingDelegate(net);
    record.delegates.push(stored);
    const index = record.delegates.length - 1;
    await saveRecord(t.cacheDir, record);
    const rt: RuntimeConf = {
      containerId: t.containerId,
      netns: t.netns,
      ifName: net.ifName,
      args: parseCniArgs(net.addArgs),
    };
    if (stored.capabilityArgs) rt.capabilityArgs = stored.capabilityArgs;
    let result: AnyResult;
    try {
      // Only the ADD stops when a DEL of the pod arrives; undoing it never does.
      result = await addNetworkList(net.list, rt, { ...opts, signal });
    } catch (err) {
      const failure = delegateError(err, { ifName: net.ifName, list: net.list }, "adding");
      await undoPlug(t, record, index, opts);
      throw failure;
    }
    delete stored.pending;
    await saveRecord(t.cacheDir, record);
    return result;
  });
}

/**
 * Takes a failed plug back out. Its ADD had to clean up after itself, so
 * a DEL that fails too is logged, not kept for retries (as when an ADD at
 * creation fails): some plugins cannot DEL what they never made, and a
 * record entry that never goes would fail the pod's final DEL forever.
 */
async function undoPlug(
  t: PlugTarget,
  record: AttachmentRecord,
  index: number,
  opts: ListOptions,
): Promise<void> {
  try {
    await deleteOne(t, record, index, opts);
  } catch (err) {
    t.log.warn("undoing a failed hot plug failed too", { error: err });
  }
  record.delegates.splice(index, 1);
  await saveRecord(t.cacheDir, record);
}

/**
 * Detaches the recorded network on `ifName` (see the module doc); its
 * network's name, or undefined when nothing is recorded on it (done
 * already). Throws CniError when the DEL fails (it stays recorded) or the
 * network is not one the pod selected.
 */
export function unplugNetwork(t: PlugTarget, ifName: string): Promise<string | undefined> {
  return owned(t, "UNPLUG", async () => {
    const record = await loadRecord(t.cacheDir, t.containerId, t.recordIfName);
    if (!record) throw unknownAttachment(t);
    const index = record.delegates.findIndex((d) => !d.deleted && d.ifName === ifName);
    if (index < 0) return undefined;
    const d = record.delegates[index];
    if (!d.selected) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `interface "${ifName}" is not one of the networks the pod selected; it stays`,
      );
    }
    requireNetns(t);
    // Marked first: a crash during the DEL leaves it to be undone, never trusted as attached.
    d.pending = true;
    await saveRecord(t.cacheDir, record);
    try {
      await deleteOne(t, record, index, listOptionsOf(t, record.selectionRules));
    } catch (err) {
      delete d.pending;
      await saveRecord(t.cacheDir, record);
      throw err;
    }
    record.delegates.splice(index, 1);
    await saveRecord(t.cacheDir, record);
    return d.network;
  });
}

/** Undoes every plug of the record that did not finish; returns their interfaces. */
export function settlePending(t: PlugTarget): Promise<string[]> {
  return owned(t, "UNPLUG", async () => {
    const record = await loadRecord(t.cacheDir, t.containerId, t.recordIfName);
    if (!record) return [];
    const opts = listOptionsOf(t, record.selectionRules);
    const undone: string[] = [];
    for (let i = record.delegates.length - 1; i >= 0; i--) {
      if (!record.delegates[i].pending || record.delegates[i].deleted) continue;
      await deleteOne(t, record, i, opts);
      undone.push(record.delegates[i].ifName);
      record.delegates.splice(i, 1);
      await saveRecord(t.cacheDir, record);
    }
    return undone;
  });
}

/** The record of `podUid` among the sandbox's records; undefined when it has none. */
export async function podRecordOf(
  cacheDir: string,
  containerId: string,
  podUid: string,
): Promise<AttachmentRecord | undefined> {
  for (const ifName of recordedInterfaces(cacheDir, containerId)) {
    const record = await loadRecord(cacheDir, containerId, ifName);
    if (record?.pod?.uid === podUid) return record;
  }
  return undefined;
}

/** The networks of a record still attached (or being attached), in order. */
export function recordedNetworks(record: AttachmentRecord): RecordedNetwork[] {
  return record.delegates.flatMap((d, index) =>
    d.deleted ? [] : [{
      index,
      ...(d.network ? { network: d.network } : {}),
      ifName: d.ifName,
      selected: d.selected === true,
      pending: d.pending === true,
    }]
  );
}

/** The cached ADD result of recorded network `index`; undefined when none is cached. */
export async function recordedResult(
  cacheDir: string,
  record: AttachmentRecord,
  index: number,
): Promise<AnyResult | undefined> {
  const d = recordDelegates(record)[index];
  const rt = runtimeFor(record, d, index, record.netns);
  try {
    return await getCachedResult(d.list, rt, { path: [], cacheDir });
  } catch {
    return undefined;
  }
}
