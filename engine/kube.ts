/**
 * The meta-CNI in Kubernetes mode (see kube_config.ts for when it is
 * on): the pod named in CNI_ARGS selects its networks, as Multus users
 * expect (kube/networks.ts resolves them), and what was attached is
 * recorded on the pod.
 *
 * - ADD waits for the readiness indicator file when one is configured,
 *   reads the pod (a pod that is gone gets Multus's empty result; one that
 *   was replaced — another UID — is an error), resolves its attachments,
 *   records them (each with its own CNI_ARGS and capability arguments) and
 *   runs them in order through the list runner, applying the
 *   `default-route` plan after each. A failure DELs what was attached, in
 *   reverse. The default network's result is returned (an empty one under
 *   `skipDefaultNetwork`, which attaches only secondary networks); the status report
 *   (network-status, `hydra.clusternet.io.<network>`, AddedInterface
 *   Events) goes to the node daemon or, without one, straight to the API
 *   server — a failed write never undoes the networks: it is spooled,
 *   retried and logged.
 * - DEL works from the record alone: no API call, and a replaced or
 *   deleted pod changes nothing. The pod's annotations are left as they
 *   are, as Multus leaves them. Without a record, a pod that still exists
 *   (same UID) has its networks resolved again and DELeted, best effort.
 * - STATUS and GC act on the pod's default network (`clusterNetwork`).
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { addNetworkList, type RuntimeConf } from "../cni/list.ts";
import type { ConfList } from "../cni/conf.ts";
import { toInternal } from "../cni/convert.ts";
import type { AnyResult, CmdArgs, Result } from "../cni/types.ts";
import { CURRENT_VERSION } from "../cni/types.ts";
import { writeFileAtomic } from "../pkg/fsutil.ts";
import { loadConfPath } from "../kube/confdir.ts";
import { delegateCniArgs, parseCniArgs, type PodArgs } from "../kube/delegate.ts";
import { type Attachment, type KubeModeConfig, resolveAttachments } from "../kube/networks.ts";
import { type Pod, PodUidMismatchError } from "../kube/objects.ts";
import { waitForReadinessIndicator } from "../kube/readiness.ts";
import { addedInterfaceEvent, type AttachmentReport } from "../kube/report.ts";
import { kubeCniError } from "../kube/errors.ts";
import { spoolDirOf } from "../kube/report_spool.ts";
import { type Delegate, resolveDelegates } from "./config.ts";
import { type KubeMetaSettings, parseKubeMetaSettings, podArgsOf } from "./kube_config.ts";
import { type KubeSource, type NodeAgentKube, openKubeSource } from "./kube_source.ts";
import { applyDefaultRoutes } from "./default_routes.ts";
import {
  asCni,
  assertPluginsExist,
  type AttachOutcome,
  checkNotCancelled,
  delegateError,
  deleteAll,
  type Invocation,
  saveRecordFirst,
  warnAboutNetworks,
} from "./run.ts";
import {
  type AttachmentRecord,
  RECORD_KIND,
  type SelectionRules,
  type StoredDelegate,
  storeDelegate,
} from "./record.ts";

function podId(p: PodArgs): string {
  return `${p.namespace}/${p.name}/${p.uid}`;
}

/** Multus's answer for a pod that no longer exists: an empty attachment, nothing done. */
function emptyResult(args: CmdArgs): Result {
  return {
    cniVersion: CURRENT_VERSION,
    interfaces: [{ name: args.ifName, sandbox: args.netns }],
    ips: [{ address: "0.0.0.0/0", gateway: "0.0.0.0" }],
  };
}

/** FNV-1a of a text, for content-addressed file names. */
function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** The text of `path`; undefined when it cannot be read. */
function readIfAny(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/**
 * An inline delegate as a conflist file under the cache dir, so it can be
 * named like a `clusterNetwork` path; written once per distinct content.
 * A file there that does not hold exactly that content (truncated or
 * zeroed by a crash) is written again, so one damaged file never fails
 * every later ADD.
 */
async function networkFile(inv: Invocation, d: Delegate): Promise<string> {
  const text = JSON.stringify(storeDelegate(d).config);
  const safe = d.list.name.replace(/[^A-Za-z0-9_.-]/g, "-");
  const path = `${inv.options.cacheDir.replace(/\/+$/, "")}/networks/${safe}-${fnv(text)}.conflist`;
  const found = readIfAny(path);
  if (found === text) return path;
  if (found !== undefined) inv.log.warn("network file damaged; writing it again", { path });
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, text, 0o600);
  return path;
}

