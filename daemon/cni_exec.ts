/**
 * The daemon's side of `daemonExec`: runs a CNI invocation handed over by
 * an exec'd shim (a `cni` request, see daemonclient/protocol.ts), and only
 * what the node's own configuration says.
 *
 * - The plugin: only a type this daemon knows how to run (the meta-CNI,
 *   "hydra", and the built-in interface plugins of STANDALONE_PLUGINS when
 *   a runtime execs them on their own), in-process, with hydra's built-ins;
 *   other delegates are exec'd from the daemon's own plugin folders
 *   (`--cni-bin-dir` and the conf's `binDir`), never from a path the caller
 *   names.
 * - The conf: the network the caller names, read by the daemon from the
 *   node's conf folders (`--cni-conf-dir`), only when its plugin asks for
 *   `daemonExec` and it is the one the runtime handed the caller (same
 *   digest). Otherwise the request is refused and the exec'd side runs the
 *   invocation itself.
 * - From the caller: the command (ADD, DEL, CHECK), container, namespace,
 *   interface, CNI_ARGS, and the runtime's capability arguments, of which
 *   only those the conf's plugin declares reach it (as libcni does).
 *   Not the daemon's own network namespace: a pod is never the node.
 *
 * - hydra-pool (cluster IPAM) is the exception: no node conf holds an
 *   IPAM plugin's config, so the caller hands it over, checked to be a
 *   hydra-pool one; it only allocates from the cluster's pools.
 *
 * The invocation is cancelled when its caller gives up (the server aborts
 * the signal): an ADD stops and is rolled back (engine/ownership.ts).
 *
 * @module
 */

import type { Plugin } from "../cni/types.ts";
import type { NodeAgentKube } from "../engine/kube_source.ts";
import type { Logger } from "../pkg/log.ts";
import {
  type CniRequest,
  confDigest,
  type DaemonResponse,
  POOL_PLUGIN,
  STANDALONE_PLUGINS,
} from "../daemonclient/protocol.ts";
import { type NodeConf, nodeConfs } from "./node_confs.ts";
import type { CniExecutor } from "./node_server.ts";

/** Where the daemon finds what it runs. */
export interface CniExecOptions {
  /** The node's CNI conf folders, searched in order. */
  confDirs: readonly string[];
  /** Folders of plugins that are not built in (CNI_PATH of every run). */
  binDirs: readonly string[];
  log: Logger;
  /** The daemon's watch caches and report queue, for the meta-CNI's Kubernetes mode. */
  kube?: NodeAgentKube;
}

/** Plugin types the daemon runs, each loaded on first use (a daemon never asked carries none). */
function runnable(opts: CniExecOptions): Record<string, () => Promise<Plugin>> {
  return {
    // The daemon runs what it is handed itself: its meta-CNI never forwards, and reads its
    // objects from the daemon's caches and hands reports to its queue, not over its own socket.
    hydra: async () =>
      (await import("../engine/meta.ts")).createMetaPlugin({ forward: false, kube: opts.kube }),
    ...Object.fromEntries(
      [...STANDALONE_PLUGINS].map((type) => [type, () => loadStandalone(type)]),
    ),
  };
}

async function loadStandalone(type: string): Promise<Plugin> {
  const { loadBuiltin } = await import("../engine/builtins.ts");
  return await batchingDel(await loadBuiltin(type)!);
}

/**
 * Why a standalone plugin's request is not the daemon's to run, or
 * undefined: it is handed no previous result, so it runs an ADD only as
 * the first plugin of its list, and never a CHECK (the exec'd side keeps
 * those; this guards against a caller that does not).
 */
function standaloneRefusal(req: CniRequest, found: NodeConf): DaemonResponse | undefined {
  if (!STANDALONE_PLUGINS.has(req.plugin)) return undefined;
  if (req.command === "CHECK" || (req.command === "ADD" && found.index > 0)) {
    return refusal(
      400,
      "BadRequest",
      `a ${req.command} of ${req.plugin} needs the previous result; it runs in the exec'd plugin`,
    );
  }
  return undefined;
}

function refusal(status: number, reason: string, message: string): DaemonResponse {
  return { ok: false, status, reason, message };
}

/** The conf as the runtime hands it to the plugin: its list's name and version in it. */
function asHandedOver(found: NodeConf): Record<string, unknown> {
  return { ...found.plugin, name: found.list.name, cniVersion: found.list.cniVersion };
}

/** Device and inode of a file; undefined when it cannot be read. */
function identity(path: string): string | undefined {
  try {
    const info = Deno.statSync(path);
    return `${info.dev}:${info.ino}`;
  } catch {
    return undefined;
  }
}

/** True when `netns` is the daemon's own network namespace (the node's, under hostNetwork). */
function isOwnNetns(netns: string): boolean {
  const target = identity(netns);
  return target !== undefined && target === identity("/proc/self/ns/net");
}

