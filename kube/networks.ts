/**
 * The meta-CNI's Kubernetes mode, up to the point of running plugins: find
 * the pod, then build the ordered list of attachments (the default network,
 * `defaultNetworks`, then what the pod selects) with each one's conf,
 * interface name, runtimeConfig and CNI_ARGS, the way Multus resolves them.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { type KubeClient, retryTransient } from "./client.ts";
import type { ConfList } from "../cni/conf.ts";
import {
  confFromObject,
  confFromText,
  findConfByName,
  loadConfPath,
  mapPlugins,
} from "./confdir.ts";
import {
  type DefaultRoutePlan,
  delegateCniArgs,
  delegateIfName,
  delegateRuntimeConfig,
  injectCniArgs,
  planDefaultRoutes,
  type PodArgs,
} from "./delegate.ts";
import { isNotFound, isTransient, kubeCniError } from "./errors.ts";
import {
  createEvent,
  getLegacyNetwork,
  getNetworkAttachmentDefinition,
  getPod,
  type LegacyNetwork,
  type Pod,
  PodUidMismatchError,
} from "./objects.ts";
import { checkNamespaceAccess, type NamespacePolicy, parseGlobalNamespaces } from "./namespaces.ts";

/** Where the kubelet serves its pod-resources API (kubelet/podresources.ts says the same). */
const DEFAULT_POD_RESOURCES_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock";
import {
  DEFAULT_NETWORK_ANNOTATION,
  defaultNetworkOverride,
  LEGACY_NETWORKS_ANNOTATION,
  NETWORKS_ANNOTATION,
  type NetworkSelection,
  podNetworkSelections,
  SelectionError,
} from "./selection.ts";

/** The Kubernetes-mode keys of the meta-CNI's conf (Multus's names and defaults). */
export interface KubeModeConfig {
  /** The default network: NAD name (in `multusNamespace`), conf name in `confDir`, or a path. */
  clusterNetwork: string;
  /** Extra networks every pod gets (not pods in `systemNamespaces`). */
  defaultNetworks?: string[];
  /** Where NADs with an empty spec and named networks are looked up; /etc/cni/multus/net.d. */
  confDir?: string;
  namespaceIsolation?: boolean;
  /** Comma-separated namespaces usable from any namespace under isolation; "default". */
  globalNamespaces?: string;
  /** Namespaces whose pods skip `defaultNetworks`; ["kube-system"]. */
  systemNamespaces?: string[];
  /** Namespace of cluster/default network NADs; "kube-system". */
  multusNamespace?: string;
  /**
   * The kubelet's pod-resources socket, asked for the device IDs of a NAD
   * with a `k8s.v1.cni.cncf.io/resourceName`; /var/lib/kubelet/pod-resources/kubelet.sock.
   */
  podResourcesSocket?: string;
  /** runtimeConfig the meta-CNI itself received; passed on to every delegate. */
  runtimeConfig?: Record<string, unknown>;
  /**
   * The runtime's own CNI made the pod's default network: resolve only
   * `defaultNetworks` and the pod's selections, named net1, net2, … as
   * secondary networks (`clusterNetwork` and the pod's override unused).
   */
  skipDefaultNetwork?: boolean;
}

/** One network to attach, ready to run. */
export interface Attachment {
  /** "namespace/name" for a NAD, else the conf's name; used in network-status. */
  name: string;
  /** Position in the delegate list (0 = default network). */
  index: number;
  /** True for the pod's default network (its result is the meta-CNI's result). */
  isDefault: boolean;
  /** The network (a single plugin conf comes as a list of one), `cni-args` merged in. */
  list: ConfList;
  ifName: string;
  /** Capability args before filtering by each plugin's `capabilities`. */
  runtimeConfig: Record<string, unknown>;
  /** CNI_ARGS for this delegate for the command being resolved. */
  cniArgs: string;
  /** The pod's request, when the pod selected this network. */
  selection?: NetworkSelection;
  /** Default-route handling after ADD, when any attachment asked for `default-route`. */
  defaultRoute?: DefaultRoutePlan;
  /** Where the conf came from. */
  source: "nad" | "file" | "legacy-network";
}