/** The Multus-style config of this invocation, inline delegates turned into network files. */
async function kubeConfig(s: KubeMetaSettings, args: CmdArgs, inv: Invocation) {
  if (s.kube.clusterNetwork !== "" || s.kube.skipDefaultNetwork) return s.kube as KubeModeConfig;
  const delegates = await resolveDelegates(args.config, inv.options, args.ifName || "eth0");
  const files = [];
  for (const d of delegates) files.push(await networkFile(inv, d));
  return {
    ...s.kube,
    clusterNetwork: files[0],
    defaultNetworks: [...files.slice(1), ...(s.kube.defaultNetworks ?? [])],
  } as KubeModeConfig;
}

/** A stand-in pod for resolving only the default network (no pod named, STATUS, GC). */
function standInPod(namespace: string): Pod {
  return { metadata: { name: "", namespace, annotations: {} } };
}

function pairs(cniArgs: string): [string, string][] {
  return parseCniArgs(cniArgs);
}

function storedAttachment(a: Attachment, pod: PodArgs, incoming: string): StoredDelegate {
  const stored: StoredDelegate = {
    ...storeDelegate({ ifName: a.ifName, list: a.list }),
    network: a.name,
    cniArgs: pairs(delegateCniArgs(pod, incoming, a.selection, "DEL")),
  };
  if (Object.keys(a.runtimeConfig).length) stored.capabilityArgs = a.runtimeConfig;
  // The pod's own selections, which hot plug may take away again (not a default-network override).
  if (a.selection && !a.isDefault) stored.selected = true;
  return stored;
}

/** What a selection made after creation is resolved by: this invocation's settings. */
function selectionRules(s: KubeMetaSettings, args: CmdArgs, inv: Invocation): SelectionRules {
  const rules: SelectionRules = {
    cniPath: [...inv.listOptions.path],
    namespaceIsolation: s.kube.namespaceIsolation ?? false,
    cniArgs: args.args,
  };
  if (s.kube.confDir) rules.confDir = s.kube.confDir;
  if (s.kube.globalNamespaces) rules.globalNamespaces = s.kube.globalNamespaces;
  if (s.kube.runtimeConfig && Object.keys(s.kube.runtimeConfig).length) {
    rules.runtimeConfig = s.kube.runtimeConfig;
  }
  if (inv.options.delegateTimeoutMs) rules.delegateTimeoutMs = inv.options.delegateTimeoutMs;
  if (inv.options.cniVersion) rules.cniVersion = inv.options.cniVersion;
  if (inv.options.chrootDir) rules.chrootDir = inv.options.chrootDir;
  if (s.kube.nadPathRoots) rules.nadPathRoots = s.kube.nadPathRoots;
  return rules;
}

function asDelegates(attachments: readonly Attachment[]): Delegate[] {
  return attachments.map((a) => ({ ifName: a.ifName, list: a.list }));
}

function withPod(err: unknown, pod: PodArgs | undefined): CniError {
  const e = asCni(err);
  return pod ? new CniError(e.code, `[${podId(pod)}]: ${e.message}`, e.details) : e;
}

async function readPod(source: KubeSource, pod: PodArgs): Promise<Pod | undefined> {
  try {
    return await source.fetchPod(pod);
  } catch (err) {
    if (err instanceof PodUidMismatchError) {
      throw new CniError(
        ErrorCode.Internal,
        `pod ${pod.namespace}/${pod.name} was replaced: the runtime asks for UID ${err.expected}, ` +
          `the API server has UID ${err.actual}`,
      );
    }
    throw kubeCniError(err, `get pod ${pod.namespace}/${pod.name}`);
  }
}

