/**
 * Where a pod's extra networks come from: a {@link NetworkSource} turns the
 * pod NRI hands over into one call of the meta-CNI (its conf and the
 * CNI_IFNAME to use), or says the pod wants nothing.
 *
 * Conf-file mode ({@link confDirSource}) needs no API server, so it works
 * with `crictl` alone: the pod's `k8s.v1.cni.cncf.io/networks` annotation
 * (short or JSON form, as with Multus; the older `networks` annotation when
 * it is absent) names networks, and each name is the `name` of a conf or
 * conflist in the conf folder (found as libcni finds a network by name).
 * Interfaces are the element's `@ifname`/`interface`, else `net<position>`
 * (net1 for the first element). A namespace in an element is ignored:
 * files have none. The element's `ips`, `mac`, `bandwidth`,
 * `portMappings`, … go to the plugins that declare the capability, and its
 * `cni-args` into every plugin's `args.cni`, as the meta-CNI's Kubernetes
 * mode does.
 *
 * The runtime's default CNI already made the pod's first interface, so only
 * the selected networks are attached here; the first of them is the meta-
 * CNI's "first delegate" and gets CNI_IFNAME, the others carry an explicit
 * `ifname`.
 *
 * @module
 */

import { type ConfList, loadConfDir } from "../cni/conf.ts";
import { createConfCache } from "./conf_cache.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { delegateRuntimeConfig, injectCniArgs } from "../kube/delegate.ts";
import {
  interfaceNameProblem,
  type NetworkSelection,
  podNetworkSelections,
} from "../kube/selection.ts";
import type { PodSandbox } from "./pod.ts";
import { resolveConnection } from "../kube/kubeconfig.ts";
import { createKubeClient } from "../kube/client.ts";
import { createEvent } from "../kube/objects.ts";

/** The interface name containerd's CRI gives the default network. */
export const DEFAULT_POD_IFNAME = "eth0";

/** One network of a plan. */
export interface PlannedNetwork {
  name: string;
  ifName: string;
}

/** One meta-CNI call attaching a pod's extra networks. */
export interface AttachPlan {
  /** CNI_IFNAME of the call: the first network's interface. */
  ifName: string;
  /**
   * The meta-CNI conf (`"type": "hydra"`) without the keys the engine owns
   * (`cacheDir`, `binDir`, `logFile`, `logLevel`, `delegateTimeout`).
   */
  conf: Record<string, unknown>;
  /** The networks in attach order. */
  networks: PlannedNetwork[];
}

/** Resolves a pod's extra networks. */
export interface NetworkSource {
  /** "conf-dir" or "kubernetes", for logs. */
  readonly kind: string;
  /**
   * The pod's plan; undefined when it selects no extra network. Throws a
   * CniError naming the fault when the selection or a network is unusable.
   */
  plan(pod: PodSandbox): Promise<AttachPlan | undefined>;
  /**
   * Tells the pod's owners that its networks were not attached (a Warning
   * Event in Kubernetes mode); absent where there is nobody to tell.
   */
  reportFailure?(pod: PodSandbox, message: string): Promise<void>;
  /**
   * Reads ahead what the first plans will need (at start, before any pod
   * comes); never throws. Absent where there is nothing to read ahead.
   */
  warm?(): Promise<void>;
}

type Json = Record<string, unknown>;

/** Puts per-attachment capability args into the plugins that declare them. */
function withCapabilityArgs(plugins: readonly Json[], args: Json): Json[] {
  if (Object.keys(args).length === 0) return [...plugins];
  return plugins.map((plugin) => {
    const caps = plugin.capabilities as Record<string, unknown> | undefined;
    const picked: Json = {};
    for (const [cap, value] of Object.entries(args)) {
      if (caps?.[cap] === true) picked[cap] = value;
    }
    if (Object.keys(picked).length === 0) return plugin;
    const own = (plugin.runtimeConfig ?? {}) as Json;
    return { ...plugin, runtimeConfig: { ...own, ...picked } };
  });
}

/** The delegate entry for one selected network, as the meta-CNI reads it inline. */
function delegateFor(
  list: ConfList,
  sel: NetworkSelection,
  ifName: string,
  sandboxId: string,
): Json {
  let conf: Json = {
    name: list.name,
    plugins: list.plugins,
    loadOnlyInlinedPlugins: true,
  };
  if (list.cniVersion) conf.cniVersion = list.cniVersion;
  if (list.disableCheck) conf.disableCheck = true;
  if (list.disableGC) conf.disableGC = true;
  if (sel.cniArgs) conf = injectCniArgs(conf, sel.cniArgs, list.name);
  const capabilityArgs = delegateRuntimeConfig(undefined, sel, false, {
    containerId: sandboxId,
    ifName,
    delegateName: list.name,
  });
  conf.plugins = withCapabilityArgs(conf.plugins as Json[], capabilityArgs);
  return conf;
}

