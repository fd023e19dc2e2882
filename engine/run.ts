/**
 * What both modes of the meta-CNI share (conf-file mode in meta.ts,
 * Kubernetes mode in kube.ts): the per-invocation setup, the runtime
 * parameters of a recorded delegate, deleting recorded delegates in reverse,
 * and checking that every delegate's plugin can be found before anything
 * is attached.
 *
 * @module
 */

import { CniError, ErrorCode, throwIfCancelled } from "../cni/errors.ts";
import { delNetworkList, type ListOptions, type RuntimeConf } from "../cni/list.ts";
import { locatePlugin } from "../cni/invoke.ts";
import { createSemaphore } from "../pkg/async.ts";
import { createLogger, type Logger } from "../pkg/log.ts";
import { selfExecutable } from "../pkg/self.ts";
import { type Builtins, EXEC_ONLY } from "../cni/types.ts";
import type { AnyResult, CmdArgs } from "../cni/types.ts";
import { checkNetworkConfig } from "./conf_check.ts";
import { closeRemovalBatch, openRemovalBatch, type RemovalFailure } from "../plugins/link_batch.ts";
import { type Delegate, type MetaOptions, parseMetaOptions } from "./config.ts";
import {
  type AttachmentRecord,
  loadRecord,
  quarantineRecord,
  recordDelegate,
  removeRecord,
  saveRecord,
} from "./record.ts";
import { releaseRecordedAddresses } from "./addresses.ts";

/** One network as attached. */
export interface AttachedNetwork {
  /** Its name: the conf's `name`, or in Kubernetes mode "namespace/name" of the NAD. */
  name: string;
  ifName: string;
  /** Its result, in the network's cniVersion. */
  result: AnyResult;
}

/** What an attach did. */
export interface AttachOutcome {
  /** The attachment's result: the first (default) network's, or an empty one. */
  result: AnyResult;
  /** Every network attached, in order. */
  networks: AttachedNetwork[];
}

/** One invocation's options, logger and list-runner settings. */
export interface Invocation {
  options: MetaOptions;
  log: Logger;
  /** For ADD and CHECK: they stop when `signal` aborts (see {@link withSignal}). */
  listOptions: ListOptions;
  /** Aborted when the invocation's caller gave up; undoing never looks at it. */
  signal?: AbortSignal;
}

/** The invocation acting for an owner whose `signal` aborts when the caller gives up. */
export function withSignal(inv: Invocation, signal: AbortSignal | undefined): Invocation {
  return { ...inv, signal, listOptions: { ...inv.listOptions, signal } };
}

/** Throws a cancellation (code 11) when the invocation's caller gave up. */
export function checkNotCancelled(inv: Invocation): void {
  throwIfCancelled(inv.signal);
}

/** Problems already logged by this process (a long-running one sees the same conf often). */
const warned = new Set<string>();

/**
 * Logs once per process what a conf has that hydra does not use: unknown
 * and unsupported keys (with the key hydra knows by a near name), values
 * out of range, an `ipam` block without a type. `where` names the conf.
 */
function warnAbout(conf: Record<string, unknown>, where: string, log: Logger): void {
  for (const p of checkNetworkConfig(conf, where).problems) {
    if (warned.has(p.message)) continue;
    if (warned.size >= 1000) warned.clear(); // bounded, whatever confs a daemon is handed
    warned.add(p.message);
    log.warn(`conf: ${p.message}`, { key: p.path });
  }
}

/** {@link warnAbout} the meta-CNI conf, its inline delegates included. */
function warnAboutConf(args: CmdArgs, log: Logger): void {
  warnAbout(args.config, "", log);
}

/**
 * {@link warnAbout} networks that did not come from the meta-CNI conf (a
 * pod's NADs, the NRI plugin's conf files), each under its name.
 */
export function warnAboutNetworks(inv: Invocation, networks: readonly Delegate[]): void {
  for (const d of networks) {
    const conf = { cniVersion: d.list.cniVersion, name: d.list.name, plugins: d.list.plugins };
    warnAbout(conf, d.list.name, inv.log);
  }
}

/** The plugin runner: the caller's built-ins, exec'd plugins chrooted when the conf says so. */
function pluginRunner(args: CmdArgs, options: MetaOptions): Builtins | undefined {
  return chrootedRunner(args.builtins, options.chrootDir);
}

/** `builtins`, with exec'd plugins run chrooted into `chrootDir` when one is given. */
export function chrootedRunner(
  builtins: Builtins | undefined,
  chrootDir: string | undefined,
): Builtins | undefined {
  if (!chrootDir) return builtins;
  return { ...(builtins ?? EXEC_ONLY), execVia: [selfExecutable(), "host-exec", chrootDir] };
}