/** Runs the attachments' ADDs in order, applying default routes; rolls back on failure. */
async function attachAll(
  args: CmdArgs,
  inv: Invocation,
  record: AttachmentRecord,
  attachments: readonly Attachment[],
): Promise<AnyResult[]> {
  const results: AnyResult[] = [];
  for (const [i, a] of attachments.entries()) {
    const d = { ifName: a.ifName, list: a.list };
    const rt: RuntimeConf = {
      containerId: args.containerId,
      netns: args.netns,
      ifName: a.ifName,
      args: pairs(a.cniArgs),
    };
    if (Object.keys(a.runtimeConfig).length) rt.capabilityArgs = a.runtimeConfig;
    let added = false;
    try {
      checkNotCancelled(inv);
      let result = await addNetworkList(a.list, rt, inv.listOptions);
      added = true;
      if (a.defaultRoute) {
        result = await applyDefaultRoutes(args.netns, a.ifName, a.defaultRoute, result, {
          cacheDir: inv.options.cacheDir,
          networkName: a.list.name,
          containerId: args.containerId,
        });
      }
      results.push(result);
      inv.log.info("delegate added", { network: a.name, delegateIfName: a.ifName });
    } catch (err) {
      const failure = delegateError(err, d, "adding");
      inv.log.error(failure.message, { network: a.name, code: failure.code });
      for (let j = i + 1; j < record.delegates.length; j++) record.delegates[j].deleted = true;
      await deleteAll(record, args.netns, inv, added ? -1 : i);
      throw failure;
    }
  }
  return results;
}

/** ADD in Kubernetes mode. */
export async function addKube(
  args: CmdArgs,
  inv: Invocation,
  agent?: NodeAgentKube,
): Promise<AttachOutcome> {
  const started = Date.now();
  const s = parseKubeMetaSettings(args.config);
  const podArgs = podArgsOf(args.args);
  if (s.kube.readinessIndicatorFile) {
    await waitForReadinessIndicator(s.kube.readinessIndicatorFile);
  }
  const spoolDir = spoolDirOf(inv.options.cacheDir);
  const source = await openKubeSource(s, podArgs, spoolDir, inv.log, Date.now(), agent);
  try {
    let pod: Pod;
    if (podArgs) {
      const found = await readPod(source, podArgs).catch((err) => {
        throw withPod(err, podArgs);
      });
      if (!found) {
        inv.log.warn("pod not found; answering with an empty result as Multus does", {
          pod: podId(podArgs),
        });
        return { result: emptyResult(args), networks: [] };
      }
      pod = found;
    } else {
      pod = standInPod(s.kube.multusNamespace ?? "kube-system");
    }
    const podRef: PodArgs = podArgs ??
      { namespace: pod.metadata.namespace, name: "", uid: "", infraContainerId: "" };
    let attachments: Attachment[];
    try {
      attachments = await resolveAttachments(pod, await kubeConfig(s, args, inv), source.client, {
        command: "ADD",
        ifName: args.ifName,
        containerId: args.containerId,
        cniArgs: args.args,
        pod: podRef,
        timeoutMs: s.kube.apiTimeoutMs,
        host: Deno.hostname(),
      });
    } catch (err) {
      throw withPod(err, podArgs);
    }
    // A network without a version takes hydra's, as in conf-file mode.
    attachments = attachments.map((a) =>
      a.list.cniVersion ? a : { ...a, list: { ...a.list, cniVersion: inv.options.cniVersion } }
    );
    inv.log.debug("attachments resolved", {
      via: source.kind,
      networks: attachments.map((a) => `${a.name}@${a.ifName}`),
      ms: Date.now() - started,
    });
    warnAboutNetworks(inv, asDelegates(attachments));
    await assertPluginsExist(asDelegates(attachments), inv.listOptions);
    checkNotCancelled(inv);
    const record: AttachmentRecord = {
      kind: RECORD_KIND,
      containerId: args.containerId,
      ifName: args.ifName,
      netns: args.netns,
      delegates: attachments.map((a) => storedAttachment(a, podRef, args.args)),
    };
    if (podArgs) {
      record.pod = { namespace: podArgs.namespace, name: podArgs.name, uid: podArgs.uid };
      record.selectionRules = selectionRules(s, args, inv);
    }
    await saveRecordFirst(inv, record);
    let results: AnyResult[];
    try {
      results = await attachAll(args, inv, record, attachments);
    } catch (err) {
      throw withPod(err, podArgs);
    }
    if (podArgs) await report(source, podArgs, attachments, results);
    // Under skipDefaultNetwork the default network's result is the runtime CNI's, not ours.
    const networks = attachments.map((a, i) => ({
      name: a.name,
      ifName: a.ifName,
      result: results[i],
    }));
    return {
      result: s.kube.skipDefaultNetwork ? { cniVersion: CURRENT_VERSION } : results[0],
      networks,
    };
  } finally {
    source.close();
  }
}