/** Invocation details {@link resolveAttachments} needs. */
export interface ResolveOptions {
  /** The CNI command ("ADD" adds MAC=/IP= requests to CNI_ARGS). */
  command: string;
  /** CNI_IFNAME: the default network's interface. */
  ifName: string;
  containerId: string;
  /** CNI_ARGS as received. */
  cniArgs: string;
  pod: PodArgs;
  /** Per-request deadline; the client's default when omitted. */
  timeoutMs?: number;
  /** Node name, reported on Events. */
  host?: string;
  /**
   * The pod's device IDs per resource (see kubelet/podresources.ts); by
   * default asked from the kubelet's pod-resources socket, only when a
   * network names a resource.
   */
  podResources?: (namespace: string, name: string) => Promise<Map<string, string[]>>;
}

/** The NAD annotation naming the device resource whose device the network uses (Multus). */
export const RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName";

/** Kubernetes' own marker for static (file/http) pods, whose API object is a mirror. */
function isStaticPod(pod: Pod): boolean {
  const source = pod.metadata.annotations?.["kubernetes.io/config.source"];
  return source !== undefined && source !== "api";
}

/**
 * Reads the pod a CNI call is about, retrying transient failures until
 * `deadlineMs`. Returns undefined when the pod does not exist; throws
 * {@link PodUidMismatchError} when the pod under that name has another UID
 * (it was replaced), except for static pods; throws CNI code 11 when the API
 * server stayed unreachable.
 */
export async function fetchPod(
  client: KubeClient,
  pod: PodArgs,
  opts: { deadlineMs: number; timeoutMs?: number },
): Promise<Pod | undefined> {
  let found: Pod;
  try {
    found = await retryTransient(
      (left) =>
        getPod(client, pod.namespace, pod.name, {
          timeoutMs: Math.min(opts.timeoutMs ?? client.timeoutMs, left),
        }),
      { deadlineMs: opts.deadlineMs },
    );
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw kubeCniError(err, `get pod ${pod.namespace}/${pod.name}`);
  }
  if (pod.uid && found.metadata.uid !== pod.uid && !isStaticPod(found)) {
    throw new PodUidMismatchError(pod.namespace, pod.name, pod.uid, found.metadata.uid ?? "");
  }
  return found;
}