/** Reads the meta-CNI's own options and sets up logging and the list runner. */
export function prepare(args: CmdArgs): Invocation {
  const options = parseMetaOptions(args.config, args.command);
  const log = createLogger({
    level: options.logLevel,
    file: options.logFile,
    stderr: options.logToStderr,
  }).with({
    plugin: "hydra",
    command: args.command,
    ...(args.containerId ? { containerId: args.containerId } : {}),
    ...(args.ifName ? { ifName: args.ifName } : {}),
  });
  if (args.command === "ADD" || args.command === "CHECK") warnAboutConf(args, log);
  const path = options.binDir ? [options.binDir, ...args.path] : [...args.path];
  return {
    options,
    log,
    listOptions: {
      path,
      cacheDir: options.cacheDir,
      timeoutMs: options.delegateTimeoutMs,
      builtins: pluginRunner(args, options),
      onDamaged: (network, movedTo, err) =>
        log.warn("cached result unreadable; set aside, going on without it", {
          network,
          movedTo,
          error: (err as Error).message,
        }),
    },
  };
}

/** Any thrown value as a CniError (999 when it carries no code). */
export function asCni(err: unknown): CniError {
  return err instanceof CniError ? err : new CniError(ErrorCode.Internal, String(err));
}

/** A delegate's failure, naming the network and interface, its code kept. */
export function delegateError(err: unknown, d: Delegate, verb: string): CniError {
  const e = asCni(err);
  return new CniError(
    e.code,
    `error ${verb} network "${d.list.name}" (interface ${d.ifName}): ${e.message}`,
    e.details,
  );
}

/**
 * The runtime parameters of recorded delegate `index`: its own CNI_ARGS and
 * capability arguments when it has them (Kubernetes mode), else the
 * record's; in conf-file mode capability arguments describe the pod's
 * default network, so the secondaries do not get them.
 */
export function runtimeFor(
  record: AttachmentRecord,
  d: Delegate,
  index: number,
  netns: string,
): RuntimeConf {
  const stored = record.delegates[index];
  const rt: RuntimeConf = {
    containerId: record.containerId,
    netns,
    ifName: d.ifName,
    args: stored?.cniArgs ?? record.cniArgs,
  };
  if (stored?.capabilityArgs) rt.capabilityArgs = stored.capabilityArgs;
  else if (index === 0 && record.capabilityArgs) rt.capabilityArgs = record.capabilityArgs;
  return rt;
}

/**
 * A recorded delegate this version cannot run (a record written by a newer
 * one): its addresses are released from the store its IPAM names, the rest
 * is left to the namespace's removal, and it counts as deleted, so the DEL
 * does not fail on it forever.
 */
async function dropUnrunnable(
  record: AttachmentRecord,
  index: number,
  inv: Invocation,
  err: unknown,
): Promise<void> {
  const stored = record.delegates[index];
  const released = await releaseRecordedAddresses(stored.config, record.containerId, stored.ifName)
    .catch((e) => [`none (${(e as Error).message})`]);
  inv.log.error("recorded delegate cannot be run by this version; its addresses released", {
    delegateIfName: stored.ifName,
    network: typeof stored.config.name === "string" ? stored.config.name : undefined,
    error: asCni(err).message,
    released,
  });
  stored.deleted = true;
}

/**
 * Exec'd delegates of one pod deleted at once, at most. Their DELs spend
 * most of their time waiting on the kernel (a link's deletion waits for
 * RCU grace periods) or on their own stores, not on a CPU, so a pod's
 * networks go in about the time of its slowest one instead of the sum.
 */
const EXEC_DEL_CONCURRENCY = 4;

/** True when a plugin of the delegate's list runs in this process. */
function runsInProcess(d: Delegate, builtins: Builtins = EXEC_ONLY): boolean {
  return d.list.plugins.some((p) => builtins.has(p.type));
}

/**
 * The recorded delegates still to delete, by position, last first: those
 * with a plugin run in this process and those only exec'd. One this
 * version cannot run is dropped (see {@link dropUnrunnable}).
 */
async function toDelete(record: AttachmentRecord, inv: Invocation): Promise<{
  delegates: (Delegate | undefined)[];
  inProcess: number[];
  execd: number[];
}> {
  const delegates: (Delegate | undefined)[] = [];
  const inProcess: number[] = [];
  const execd: number[] = [];
  for (let i = record.delegates.length - 1; i >= 0; i--) {
    if (record.delegates[i].deleted) continue;
    try {
      delegates[i] = recordDelegate(record, i);
    } catch (err) {
      await dropUnrunnable(record, i, inv, err);
      continue;
    }
    (runsInProcess(delegates[i]!, inv.listOptions.builtins) ? inProcess : execd).push(i);
  }
  return { delegates, inProcess, execd };
}

