/**
 * Where a pod's extra networks come from: a {@link NetworkSource} turns the
 * pod NRI hands over into one attach of the engine (engine/attach.ts: its
 * conf, the interface to record it under, and in conf-file mode the
 * networks themselves), or says the pod wants nothing.
 *
 * Conf-file mode ({@link confDirSource}) needs no API server, so it works
 * with `crictl` alone: the pod's `k8s.v1.cni.cncf.io/networks` annotation
 * (short or JSON form, as with Multus; the older `networks` annotation when
 * it is absent) names networks, and each name is the `name` of a conf or
 * conflist in the conf folder (found as libcni finds a network by name).
 * Interfaces are the element's `@ifname`/`interface`, else `net<position>`
 * (net1 for the first element; kube/delegate.ts names them). A namespace in
 * an element is ignored: files have none. The element's `ips`, `mac`,
 * `bandwidth`, `portMappings`, … are the network's capability arguments
 * (the engine hands each plugin those it declares), and its `cni-args` go
 * into every plugin's `args.cni`, as the meta-CNI's Kubernetes mode does.
 *
 * Both modes take the meta-CNI's namespace rules (`namespaceIsolation`,
 * `globalNamespaces`, kube/namespaces.ts): under isolation a pod may select
 * networks of its own namespace and of the global ones only. In conf-file
 * mode that refuses an element that names another namespace (a plain name
 * is the pod's own); Kubernetes mode hands the rules to the engine, which
 * applies them to every NAD the pod names.
 *
 * The runtime's default CNI already made the pod's first interface, so only
 * the selected networks are attached here; the attach is recorded under the
 * first one's interface.
 *
 * @module
 */

import { type ConfList, loadConfDir } from "../cni/conf.ts";
import type { NetConf } from "../cni/types.ts";
import type { NetworkPlan } from "../engine/attach.ts";
import { createConfCache } from "./conf_cache.ts";
import {
  delegateIfName,
  delegateRuntimeConfig,
  injectCniArgs,
  secondaryIfNames,
} from "../kube/delegate.ts";
import { mapPlugins } from "../kube/confdir.ts";
import {
  LEGACY_NETWORKS_ANNOTATION,
  NETWORKS_ANNOTATION,
  type NetworkSelection,
  podNetworkSelections,
} from "../kube/selection.ts";
import { checkNamespaceAccess, type NamespacePolicy } from "../kube/namespaces.ts";
import type { PodSandbox } from "./pod.ts";
import { resolveConnection } from "../kube/kubeconfig.ts";
import { createKubeClient } from "../kube/client.ts";
import { createEvent } from "../kube/objects.ts";

/** One attach of a pod's extra networks. */
export interface AttachPlan {
  /** The interface the attach is recorded under (CNI_IFNAME): the first network's. */
  ifName: string;
  /**
   * The meta-CNI conf (`"type": "hydra"`) without the keys the engine owns
   * (`cacheDir`, `binDir`, `logFile`, `logLevel`, `delegateTimeout`).
   */
  conf: NetConf;
  /** Conf-file mode: the networks in attach order (Kubernetes mode: the conf says). */
  networks?: NetworkPlan[];
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

/** A conf file picked by a selection, as the network the engine attaches. */
function selectedNetwork(
  list: ConfList,
  sel: NetworkSelection,
  ifName: string,
  sandboxId: string,
): NetworkPlan {
  const cniArgs = sel.cniArgs;
  const capabilityArgs = delegateRuntimeConfig(undefined, sel, false, {
    containerId: sandboxId,
    ifName,
    delegateName: list.name,
  });
  return {
    name: sel.name,
    ifName,
    list: cniArgs ? mapPlugins(list, (p) => injectCniArgs(p, cniArgs, list.name)) : list,
    capabilityArgs,
  };
}

/** The conf of every attach: what is not the engine's own, nor a network. */
function baseConf(extra: Record<string, unknown> = {}): NetConf {
  return { cniVersion: "1.1.0", name: "hydra-nri", type: "hydra", ...extra };
}

/** Conf-file mode: networks are conf files in `confDir`, picked by the pod's annotation. */
export function confDirSource(
  confDir: string,
  namespaces: NamespacePolicy = { namespaceIsolation: false, globalNamespaces: [] },
): NetworkSource {
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
      const { source, selections } = podNetworkSelections(pod.annotations, pod.namespace);
      if (selections.length === 0) return undefined;
      const annotation = source === "legacy" ? LEGACY_NETWORKS_ANNOTATION : NETWORKS_ANNOTATION;
      selections.forEach((sel, i) =>
        checkNamespaceAccess(pod.namespace, sel, namespaces, annotation, i + 1)
      );
      const ifNames = secondaryIfNames(selections);
      const networks: NetworkPlan[] = [];
      for (const [i, sel] of selections.entries()) {
        networks.push(selectedNetwork(await confs.load(sel.name), sel, ifNames[i], pod.id));
      }
      return { ifName: ifNames[0], conf: baseConf(), networks };
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
  /** The namespace rules (the meta-CNI's `namespaceIsolation`, `globalNamespaces`). */
  namespaces?: NamespacePolicy;
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
    // async without an await: a refused selection is a rejection, as for every source.
    // deno-lint-ignore require-await
    async plan(pod) {
      const { selections } = podNetworkSelections(pod.annotations, pod.namespace);
      const systemPod = pod.namespace === "kube-system";
      const defaultCount = systemPod ? 0 : defaults.length;
      if (selections.length === 0 && defaultCount === 0) return undefined;
      // The engine names the interfaces (defaults first) and reports them; the selections' are
      // checked here, before the API is asked, and the first names the attach's record.
      const own = secondaryIfNames(selections, defaultCount + 1);
      const conf = baseConf({
        skipDefaultNetwork: true,
        apiTimeout: opts.apiTimeoutS,
        daemonSocket: "",
        confDir: opts.confDir,
      });
      if (opts.namespaces?.namespaceIsolation) {
        conf.namespaceIsolation = true;
        conf.globalNamespaces = opts.namespaces.globalNamespaces.join(",");
      }
      if (opts.kubeconfig) conf.kubeconfig = opts.kubeconfig;
      if (opts.podResourcesSocket) conf.podResourcesSocket = opts.podResourcesSocket;
      if (defaultCount) conf.defaultNetworks = defaults;
      const ifName = defaultCount ? delegateIfName(undefined, 1, false, "") : own[0];
      return { ifName, conf };
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