/** The conf of a legacy Network object: `{name, type: plugin, ...args}`. */
export function legacyNetworkConf(net: LegacyNetwork): ConfList {
  const where = `Network ${net.metadata.namespace}/${net.metadata.name}`;
  if (!net.plugin) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: "plugin" is missing`);
  }
  let args: Record<string, unknown> = {};
  if (net.args) {
    let doc: unknown;
    try {
      doc = JSON.parse(net.args);
    } catch (err) {
      throw new CniError(ErrorCode.InvalidNetworkConfig, `${where}: "args" is not JSON: ${err}`);
    }
    if (Array.isArray(doc) && doc.length === 1) doc = doc[0];
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `${where}: "args" must be an object or a list holding one object`,
      );
    }
    args = doc as Record<string, unknown>;
  }
  return confFromObject({ name: net.metadata.name, ...args, type: net.plugin }, where);
}

/** Context shared by the lookups of one resolve. */
interface Lookup {
  client: KubeClient;
  pod: Pod;
  confDir: string;
  opts: ResolveOptions;
  /** Record no Warning Events: the caller tells the pod itself. */
  quiet?: boolean;
}

/** Records a Warning on the pod; best effort, never fails the caller. */
async function warn(l: Lookup, reason: string, message: string): Promise<void> {
  if (l.quiet) return;
  try {
    await createEvent(l.client, l.pod, { type: "Warning", reason, message, host: l.opts.host }, {
      timeoutMs: Math.min(l.opts.timeoutMs ?? l.client.timeoutMs, 2_000),
    });
  } catch {
    // The error the caller returns says the same thing.
  }
}

/**
 * Loads the conf of a NetworkAttachmentDefinition (empty spec: the conf
 * file of that name in the conf dir). Missing or invalid NADs raise a
 * Warning Event on the pod and a CNI error naming the NAD and the field.
 */
async function nadConf(
  l: Lookup,
  namespace: string,
  name: string,
): Promise<{ list: ConfList; resourceName?: string }> {
  const id = `${namespace}/${name}`;
  let nad;
  try {
    nad = await getNetworkAttachmentDefinition(l.client, namespace, name, {
      timeoutMs: l.opts.timeoutMs,
    });
  } catch (err) {
    if (isTransient(err)) throw kubeCniError(err, `get NetworkAttachmentDefinition ${id}`);
    const msg = isNotFound(err)
      ? `cannot find a network-attachment-definition (${name}) in namespace (${namespace})`
      : `cannot read NetworkAttachmentDefinition ${id}: ${(err as Error).message}`;
    await warn(l, "NoNetworkFound", msg);
    throw new CniError(ErrorCode.InvalidNetworkConfig, msg);
  }
  const resourceName = nad.metadata.annotations?.[RESOURCE_NAME_ANNOTATION] || undefined;
  try {
    const config = nad.spec?.config ?? "";
    if (config === "") {
      const found = await findConfByName(name, l.confDir);
      if (!found) {
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          `NetworkAttachmentDefinition ${id}: spec.config is empty and no CNI config named "${name}" is in ${l.confDir}`,
        );
      }
      return { list: found, resourceName };
    }
    const list = confFromText(config, name, `NetworkAttachmentDefinition ${id} spec.config`);
    return { list, resourceName };
  } catch (err) {
    await warn(l, "InvalidNetwork", (err as Error).message);
    throw err;
  }
}

/**
 * A network named in the conf (`clusterNetwork`, `defaultNetworks`): a path
 * is loaded from disk; a name is a NAD in `namespace`, else a conf of that
 * name in the conf dir.
 */
async function namedNetwork(
  l: Lookup,
  network: string,
  namespace: string,
): Promise<
  { name: string; loaded: ConfList; source: Attachment["source"]; resourceName?: string }
> {
  if (network.includes("/")) {
    const loaded = await loadConfPath(network);
    return { name: loaded.name, loaded, source: "file" };
  }
  let apiErr: unknown;
  try {
    const nad = await getNetworkAttachmentDefinition(l.client, namespace, network, {
      timeoutMs: l.opts.timeoutMs,
    });
    const id = `${namespace}/${network}`;
    const config = nad.spec?.config ?? "";
    const loaded = config === ""
      ? await findConfByName(network, l.confDir)
      : confFromText(config, network, `NetworkAttachmentDefinition ${id} spec.config`);
    const resourceName = nad.metadata.annotations?.[RESOURCE_NAME_ANNOTATION] || undefined;
    if (loaded) return { name: id, loaded, source: "nad", resourceName };
  } catch (err) {
    if (err instanceof CniError) throw err;
    apiErr = err;
  }
  const file = await findConfByName(network, l.confDir);
  if (file) return { name: file.name, loaded: file, source: "file" };
  if (apiErr && !isNotFound(apiErr)) {
    throw kubeCniError(apiErr, `get NetworkAttachmentDefinition ${namespace}/${network}`);
  }
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `cannot find network "${network}": no NetworkAttachmentDefinition in namespace ${namespace} and no CNI config of that name in ${l.confDir}`,
  );
}

/** A network the pod selected: a NAD, or for the older annotation a legacy Network (else a NAD). */
async function selectedNetwork(
  l: Lookup,
  sel: NetworkSelection,
  legacy: boolean,
): Promise<{ loaded: ConfList; source: Attachment["source"]; resourceName?: string }> {
  if (legacy) {
    try {
      const net = await getLegacyNetwork(l.client, sel.namespace, sel.name, {
        timeoutMs: l.opts.timeoutMs,
      });
      return { loaded: legacyNetworkConf(net), source: "legacy-network" };
    } catch (err) {
      if (err instanceof CniError) throw err;
      if (!isNotFound(err)) throw kubeCniError(err, `get Network ${sel.namespace}/${sel.name}`);
    }
  }
  const { list, resourceName } = await nadConf(l, sel.namespace, sel.name);
  return { loaded: list, source: "nad", resourceName };
}

/** {@link checkNamespaceAccess}, with a Warning Event on the pod when it refuses. */
async function checkAccess(
  l: Lookup,
  podNs: string,
  sel: NetworkSelection,
  policy: NamespacePolicy,
  annotation: string,
  element?: number,
): Promise<void> {
  try {
    checkNamespaceAccess(podNs, sel, policy, annotation, element);
  } catch (err) {
    await warn(l, "NetworkNotAllowed", (err as Error).message);
    throw err;
  }
}

/**
 * The pod's attachments in order: its default network (the pod's
 * `v1.multus-cni.io/default-network` if set, else `clusterNetwork`), the
 * conf's `defaultNetworks` (not for pods in system namespaces), then the
 * networks its annotation selects. Under `namespaceIsolation` the pod's
 * own choices (its default-network override and its selections) must be
 * networks of its namespace or of a global one. Fails with CNI code 7 for
 * bad selections or networks (naming them), 11 when the API server is
 * unreachable.
 */
export async function resolveAttachments(
  pod: Pod,
  conf: KubeModeConfig,
  client: KubeClient,
  opts: ResolveOptions,
): Promise<Attachment[]> {
  const podNs = pod.metadata.namespace;
  const multusNs = conf.multusNamespace ?? "kube-system";
  const l: Lookup = { client, pod, confDir: conf.confDir ?? "/etc/cni/multus/net.d", opts };
  const annotations = pod.metadata.annotations;
  const planned: {
    name: string;
    loaded: ConfList;
    source: Attachment["source"];
    sel?: NetworkSelection;
    resourceName?: string;
  }[] = [];

  const policy = {
    namespaceIsolation: conf.namespaceIsolation ?? false,
    globalNamespaces: parseGlobalNamespaces(conf.globalNamespaces),
  };
  const override = conf.skipDefaultNetwork
    ? undefined
    : defaultNetworkOverride(annotations, multusNs);
  if (conf.skipDefaultNetwork) {
    // The default network is not hydra's to attach.
  } else if (override) {
    // The pod's own choice of default network obeys the same namespace rules as its others.
    await checkAccess(l, podNs, override, policy, DEFAULT_NETWORK_ANNOTATION);
    const { list, resourceName } = await nadConf(l, override.namespace, override.name);
    planned.push({
      name: `${override.namespace}/${override.name}`,
      loaded: list,
      source: "nad",
      sel: override,
      resourceName,
    });
  } else {
    planned.push(await namedNetwork(l, conf.clusterNetwork, multusNs));
  }
  if (!(conf.systemNamespaces ?? ["kube-system"]).includes(podNs)) {
    for (const net of conf.defaultNetworks ?? []) {
      planned.push(await namedNetwork(l, net, multusNs));
    }
  }

  const { source, selections } = podNetworkSelections(annotations, podNs);
  const annotation = source === "legacy" ? LEGACY_NETWORKS_ANNOTATION : NETWORKS_ANNOTATION;
  for (const [i, sel] of selections.entries()) {
    await checkAccess(l, podNs, sel, policy, annotation, i + 1);
    const { loaded, source: from, resourceName } = await selectedNetwork(
      l,
      sel,
      source === "legacy",
    );
    planned.push({ name: `${sel.namespace}/${sel.name}`, loaded, source: from, sel, resourceName });
  }
  const deviceIds = await allocatedDeviceIds(planned, pod, conf, opts);

  const routes = planDefaultRoutes(planned.map((p) => p.sel?.defaultRoute));
  const seen = new Map<string, string>();
  // Without the default network, the first attachment is the pod's net1.
  const shift = conf.skipDefaultNetwork ? 1 : 0;
  return planned.map((p, index) => {
    const isDefault = index + shift === 0;
    const ifName = delegateIfName(p.sel, index + shift, isDefault, opts.ifName);
    const clash = seen.get(ifName);
    if (clash !== undefined) {
      throw new SelectionError(
        override && index === 0 ? DEFAULT_NETWORK_ANNOTATION : annotation,
        `networks "${clash}" and "${p.name}" both use interface name "${ifName}"`,
      );
    }
    seen.set(ifName, p.name);
    const id = deviceIds[index];
    const device = id ? { id, podNs } : undefined;
    const att = attachmentOf(p, index, isDefault, ifName, conf, opts, device);
    if (routes) att.defaultRoute = routes[index];
    return att;
  });
}

/** One planned network as the attachment to run: its conf, arguments and interface. */
function attachmentOf(
  p: { name: string; loaded: ConfList; source: Attachment["source"]; sel?: NetworkSelection },
  index: number,
  isDefault: boolean,
  ifName: string,
  conf: Pick<KubeModeConfig, "runtimeConfig">,
  opts: ResolveOptions,
  device?: { id: string; podNs: string },
): Attachment {
  const cniArgs = p.sel?.cniArgs;
  let list = cniArgs
    ? mapPlugins(p.loaded, (plugin) => injectCniArgs(plugin, cniArgs, p.name))
    : p.loaded;
  // As Multus: the allocated device goes into every plugin and the runtimeConfig.
  const deviceId = device?.id;
  if (deviceId) {
    list = mapPlugins(list, (pl) => ({ ...pl, deviceID: deviceId, pciBusID: deviceId }));
  }
  const sel = device
    ? { ...(p.sel ?? { name: p.name, namespace: device.podNs }), deviceId: device.id }
    : p.sel;
  const att: Attachment = {
    name: p.name,
    index,
    isDefault,
    list,
    ifName,
    runtimeConfig: delegateRuntimeConfig(conf.runtimeConfig, sel, isDefault && !deviceId, {
      containerId: opts.containerId,
      ifName,
      delegateName: p.name,
    }),
    cniArgs: delegateCniArgs(opts.pod, opts.cniArgs, p.sel, opts.command),
    source: p.source,
  };
  if (p.sel) att.selection = p.sel;
  return att;
}

/** The rules {@link resolveSelection} resolves one selection by (a pod's, from creation). */
export interface SelectionResolveConfig {
  confDir?: string;
  namespaceIsolation?: boolean;
  globalNamespaces?: string;
  runtimeConfig?: Record<string, unknown>;
}

/**
 * One network a running pod selects, resolved as {@link resolveAttachments}
 * resolves the pod's selections at creation: the namespace rules, the NAD
 * (or, for the older annotation, the Network object), `cni-args`, the
 * runtimeConfig and CNI_ARGS of `opts.command`, on interface `ifName` at
 * position `index`. Records no Events (the caller tells the pod); fails as
 * resolveAttachments does, and for a NAD naming a device `resourceName`
 * (the pod's devices are shared out among its networks at creation).
 */
export async function resolveSelection(
  pod: Pod,
  sel: NetworkSelection,
  where: { ifName: string; index: number; element: number; legacy: boolean },
  conf: SelectionResolveConfig,
  client: KubeClient,
  opts: ResolveOptions,
): Promise<Attachment> {
  const l: Lookup = {
    client,
    pod,
    confDir: conf.confDir ?? "/etc/cni/multus/net.d",
    opts,
    quiet: true,
  };
  const policy = {
    namespaceIsolation: conf.namespaceIsolation ?? false,
    globalNamespaces: parseGlobalNamespaces(conf.globalNamespaces),
  };
  const annotation = where.legacy ? LEGACY_NETWORKS_ANNOTATION : NETWORKS_ANNOTATION;
  checkNamespaceAccess(pod.metadata.namespace, sel, policy, annotation, where.element);
  const { loaded, source, resourceName } = await selectedNetwork(l, sel, where.legacy);
  const name = `${sel.namespace}/${sel.name}`;
  if (resourceName) {
    // Its device is handed out among the pod's networks at creation, in order.
    throw new SelectionError(
      annotation,
      `network "${name}" uses a device of resource "${resourceName}": ` +
        `such a network is attached at the pod's creation only`,
      where.element,
    );
  }
  return attachmentOf({ name, loaded, source, sel }, where.index, false, where.ifName, conf, opts);
}