/**
 * DELs the recorded delegates, continuing past failures, and settles the
 * record: removed when nothing is left, else rewritten with only the
 * delegates still to delete, so a retry redoes no finished work.
 *
 * Each network's list is deleted in reverse, as CNI has it. The networks
 * are independent of each other (each its own interface, its own
 * addresses), so their DELs do not wait for one another: the exec'd ones
 * run side by side (up to {@link EXEC_DEL_CONCURRENCY}), and those run in
 * this process go one after the other, in reverse, meanwhile (they share
 * the removal batch, whose links are owned by the delegate running).
 * Errors come back in reverse order of the delegates, whichever failed
 * first.
 *
 * `ignoreIndex` is a delegate whose ADD just failed: it had to clean up
 * after itself, so a failing DEL of it is logged, not kept for retries
 * (some plugins cannot DEL what they never made). Undoing runs to the end
 * whatever the caller does (the invocation's signal is not passed on).
 */
export async function deleteAll(
  record: AttachmentRecord,
  netns: string,
  inv: Invocation,
  ignoreIndex = -1,
): Promise<CniError[]> {
  const listOptions = { ...inv.listOptions, signal: undefined };
  const { delegates, inProcess, execd } = await toDelete(record, inv);
  const errors = new Map<number, CniError>();
  const failed = (i: number, err: unknown) => {
    const d = delegates[i]!;
    const e = delegateError(err, d, "deleting");
    inv.log.error(e.message, { network: d.list.name, code: e.code });
    // Unless its ADD is what failed, it is not gone: a later DEL must run it again.
    record.delegates[i].deleted = i === ignoreIndex;
    if (i !== ignoreIndex && !errors.has(i)) errors.set(i, e);
  };
  const deleteOne = async (i: number) => {
    const d = delegates[i]!;
    try {
      await delNetworkList(d.list, runtimeFor(record, d, i, netns), listOptions);
      record.delegates[i].deleted = true;
      inv.log.debug("delegate deleted", { network: d.list.name, delegateIfName: d.ifName });
    } catch (err) {
      failed(i, err);
    }
  };
  // The built-ins set their pod-side links aside; they go in one batch below.
  const batch = openRemovalBatch(record.containerId, netns);
  let failures: RemovalFailure[];
  try {
    const slots = createSemaphore(EXEC_DEL_CONCURRENCY);
    await Promise.all([
      (async () => {
        for (const i of inProcess) {
          batch.owner = i;
          await deleteOne(i);
        }
      })(),
      ...execd.map((i) => slots.run(() => deleteOne(i))),
    ]);
  } finally {
    failures = await closeRemovalBatch(batch);
  }
  for (const f of failures) failed(f.owner, f.error);
  if (record.delegates.every((d) => d.deleted)) {
    await removeRecord(inv.options.cacheDir, record.containerId, record.ifName);
  } else {
    await saveRecord(inv.options.cacheDir, record);
  }
  return [...errors].sort(([a], [b]) => b - a).map(([, e]) => e);
}

/** Fails (code 7, naming the network) unless every delegate plugin can be found. */
export async function assertPluginsExist(
  delegates: readonly Delegate[],
  opts: ListOptions,
): Promise<void> {
  for (const d of delegates) {
    for (const p of d.list.plugins) {
      try {
        await locatePlugin(p.type, opts.path, opts.builtins);
      } catch (err) {
        throw delegateError(err, d, "preparing");
      }
    }
  }
}

/**
 * Writes the record before anything is attached, so a DEL after a crash
 * finds it. Its bytes are synced before it gets its name: it is the one
 * file a DEL can always go by, and without it a crash that kept a
 * delegate's address reservation but lost the record's bytes (and the pod)
 * would leave nothing that names the address's network (see
 * docs/node-daemon.md, "State after a crash"). The files written later
 * (result caches, the delegates' own state, rewrites of the record) are
 * not synced: losing them is repaired from the record.
 */
export async function saveRecordFirst(inv: Invocation, record: AttachmentRecord): Promise<void> {
  try {
    await saveRecord(inv.options.cacheDir, record, { durable: true });
  } catch (err) {
    throw new CniError(
      ErrorCode.IoFailure,
      `cannot record attachments in ${inv.options.cacheDir}: ${(err as Error).message}`,
    );
  }
}

/** The record DEL works from, and whether one was there but could not be read. */
export interface RecordForDel {
  record?: AttachmentRecord;
  damaged: boolean;
}

/**
 * The record DEL works from. A record that cannot be read (truncated by a
 * crash or a full disk, or of another version) is moved aside and logged,
 * and DEL goes on from what else survives (engine/salvage.ts): failing on
 * it would block the sandbox's removal forever.
 */
export async function loadRecordForDel(
  inv: Invocation,
  containerId: string,
  ifName: string,
): Promise<RecordForDel> {
  try {
    return { record: await loadRecord(inv.options.cacheDir, containerId, ifName), damaged: false };
  } catch (err) {
    if (!(err instanceof CniError) || err.code !== ErrorCode.DecodingFailure) throw err;
    let movedTo = "";
    try {
      movedTo = await quarantineRecord(inv.options.cacheDir, containerId, ifName);
    } catch {
      // Leaving it in place only means the next DEL logs this again.
    }
    inv.log.error("attachment record unreadable; deleting from what else survives", {
      error: err.message,
      movedTo,
    });
    return { damaged: true };
  }
}
