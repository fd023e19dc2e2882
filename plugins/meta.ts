/**
 * The meta-CNI in conf-file mode (`"type": "hydra"`): attaches a container
 * to several networks, each a delegate plugin or conflist (see
 * meta_config.ts for the configuration).
 *
 * - ADD records the resolved delegate set, then runs each delegate's list in
 *   order (libcni semantics, own result cache under `cacheDir`). If one
 *   fails, the ones already run, the failing one included, are DELeted in
 *   reverse before the error is returned with its code. The result is the
 *   first (default) delegate's, converted to hydra's cniVersion by the skel.
 * - DEL runs the recorded delegates in reverse, carries on past failures and
 *   reports them together; with no record there is nothing of ours to undo.
 * - CHECK checks every recorded delegate in order.
 * - STATUS asks every configured delegate; the first failure is returned.
 * - GC deletes the recorded attachments of containers the runtime no longer
 *   lists in `cni.dev/valid-attachments`, then passes GC to every configured
 *   delegate with the attachments still valid on it.
 *
 * @module
 */

import { parseCniArgs } from "../cni/args.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import {
  addNetworkList,
  checkNetworkList,
  delNetworkList,
  gcNetworkList,
  joinErrors,
  type ListOptions,
  type RuntimeConf,
  statusNetworkList,
} from "../cni/list.ts";
import { locatePlugin } from "../cni/invoke.ts";
import { createLogger, type Logger } from "../cni/log.ts";
import type { Plugin } from "../cni/plugin.ts";
import type { AnyResult, Attachment, CmdArgs } from "../cni/types.ts";
import { SUPPORTED_VERSIONS } from "../cni/types.ts";
import {
  type Delegate,
  type MetaOptions,
  parseMetaOptions,
  resolveDelegates,
} from "./meta_config.ts";
import {
  type AttachmentRecord,
  listRecords,
  loadRecord,
  recordDelegates,
  removeRecord,
  saveRecord,
  storeDelegate,
} from "./meta_store.ts";

interface Invocation {
  options: MetaOptions;
  log: Logger;
  listOptions: ListOptions;
}

function prepare(args: CmdArgs): Invocation {
  const options = parseMetaOptions(args.config);
  const log = createLogger({ level: options.logLevel, file: options.logFile }).with({
    plugin: "hydra",
    command: args.command,
    ...(args.containerId ? { containerId: args.containerId } : {}),
    ...(args.ifName ? { ifName: args.ifName } : {}),
  });
  const path = options.binDir ? [options.binDir, ...args.path] : [...args.path];
  return {
    options,
    log,
    listOptions: { path, cacheDir: options.cacheDir, timeoutMs: options.delegateTimeoutMs },
  };
}

function asCni(err: unknown): CniError {
  return err instanceof CniError ? err : new CniError(ErrorCode.Internal, String(err));
}

function delegateError(err: unknown, d: Delegate, verb: string): CniError {
  const e = asCni(err);
  return new CniError(
    e.code,
    `error ${verb} network "${d.list.name}" (interface ${d.ifName}): ${e.message}`,
    e.details,
  );
}

function runtimeFor(record: AttachmentRecord, d: Delegate, index: number, netns: string) {
  const rt: RuntimeConf = {
    containerId: record.containerId,
    netns,
    ifName: d.ifName,
    args: record.cniArgs,
  };
  // Capability arguments (port mappings, bandwidth, …) describe the pod's
  // default network; the secondaries do not get them.
  if (index === 0 && record.capabilityArgs) rt.capabilityArgs = record.capabilityArgs;
  return rt;
}

/**
 * DELs the recorded delegates in reverse, continuing past failures, and
 * settles the record: removed when nothing is left, else rewritten with
 * only the delegates still to delete, so a retry redoes no finished work.
 * `ignoreIndex` is a delegate whose ADD just failed: it had to clean up
 * after itself, so a failing DEL of it is logged, not kept for retries
 * (some plugins cannot DEL what they never made).
 */
async function deleteAll(
  record: AttachmentRecord,
  netns: string,
  inv: Invocation,
  ignoreIndex = -1,
): Promise<CniError[]> {
  const delegates = recordDelegates(record);
  const errors: CniError[] = [];
  for (let i = delegates.length - 1; i >= 0; i--) {
    if (record.delegates[i].deleted) continue;
    const d = delegates[i];
    try {
      await delNetworkList(d.list, runtimeFor(record, d, i, netns), inv.listOptions);
      record.delegates[i].deleted = true;
      inv.log.debug("delegate deleted", { network: d.list.name, delegateIfName: d.ifName });
    } catch (err) {
      const e = delegateError(err, d, "deleting");
      inv.log.error(e.message, { network: d.list.name, code: e.code });
      if (i === ignoreIndex) record.delegates[i].deleted = true;
      else errors.push(e);
    }
  }
  if (record.delegates.every((d) => d.deleted)) {
    await removeRecord(inv.options.cacheDir, record.containerId, record.ifName);
  } else {
    await saveRecord(inv.options.cacheDir, record);
  }
  return errors;
}