/**
 * The device ID each planned network gets from the pod's allocated
 * devices, as Multus hands them out: a network whose NAD names a
 * `resourceName` takes the next unused ID of that resource (IDs sorted);
 * others get none. The kubelet is asked only when some network names a
 * resource; a pod without a name (STATUS, GC) gets none.
 */
async function allocatedDeviceIds(
  planned: readonly { name: string; resourceName?: string }[],
  pod: Pod,
  conf: KubeModeConfig,
  opts: ResolveOptions,
): Promise<(string | undefined)[]> {
  const out: (string | undefined)[] = planned.map(() => undefined);
  const { namespace, name } = pod.metadata;
  if (!name || !planned.some((p) => p.resourceName)) return out;
  const socket = conf.podResourcesSocket ?? DEFAULT_POD_RESOURCES_SOCKET;
  let map: Map<string, string[]>;
  try {
    map = opts.podResources
      ? await opts.podResources(namespace, name)
      : await (await import("../kubelet/podresources.ts")).podResourceMap(
        socket,
        namespace,
        name,
        Math.min(opts.timeoutMs ?? 10_000, 10_000),
      );
  } catch (err) {
    throw new CniError(
      ErrorCode.TryAgainLater,
      `cannot read the devices of pod ${namespace}/${name} from the kubelet (${socket}): ${
        (err as Error).message
      }`,
    );
  }
  const used = new Map<string, number>();
  planned.forEach((p, i) => {
    if (!p.resourceName) return;
    const ids = map.get(p.resourceName) ?? [];
    const next = used.get(p.resourceName) ?? 0;
    if (next < ids.length) out[i] = ids[next];
    used.set(p.resourceName, next + 1);
  });
  return out;
}
