/**
 * The meta-CNI as a CNI plugin (`"type": "hydra"`): the runtime's ADD, DEL
 * and CHECK go to the engine (attach.ts, which says what they do); STATUS
 * and GC are answered here.
 *
 * - STATUS asks every configured delegate; the first failure is returned.
 * - GC deletes the recorded attachments of containers the runtime no longer
 *   lists in `cni.dev/valid-attachments` (each as its only owner, as a DEL;
 *   a record that cannot be read is set aside and its container's result
 *   caches drive the delete), then passes GC to every configured delegate
 *   with the attachments still valid on it, and removes what killed writers
 *   left in the cache folder (temporary files; files set aside as damaged
 *   more than a week ago).
 *
 * With `"daemonExec": true` ADD, DEL and CHECK run inside the node daemon
 * when one answers (daemonclient/forward.ts), except in the daemon itself,
 * which runs {@link createMetaPlugin}'s plugin that never forwards.
 *
 * @module
 */

import { parseResult } from "../cni/convert.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { outputDocument, pluginError } from "../cni/plugin_output.ts";
import { gcNetworkList, joinErrors, statusNetworkList } from "../cni/list.ts";
import type { AnyResult, Attachment, CmdArgs, Plugin } from "../cni/types.ts";
import { SUPPORTED_VERSIONS } from "../cni/types.ts";
import { attachInvocation, checkInvocation, detachInvocation, loadKube } from "./attach.ts";
import { type Delegate, resolveDelegates } from "./config.ts";
import {
  asCni,
  delegateError,
  deleteAll,
  type Invocation,
  loadRecordForDel,
  prepare,
} from "./run.ts";
import type { NodeAgentKube } from "./kube_source.ts";
import { withAttachment } from "./ownership.ts";
import { detachWithoutRecord } from "./salvage.ts";
import { sweepLeftovers } from "../pkg/fsutil.ts";
import { type AttachmentRecord, listRecords } from "./record.ts";

/** The invocation's CNI_* variables as the exec that made `args` had them. */
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
 * With `"daemonExec": true`, hands the whole invocation to the node daemon
 * through the one forwarder (daemonclient/forward.ts, which declines what must
 * run here); undefined when it is to run here. The daemon's outcome comes
 * back as this plugin's: its result, or its error thrown.
 */
async function viaDaemon(args: CmdArgs): Promise<{ result?: AnyResult } | undefined> {
  if ((args.config as Record<string, unknown>).daemonExec !== true) return undefined;
  const { execViaDaemon } = await import("../daemonclient/forward.ts");
  const out = await execViaDaemon(envOf(args), args.stdinData);
  if (!out) return undefined;
  if (out.code !== 0) throw pluginError(out);
  return args.command === "ADD" ? { result: parseResult(outputDocument(out, "node daemon")) } : {};
}

/**
 * The networks STATUS and GC act on: every configured delegate, or in
 * Kubernetes mode with a `clusterNetwork` the pod default network.
 */
async function configuredNetworks(args: CmdArgs, inv: Invocation): Promise<Delegate[]> {
  const c = args.config as Record<string, unknown>;
  if (typeof c.clusterNetwork === "string" && c.clusterNetwork !== "") {
    return [await (await loadKube()).defaultNetworkKube(args, inv)];
  }
  // Only secondary networks, chosen per pod: no network of the conf's own to ask.
  if (c.skipDefaultNetwork === true && c.delegates === undefined && !c.delegatesFromConfDir) {
    return [];
  }
  return await resolveDelegates(args.config, inv.options, args.ifName || "eth0");
}