/** Fails (code 7, naming the network) unless every delegate plugin can be found. */
async function assertPluginsExist(delegates: Delegate[], path: readonly string[]): Promise<void> {
  for (const d of delegates) {
    for (const p of d.list.plugins) {
      try {
        await locatePlugin(p.type, path);
      } catch (err) {
        throw delegateError(err, d, "preparing");
      }
    }
  }
}

async function add(args: CmdArgs): Promise<AnyResult> {
  const inv = prepare(args);
  const delegates = await resolveDelegates(args.config, inv.options, args.ifName);
  // Checked up front so a missing binary changes nothing at all.
  await assertPluginsExist(delegates, inv.listOptions.path);
  const record: AttachmentRecord = {
    kind: "hydraAttachmentsV1",
    containerId: args.containerId,
    ifName: args.ifName,
    netns: args.netns,
    delegates: delegates.map(storeDelegate),
  };
  const cniArgs = parseCniArgs(args.args);
  if (cniArgs.length) record.cniArgs = cniArgs;
  const caps = args.config.runtimeConfig;
  if (caps && typeof caps === "object" && Object.keys(caps).length) record.capabilityArgs = caps;
  // Recorded before anything is attached, so a DEL after a crash finds it.
  try {
    await saveRecord(inv.options.cacheDir, record);
  } catch (err) {
    throw new CniError(
      ErrorCode.IoFailure,
      `cannot record attachments in ${inv.options.cacheDir}: ${(err as Error).message}`,
    );
  }
  let defaultResult: AnyResult | undefined;
  for (let i = 0; i < delegates.length; i++) {
    const d = delegates[i];
    try {
      const result = await addNetworkList(
        d.list,
        runtimeFor(record, d, i, args.netns),
        inv.listOptions,
      );
      if (i === 0) defaultResult = result;
      inv.log.info("delegate added", { network: d.list.name, delegateIfName: d.ifName });
    } catch (err) {
      const failure = delegateError(err, d, "adding");
      inv.log.error(failure.message, { network: d.list.name, code: failure.code });
      // Delegates after the failing one never ran.
      for (let j = i + 1; j < record.delegates.length; j++) record.delegates[j].deleted = true;
      await deleteAll(record, args.netns, inv, i);
      throw failure;
    }
  }
  return defaultResult!;
}

async function del(args: CmdArgs): Promise<void> {
  const inv = prepare(args);
  const record = await loadRecord(inv.options.cacheDir, args.containerId, args.ifName);
  if (!record) {
    inv.log.info("no attachments recorded; nothing to delete");
    return;
  }
  const joined = joinErrors(await deleteAll(record, args.netns, inv));
  if (joined) throw joined;
}

async function check(args: CmdArgs): Promise<void> {
  const inv = prepare(args);
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
}

async function status(args: CmdArgs): Promise<void> {
  const inv = prepare(args);
  const delegates = await resolveDelegates(args.config, inv.options, args.ifName || "eth0");
  for (const d of delegates) {
    try {
      await statusNetworkList(d.list, inv.listOptions);
    } catch (err) {
      throw delegateError(err, d, "getting status of");
    }
  }
}

function validAttachments(args: CmdArgs): Attachment[] | undefined {
  const raw = args.config["cni.dev/valid-attachments"];
  if (raw === undefined) return undefined;
  if (
    !Array.isArray(raw) ||
    raw.some((a) => typeof a?.containerID !== "string" || typeof a?.ifname !== "string")
  ) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `"cni.dev/valid-attachments" must be a list of {"containerID", "ifname"} objects`,
    );
  }
  return raw as Attachment[];
}

async function gc(args: CmdArgs): Promise<void> {
  const inv = prepare(args);
  const valid = validAttachments(args);
  const keep = new Set((valid ?? []).map((a) => `${a.containerID}\0${a.ifname}`));
  const errors: CniError[] = [];
  const records = await listRecords(inv.options.cacheDir, (path, err) => {
    inv.log.warn("unreadable attachment record", { path, error: err });
  });
  const live: AttachmentRecord[] = [];
  for (const record of records) {
    if (keep.has(`${record.containerId}\0${record.ifName}`)) {
      live.push(record);
      continue;
    }
    inv.log.info("removing stale attachments", { staleContainerId: record.containerId });
    errors.push(...await deleteAll(record, record.netns, inv));
  }
  let delegates: Delegate[] = [];
  try {
    delegates = await resolveDelegates(args.config, inv.options, "eth0");
  } catch (err) {
    errors.push(asCni(err));
  }
  for (const d of delegates) {
    const stillValid: Attachment[] = [];
    for (const record of live) {
      for (const stored of record.delegates) {
        if (!stored.deleted && stored.config.name === d.list.name) {
          stillValid.push({ containerID: record.containerId, ifname: stored.ifName });
        }
      }
    }
    try {
      await gcNetworkList(d.list, stillValid, inv.listOptions);
    } catch (err) {
      errors.push(delegateError(err, d, "collecting garbage of"));
    }
  }
  const joined = joinErrors(errors);
  if (joined) throw joined;
}

/** The meta-CNI plugin. */
export const plugin: Plugin = {
  kind: "hydra",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del,
  check,
  status,
  gc,
};