/** Interface names of a pod's selections: requested, else net1, net2, … by position. */
export function selectionIfNames(selections: readonly NetworkSelection[]): string[] {
  const names = selections.map((sel, i) => sel.interface ?? `net${i + 1}`);
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    const problem = interfaceNameProblem(name);
    if (problem) throw new CniError(ErrorCode.InvalidNetworkConfig, problem);
    if (name === DEFAULT_POD_IFNAME) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `network "${selections[i].name}": interface "${name}" belongs to the pod's default network`,
      );
    }
    const other = seen.get(name);
    if (other !== undefined) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `networks "${selections[other].name}" and "${
          selections[i].name
        }" both ask for interface "${name}"`,
      );
    }
    seen.set(name, i);
  });
  return names;
}

/** Conf-file mode: networks are conf files in `confDir`, picked by the pod's annotation. */
export function confDirSource(confDir: string): NetworkSource {
  const confs = createConfCache(confDir);
  return {
    kind: "conf-dir",
    async warm() {
      let lists: ConfList[];
      try {
        lists = await loadConfDir(confDir);
      } catch {
        return; // a broken file fails the pods that select it, with its own message
      }
      for (const list of lists) await confs.load(list.name).catch(() => {});
    },
    async plan(pod) {
      const { selections } = podNetworkSelections(pod.annotations, pod.namespace);
      if (selections.length === 0) return undefined;
      const ifNames = selectionIfNames(selections);
      const delegates: Json[] = [];
      for (let i = 0; i < selections.length; i++) {
        const list = await confs.load(selections[i].name);
        const delegate = delegateFor(list, selections[i], ifNames[i], pod.id);
        // The first delegate gets CNI_IFNAME; the others name theirs.
        if (i > 0) delegate.ifname = ifNames[i];
        delegates.push(delegate);
      }
      return {
        ifName: ifNames[0],
        conf: { cniVersion: "1.1.0", name: "hydra-nri", type: "hydra", delegates },
        networks: selections.map((sel, i) => ({ name: sel.name, ifName: ifNames[i] })),
      };
    },
  };
}

/** Settings of {@link kubeSource}. */
export interface KubeSourceOptions {
  /** Kubeconfig file; undefined: the pod's ServiceAccount (in-cluster). */
  kubeconfig?: string;
  /** Networks every pod gets before its own selections (NAD names or paths), as `defaultNetworks`. */
  defaultNetworks?: string[];
  /** Seconds all API work of one attach may take; it must fit the runtime's request budget. */
  apiTimeoutS: number;
  /** Where NADs with an empty config and named networks are looked up. */
  confDir: string;
  /** The kubelet's pod-resources socket (NADs with a resourceName); the kubelet's default when unset. */
  podResourcesSocket?: string;
}

/**
 * Kubernetes mode: the meta-CNI's own Kubernetes mode with
 * `skipDefaultNetwork` (the runtime's CNI made eth0) resolves the pod's
 * selections through NetworkAttachmentDefinitions, attaches them as net1,
 * net2, … (after `defaultNetworks`) and reports them on the pod
 * (network-status merged, `hydra.clusternet.io.<network>`). The pod is
 * read from the API server, so a pod that selects nothing here (NRI hands
 * over its annotations) and gets no `defaultNetworks` costs no call at all.
 * The node daemon is not asked: the API budget is the runtime's.
 */
export function kubeSource(opts: KubeSourceOptions): NetworkSource {
  const defaults = opts.defaultNetworks ?? [];
  return {
    kind: "kubernetes",
    plan(pod) {
      const { selections } = podNetworkSelections(pod.annotations, pod.namespace);
      const systemPod = pod.namespace === "kube-system";
      const defaultCount = systemPod ? 0 : defaults.length;
      if (selections.length === 0 && defaultCount === 0) return Promise.resolve(undefined);
      const own = selectionIfNames(
        selections.map((sel, i) =>
          sel.interface ? sel : { ...sel, interface: `net${defaultCount + i + 1}` }
        ),
      );
      const networks: PlannedNetwork[] = [
        ...defaults.slice(0, defaultCount).map((name, i) => ({ name, ifName: `net${i + 1}` })),
        ...selections.map((sel, i) => ({ name: `${sel.namespace}/${sel.name}`, ifName: own[i] })),
      ];
      const conf: Json = {
        cniVersion: "1.1.0",
        name: "hydra-nri",
        type: "hydra",
        skipDefaultNetwork: true,
        apiTimeout: opts.apiTimeoutS,
        daemonSocket: "",
        confDir: opts.confDir,
      };
      if (opts.kubeconfig) conf.kubeconfig = opts.kubeconfig;
      if (opts.podResourcesSocket) conf.podResourcesSocket = opts.podResourcesSocket;
      if (defaultCount) conf.defaultNetworks = defaults;
      return Promise.resolve({ ifName: networks[0].ifName, conf, networks });
    },
    async reportFailure(pod, message) {
      const conn = await resolveConnection(opts.kubeconfig);
      if (!conn) return;
      const client = createKubeClient(conn, {
        timeoutMs: opts.apiTimeoutS * 1000,
        userAgent: "hydra-nri",
      });
      try {
        await createEvent(
          client,
          { metadata: { namespace: pod.namespace, name: pod.name, uid: pod.uid } },
          { type: "Warning", reason: "NetworkAttachFailed", message, host: Deno.hostname() },
        );
      } finally {
        client.close();
      }
    },
  };
}