async function status(args: CmdArgs): Promise<void> {
  const inv = prepare(args);
  const delegates = await configuredNetworks(args, inv);
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

/**
 * Deletes the attachment `containerId`/`ifName` as its only owner, from its
 * record as it is now (another DEL may have run since it was listed), or
 * from what survives when the record cannot be read.
 */
function deleteStale(
  args: CmdArgs,
  inv: Invocation,
  containerId: string,
  ifName: string,
): Promise<CniError[]> {
  const cacheDir = inv.options.cacheDir;
  return withAttachment(cacheDir, containerId, ifName, "DEL", undefined, async () => {
    const { record, damaged } = await loadRecordForDel(inv, containerId, ifName);
    if (record) return await deleteAll(record, record.netns, inv);
    if (!damaged) return [];
    return await detachWithoutRecord(
      { ...args, containerId, ifName, netns: "", args: "" },
      inv,
      true,
    );
  });
}

/** Temporary files of killed writes, and files set aside as damaged a week ago, go. */
function sweepCacheDir(inv: Invocation): void {
  for (const sub of ["attachments", "results", "networks", "reports"]) {
    const dir = `${inv.options.cacheDir.replace(/\/+$/, "")}/${sub}`;
    try {
      const removed = sweepLeftovers(dir, { quarantineAgeMs: 7 * 24 * 3600_000 });
      if (removed.length) inv.log.info("left-over state files removed", { dir, files: removed });
    } catch (err) {
      inv.log.warn("cannot sweep a state folder", { dir, error: err });
    }
  }
}

async function gc(args: CmdArgs): Promise<void> {
  const inv = prepare(args);
  const valid = validAttachments(args);
  const keep = new Set((valid ?? []).map((a) => `${a.containerID}\0${a.ifname}`));
  const errors: CniError[] = [];
  const unreadable: string[] = [];
  const records = await listRecords(inv.options.cacheDir, (path, err) => {
    inv.log.warn("unreadable attachment record", { path, error: err });
    unreadable.push(path.slice(path.lastIndexOf("/") + 1));
  });
  const live: AttachmentRecord[] = [];
  for (const record of records) {
    if (keep.has(`${record.containerId}\0${record.ifName}`)) {
      live.push(record);
      continue;
    }
    inv.log.info("removing stale attachments", { staleContainerId: record.containerId });
    errors.push(
      ...await deleteStale(args, inv, record.containerId, record.ifName).catch((e) => [asCni(e)]),
    );
  }
  for (const name of unreadable) {
    // Container ids hold no "-" (see record.ts): the id and the interface split at the first.
    const dash = name.indexOf("-");
    const [containerId, ifName] = [name.slice(0, dash), name.slice(dash + 1)];
    if (dash <= 0 || keep.has(`${containerId}\0${ifName}`)) continue;
    errors.push(...await deleteStale(args, inv, containerId, ifName).catch((e) => [asCni(e)]));
  }
  let delegates: Delegate[] = [];
  try {
    delegates = await configuredNetworks({ ...args, ifName: "eth0" }, inv);
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
  sweepCacheDir(inv);
  const joined = joinErrors(errors);
  if (joined) throw joined;
}

/** How {@link createMetaPlugin}'s plugin runs. */
export interface MetaPluginOptions {
  /** Hand each invocation to the node daemon when the conf asks for daemonExec. */
  forward: boolean;
  /**
   * The watch caches and report queue of the process running the plugin
   * (the node daemon): Kubernetes-mode ADDs read and report through them
   * directly instead of over the daemon's socket.
   */
  kube?: NodeAgentKube;
}

/**
 * The meta-CNI as a plugin. With `forward` (every process but the node
 * daemon), a conf asking for `daemonExec` has ADD, DEL and CHECK run in the
 * daemon when one answers; the daemon runs them itself.
 */
export function createMetaPlugin(opts: MetaPluginOptions): Plugin {
  const forwarded = <T>(run: (args: CmdArgs) => Promise<T>) => async (args: CmdArgs) => {
    const handed = opts.forward ? await viaDaemon(args) : undefined;
    return handed ? handed.result as T : await run(args);
  };
  return {
    kind: "hydra",
    supportedVersions: SUPPORTED_VERSIONS,
    add: forwarded(async (args) => (await attachInvocation(args, undefined, opts.kube)).result),
    del: forwarded(detachInvocation),
    check: forwarded(checkInvocation),
    status,
    gc,
  };
}

/** The meta-CNI plugin, as the runtime execs it. */
export const plugin: Plugin = createMetaPlugin({ forward: true });