/** Hands the attachments' outcome to the source (daemon or API) for the pod's records. */
async function report(
  source: KubeSource,
  pod: PodArgs,
  attachments: readonly Attachment[],
  results: readonly AnyResult[],
): Promise<void> {
  const reports: AttachmentReport[] = [];
  const events: { reason: string; message: string }[] = [];
  for (const [i, a] of attachments.entries()) {
    const result = toInternal(results[i]);
    reports.push({ name: a.name, isDefault: a.isDefault, result, rawResult: results[i] });
    const ev = addedInterfaceEvent(a.ifName, result, a.name);
    if (ev) events.push({ reason: ev.reason, message: ev.message });
  }
  await source.report({ pod, reports, events, at: Date.now() });
}

/**
 * For a DEL without a record (ADD never got as far, or the record was
 * lost): if the pod still exists under the same UID, its networks resolved
 * again, as recorded delegates for the DEL to remove (engine/salvage.ts
 * runs them and reports what fails); none when the pod is gone or its
 * networks cannot be resolved (logged: nothing known to undo, and a DEL
 * that cannot succeed would block the sandbox forever).
 */
export async function kubeDelegatesWithoutRecord(
  args: CmdArgs,
  inv: Invocation,
): Promise<StoredDelegate[]> {
  const podArgs = podArgsOf(args.args);
  if (!podArgs) {
    inv.log.info("no attachments recorded and no pod named; nothing to resolve");
    return [];
  }
  let source: KubeSource | undefined;
  try {
    const s = parseKubeMetaSettings(args.config);
    source = await openKubeSource(s, podArgs, spoolDirOf(inv.options.cacheDir), inv.log);
    const pod = await readPod(source, podArgs);
    if (!pod) {
      inv.log.info("no attachments recorded and the pod is gone; nothing to resolve", {
        pod: podId(podArgs),
      });
      return [];
    }
    const attachments = await resolveAttachments(
      pod,
      await kubeConfig(s, args, inv),
      source.client,
      {
        command: "DEL",
        ifName: args.ifName,
        containerId: args.containerId,
        cniArgs: args.args,
        pod: podArgs,
        timeoutMs: s.kube.apiTimeoutMs,
      },
    );
    return attachments.map((a) => storedAttachment(a, podArgs, args.args));
  } catch (err) {
    inv.log.error("no attachments recorded and the pod's networks could not be resolved", {
      pod: podId(podArgs),
      error: err,
    });
    return [];
  } finally {
    source?.close();
  }
}

/**
 * The pod's default network as configured (`clusterNetwork`), for STATUS
 * and GC. A path needs no API; a name may be a NAD, read through the
 * daemon or the API server.
 */
export async function defaultNetworkKube(args: CmdArgs, inv: Invocation): Promise<Delegate> {
  const s = parseKubeMetaSettings(args.config);
  const ifName = args.ifName || "eth0";
  if (s.kube.readinessIndicatorFile && (args.command === "STATUS" || args.command === "GC")) {
    await waitForReadinessIndicator(s.kube.readinessIndicatorFile);
  }
  if (s.kube.clusterNetwork.includes("/")) {
    const list: ConfList = await loadConfPath(s.kube.clusterNetwork);
    return { ifName, list: { ...list, cniVersion: list.cniVersion || inv.options.cniVersion } };
  }
  const source = await openKubeSource(s, undefined, spoolDirOf(inv.options.cacheDir), inv.log);
  try {
    const ns = s.kube.multusNamespace ?? "kube-system";
    const conf = { ...(await kubeConfig(s, args, inv)), systemNamespaces: [ns] };
    const [first] = await resolveAttachments(standInPod(ns), conf, source.client, {
      command: args.command,
      ifName,
      containerId: args.containerId,
      cniArgs: "",
      pod: { namespace: ns, name: "", uid: "", infraContainerId: "" },
      timeoutMs: s.kube.apiTimeoutMs,
    });
    return { ifName: first.ifName, list: first.list };
  } finally {
    source.close();
  }
}