/** Creates the executor of `cni` requests. */
export function createCniExecutor(opts: CniExecOptions): CniExecutor {
  const confs = nodeConfs(opts.confDirs, opts.log);
  const plugins = new Map<string, Promise<Plugin>>();
  const digests = new WeakMap<NodeConf["plugin"], Promise<string>>();
  const digestOf = (found: NodeConf) => {
    let d = digests.get(found.plugin);
    if (!d) digests.set(found.plugin, d = confDigest(asHandedOver(found)));
    return d;
  };

  const pool = createPoolExecutor(opts);
  const runnables = runnable(opts);
  return async (req: CniRequest, signal: AbortSignal): Promise<DaemonResponse> => {
    if (req.plugin === POOL_PLUGIN) return await pool(req, signal);
    const load = runnables[req.plugin];
    if (!Object.hasOwn(runnables, req.plugin) || !load) {
      return refusal(404, "ConfNotFound", `this daemon runs no plugin of type "${req.plugin}"`);
    }
    const found = await confs.find(req.network, req.plugin);
    if (!found) {
      return refusal(
        404,
        "ConfNotFound",
        `no network "${req.network}" with a "${req.plugin}" plugin in ${opts.confDirs.join(", ")}`,
      );
    }
    if (found.plugin.daemonExec !== true) {
      return refusal(
        404,
        "ConfNotFound",
        `network "${req.network}" in ${found.path} does not ask for daemonExec`,
      );
    }
    if (await digestOf(found) !== req.confDigest) {
      return refusal(
        409,
        "ConfMismatch",
        `network "${req.network}" in ${found.path} is not the conf the runtime handed over`,
      );
    }
    if (req.netns !== "" && isOwnNetns(req.netns)) {
      return refusal(400, "BadRequest", `"netns" is the daemon's own network namespace`);
    }
    const chained = standaloneRefusal(req, found);
    if (chained) return chained;
    let plugin = plugins.get(req.plugin);
    if (!plugin) plugins.set(req.plugin, plugin = load());
    // The plugin path is loaded on the first invocation: a daemon never asked does not carry it.
    const [{ invokeInProcess }, { BUILTINS }, { buildPluginConfig }] = await Promise.all([
      import("../cni/skel.ts"),
      import("../engine/builtins.ts"),
      import("../cni/list.ts"),
    ]);
    const stdin = buildPluginConfig(
      found.list,
      found.plugin,
      req.command,
      undefined,
      req.runtimeConfig,
    );
    const body = await invokeInProcess(
      await plugin,
      invocationEnv(req, opts),
      new TextEncoder().encode(JSON.stringify(stdin)),
      BUILTINS,
      signal,
    );
    return { ok: true, body };
  };
}

/**
 * `plugin` with its DEL inside a removal batch of its own, as the meta-CNI
 * runs its delegates' (engine/run.ts): the pod's link is taken out of use
 * and renamed away, the DEL answers, and the daemon deletes it right after
 * (see plugins/link_batch.ts). A link the kernel would not delete fails
 * the DEL.
 */
async function batchingDel(plugin: Plugin): Promise<Plugin> {
  const { withRemovalBatch } = await import("../plugins/link_batch.ts");
  return {
    ...plugin,
    async del(args) {
      const failures = await withRemovalBatch(args.containerId, args.netns, () => plugin.del(args));
      if (failures.length) throw failures[0].error;
    },
  };
}

/** The CNI_* variables of a run: the caller's arguments, the daemon's plugin folders. */
function invocationEnv(req: CniRequest, opts: CniExecOptions): Record<string, string> {
  return {
    CNI_COMMAND: req.command,
    CNI_CONTAINERID: req.containerId,
    CNI_NETNS: req.netns,
    CNI_IFNAME: req.ifName,
    CNI_ARGS: req.cniArgs,
    CNI_PATH: opts.binDirs.join(":"),
  };
}

/**
 * Runs hydra-pool requests: this daemon is the node's allocation host, and
 * its runs of hydra-pool are batched there. The request's config was
 * checked to be a hydra-pool one (daemon/requests.ts); hydra-pool acts on
 * the cluster's pools only, never in a namespace or through another plugin.
 */
function createPoolExecutor(opts: CniExecOptions): CniExecutor {
  let plugin: Promise<Plugin> | undefined;
  return async (req, signal) => {
    const [{ invokeInProcess }, { BUILTINS, loadBuiltin }] = await Promise.all([
      import("../cni/skel.ts"),
      import("../engine/builtins.ts"),
    ]);
    plugin ??= loadBuiltin(POOL_PLUGIN)!;
    const body = await invokeInProcess(
      await plugin,
      invocationEnv(req, opts),
      new TextEncoder().encode(JSON.stringify(req.config ?? {})),
      BUILTINS,
      signal,
    );
    return { ok: true, body };
  };
}
