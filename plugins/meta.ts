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
 * - A record that cannot be read is moved aside on DEL, which goes on
 *   without it rather than failing forever.
 *
 * With a `kubeconfig` (and the pod named in CNI_ARGS) or a `clusterNetwork`
 * the pod's networks come from Kubernetes instead: see meta_kube.ts, loaded
 * only then. DEL and CHECK always follow the record, whichever mode made it.
 * With `"daemonExec": true` ADD, DEL and CHECK run inside the node daemon
 * when one answers (daemon/exec_shim.ts), except in the daemon itself,
 * which runs {@link createMetaPlugin}'s plugin that never forwards.
 *
 * @module
 */

import { parseCniArgs } from "../cni/args.ts";
import { parseResult } from "../cni/convert.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { outputDocument, pluginError } from "../cni/plugin_output.ts";
import {
  addNetworkList,
  checkNetworkList,
  gcNetworkList,
  joinErrors,
  statusNetworkList,
} from "../cni/list.ts";
import type { AnyResult, Attachment, CmdArgs, Plugin } from "../cni/types.ts";
import { SUPPORTED_VERSIONS } from "../cni/types.ts";
import { type Delegate, resolveDelegates } from "./meta_config.ts";
import {
  asCni,
  assertPluginsExist,
  delegateError,
  deleteAll,
  type Invocation,
  loadRecordForDel,
  prepare,
  runtimeFor,
  saveRecordFirst,
} from "./meta_run.ts";
import {
  type AttachmentRecord,
  listRecords,
  loadRecord,
  RECORD_KIND,
  recordDelegates,
  storeDelegate,
} from "./meta_store.ts";

function nonEmpty(v: unknown): boolean {
  return typeof v === "string" && v !== "";
}

/**
 * Kubernetes mode (kept here, free of imports, so conf-file mode loads
 * nothing of it): a `clusterNetwork`, or a `kubeconfig` (or
 * `skipDefaultNetwork`) with the pod named.
 */
function kubeMode(args: CmdArgs): boolean {
  const c = args.config as Record<string, unknown>;
  if (nonEmpty(c.clusterNetwork)) return true;
  return (nonEmpty(c.kubeconfig) || c.skipDefaultNetwork === true) &&
    /(^|;)K8S_POD_NAME=[^;]/.test(args.args) &&
    /(^|;)K8S_POD_NAMESPACE=[^;]/.test(args.args);
}

function loadKube() {
  return import("./meta_kube.ts");
}

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
 * through the one forwarder (daemon/exec_shim.ts, which declines what must
 * run here); undefined when it is to run here. The daemon's outcome comes
 * back as this plugin's: its result, or its error thrown.
 */
async function viaDaemon(args: CmdArgs): Promise<{ result?: AnyResult } | undefined> {
  if ((args.config as Record<string, unknown>).daemonExec !== true) return undefined;
  const { execViaDaemon } = await import("../daemon/exec_shim.ts");
  const out = await execViaDaemon(envOf(args), args.stdinData);
  if (!out) return undefined;
  if (out.code !== 0) throw pluginError(out);
  return args.command === "ADD" ? { result: parseResult(outputDocument(out, "node daemon")) } : {};
}

async function add(args: CmdArgs): Promise<AnyResult> {
  const inv = prepare(args);
  if (kubeMode(args)) return (await loadKube()).addKube(args, inv);
  const delegates = await resolveDelegates(args.config, inv.options, args.ifName);
  // Checked up front so a missing binary changes nothing at all.
  await assertPluginsExist(delegates, inv.listOptions);
  const record: AttachmentRecord = {
    kind: RECORD_KIND,
    containerId: args.containerId,
    ifName: args.ifName,
    netns: args.netns,
    delegates: delegates.map(storeDelegate),
  };
  const cniArgs = parseCniArgs(args.args);
  if (cniArgs.length) record.cniArgs = cniArgs;
  const caps = args.config.runtimeConfig;
  if (caps && typeof caps === "object" && Object.keys(caps).length) record.capabilityArgs = caps;
  await saveRecordFirst(inv, record);
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
  const record = await loadRecordForDel(inv, args.containerId, args.ifName);
  if (!record) {
    if (kubeMode(args)) return (await loadKube()).delKubeWithoutRecord(args, inv);
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

/**
 * The networks STATUS and GC act on: every configured delegate, or in
 * Kubernetes mode with a `clusterNetwork` the pod default network.
 */
async function configuredNetworks(args: CmdArgs, inv: Invocation): Promise<Delegate[]> {
  const c = args.config as Record<string, unknown>;
  if (nonEmpty(c.clusterNetwork)) return [await (await loadKube()).defaultNetworkKube(args, inv)];
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
  const joined = joinErrors(errors);
  if (joined) throw joined;
}

/**
 * The meta-CNI as a plugin. With `forward` (every process but the node
 * daemon), a conf asking for `daemonExec` has ADD, DEL and CHECK run in the
 * daemon when one answers; the daemon runs them itself.
 */
export function createMetaPlugin(opts: { forward: boolean }): Plugin {
  const forwarded = <T>(run: (args: CmdArgs) => Promise<T>) => async (args: CmdArgs) => {
    const handed = opts.forward ? await viaDaemon(args) : undefined;
    return handed ? handed.result as T : await run(args);
  };
  return {
    kind: "hydra",
    supportedVersions: SUPPORTED_VERSIONS,
    add: forwarded(add),
    del: forwarded(del),
    check: forwarded(check),
    status,
    gc,
  };
}

/** The meta-CNI plugin, as the runtime execs it. */
export const plugin: Plugin = createMetaPlugin({ forward: true });
