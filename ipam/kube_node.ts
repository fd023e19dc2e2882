/**
 * kube-node: IPAM whose ranges come from this node's Node object, with
 * allocation, files and results exactly hydra-ipam's (host-local's).
 *
 * ```json
 * "ipam": {
 *   "type": "kube-node",
 *   "annotation": "example.com/blue-cidrs",
 *   "ipv4-namespaces": ["legacy-app"],
 *   "dataDir": "/var/lib/cni/networks", "routes": [{"dst": "0.0.0.0/0"}],
 *   "kubeconfig": "/etc/cni/net.d/hydra.d/hydra.kubeconfig",
 *   "nodeName": "worker-1", "daemonSocket": "/run/hydra/daemon.sock",
 *   "nodeCacheTTL": 30, "apiTimeout": 5
 * }
 * ```
 *
 * - Ranges: one range set per CIDR of `spec.podCIDRs` (the node's share of
 *   the default network), or of the comma-separated CIDRs in the Node
 *   annotation named by `annotation` (one per secondary network, set per
 *   node: `kubectl annotate node w1 example.com/blue-cidrs=10.9.1.0/24,fd00:9:1::/64`).
 *   The keys `annotation` and `ipv4-namespaces` (only pods of these
 *   namespaces get IPv4) are the ones xcluster-cni's kube-node reads.
 * - The Node is read once and cached in `<dataDir>/.kube-node/<node>.json`
 *   for `nodeCacheTTL` seconds (30), so a burst of pods costs one read (a
 *   cached copy that lacks the annotation or CIDRs is read again first);
 *   the read goes to the node daemon when one answers on `daemonSocket`,
 *   else to the API server (`kubeconfig`, else the in-cluster account).
 *   When the API cannot be reached a cached copy of any age is used, else
 *   the ADD fails with CNI code 11 within `apiTimeout` seconds.
 * - DEL, GC and STATUS need no Node: they work on the store alone.
 * - The node is `nodeName`, else the host name (lowercased, as the kubelet
 *   registers it).
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { writeFileAtomic } from "../pkg/fsutil.ts";
import type { Plugin } from "../cni/types.ts";
import type { AnyResult, CmdArgs } from "../cni/types.ts";
import { SUPPORTED_VERSIONS } from "../cni/types.ts";
import { DEFAULT_DATA_DIR, enforceIpamShape, invalidConfig, ipamFields } from "./config.ts";
import { KUBE_NODE_SHAPE } from "./schemas.ts";
import { plugin as hostLocal } from "./host_local.ts";

/**
 * The family of a CIDR text, or undefined when it is not one. A first
 * check for a clear message naming the Node; hydra-ipam validates the
 * ranges fully.
 */
export function cidrFamily(text: string): 4 | 6 | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const [, ip, prefix] = m;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
    return ip.split(".").every((o) => Number(o) <= 255) && Number(prefix) <= 32 ? 4 : undefined;
  }
  if (!/^[0-9a-fA-F:.]+$/.test(ip) || !ip.includes(":") || Number(prefix) > 128) return undefined;
  try {
    new URL(`http://[${ip}]/`);
    return 6;
  } catch {
    return undefined;
  }
}

/** What kube-node keeps of a Node. */
export interface NodeRanges {
  name: string;
  podCIDRs: string[];
  annotations: Record<string, string>;
  /** When it was read from the API (ms since the epoch). */
  at: number;
}

/** kube-node's own settings. */
interface KubeNodeConfig {
  nodeName: string;
  annotation?: string;
  ipv4Namespaces?: string[];
  dataDir: string;
  kubeconfig?: string;
  daemonSocket?: string;
  ttlMs: number;
  apiTimeoutMs: number;
}

function seconds(ipam: Record<string, unknown>, key: string, fallback: number): number {
  const v = ipam[key] ?? fallback;
  if (typeof v !== "number" || !(v >= 0)) {
    throw invalidConfig(`ipam.${key} must be a number of seconds`);
  }
  return v * 1000;
}

function readConfig(args: CmdArgs): KubeNodeConfig {
  enforceIpamShape(args, KUBE_NODE_SHAPE);
  const ipam = args.config.ipam as Record<string, unknown> | undefined;
  if (!ipam || typeof ipam !== "object") throw invalidConfig("IPAM config missing 'ipam' key");
  const f = ipamFields(ipam, "ipam");
  const namespaces = f.list("ipv4-namespaces");
  if (namespaces?.some((n) => typeof n !== "string")) {
    throw invalidConfig("ipam.ipv4-namespaces must be a list of namespace names");
  }
  const socket = f.string("daemonSocket") ?? "/run/hydra/daemon.sock";
  return {
    nodeName: (f.string("nodeName") || Deno.hostname()).toLowerCase(),
    annotation: f.string("annotation") || undefined,
    ipv4Namespaces: namespaces as string[] | undefined,
    dataDir: f.string("dataDir") || DEFAULT_DATA_DIR,
    kubeconfig: f.string("kubeconfig") || undefined,
    daemonSocket: socket || undefined,
    ttlMs: seconds(ipam, "nodeCacheTTL", 30),
    apiTimeoutMs: seconds(ipam, "apiTimeout", 5) || 5_000,
  };
}

function cachePath(c: KubeNodeConfig): string {
  return `${c.dataDir.replace(/\/+$/, "")}/.kube-node/${c.nodeName}.json`;
}

async function readCached(c: KubeNodeConfig): Promise<NodeRanges | undefined> {
  try {
    const doc = JSON.parse(await Deno.readTextFile(cachePath(c))) as NodeRanges;
    if (doc?.name === c.nodeName && Array.isArray(doc.podCIDRs) && typeof doc.at === "number") {
      return doc;
    }
  } catch {
    // missing or unreadable: read the Node again
  }
  return undefined;
}

/** Reads the Node (daemon first, then the API server); throws CNI 11 when neither answers. */
async function fetchNode(c: KubeNodeConfig): Promise<NodeRanges> {
  const { getNode } = await import("../kube/objects.ts");
  const { isNotFound, kubeCniError } = await import("../kube/errors.ts");
  let node;
  const what = `get node ${c.nodeName}`;
  try {
    if (c.daemonSocket) {
      const { connectNodeDaemon, daemonKubeClient } = await import("../daemonclient/client.ts");
      const conn = await connectNodeDaemon(c.daemonSocket).catch(() => undefined);
      if (conn) {
        try {
          node = await getNode(daemonKubeClient(conn, c.apiTimeoutMs), c.nodeName);
        } finally {
          conn.close();
        }
      }
    }
    if (!node) {
      const { resolveConnection } = await import("../kube/kubeconfig.ts");
      const { createKubeClient } = await import("../kube/client.ts");
      const conn = await resolveConnection(c.kubeconfig).catch((err) => {
        throw new CniError(ErrorCode.InvalidNetworkConfig, `kube-node: ${(err as Error).message}`);
      });
      if (!conn) {
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          "kube-node: no node daemon answers and neither ipam.kubeconfig nor an in-cluster " +
            "account is available to read the Node",
        );
      }
      const client = createKubeClient(conn, {
        timeoutMs: c.apiTimeoutMs,
        userAgent: "hydra-kube-node",
      });
      try {
        node = await getNode(client, c.nodeName);
      } finally {
        client.close();
      }
    }
  } catch (err) {
    if (isNotFound(err)) {
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `kube-node: there is no Node named "${c.nodeName}" (set ipam.nodeName)`,
      );
    }
    throw kubeCniError(err, `kube-node: ${what}`);
  }
  const spec = node.spec ?? {};
  return {
    name: c.nodeName,
    podCIDRs: spec.podCIDRs ?? (spec.podCIDR ? [spec.podCIDR] : []),
    annotations: node.metadata.annotations ?? {},
    at: Date.now(),
  };
}

/**
 * The Node's ranges: the file cache while fresh (unless `refresh`), else a
 * read (a stale copy if the API is away).
 */
export async function nodeRanges(c: KubeNodeConfig, refresh = false): Promise<NodeRanges> {
  const cached = await readCached(c);
  if (cached && !refresh && Date.now() - cached.at < c.ttlMs) return cached;
  let fresh: NodeRanges;
  try {
    fresh = await fetchNode(c);
  } catch (err) {
    if (cached && err instanceof CniError && err.code === ErrorCode.TryAgainLater) return cached;
    throw err;
  }
  const path = cachePath(c);
  try {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, JSON.stringify(fresh), 0o600);
  } catch {
    // Only a cache: the next ADD reads the Node again.
  }
  return fresh;
}

/** The CIDRs this network allocates from on this node. */
export function rangesOf(node: NodeRanges, c: Pick<KubeNodeConfig, "annotation">): string[] {
  let cidrs: string[];
  if (c.annotation) {
    const value = node.annotations[c.annotation];
    if (value === undefined || value.trim() === "") {
      throw invalidConfig(
        `kube-node: Node "${node.name}" has no annotation "${c.annotation}" with this network's CIDRs`,
      );
    }
    cidrs = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  } else {
    cidrs = node.podCIDRs;
    if (cidrs.length === 0) {
      throw invalidConfig(
        `kube-node: Node "${node.name}" has no spec.podCIDRs (are node CIDRs allocated?)`,
      );
    }
  }
  for (const cidr of cidrs) {
    if (!cidrFamily(cidr)) {
      const where = c.annotation ? `annotation "${c.annotation}"` : "spec.podCIDRs";
      throw invalidConfig(`kube-node: Node "${node.name}" ${where}: "${cidr}" is not a CIDR`);
    }
  }
  return cidrs;
}

function podNamespace(cniArgs: string): string | undefined {
  return /(?:^|;)K8S_POD_NAMESPACE=([^;]*)/.exec(cniArgs)?.[1] || undefined;
}

/** The invocation with `ipam` rewritten as hydra-ipam's config over the node's ranges. */
async function asHostLocal(args: CmdArgs): Promise<CmdArgs> {
  const c = readConfig(args);
  const asked = Date.now();
  let node = await nodeRanges(c);
  let cidrs: string[];
  try {
    cidrs = rangesOf(node, c);
  } catch (err) {
    // A cached copy may predate the annotation or the CIDRs: read the Node before failing.
    if (node.at >= asked) throw err;
    node = await nodeRanges(c, true);
    cidrs = rangesOf(node, c);
  }
  const ns = podNamespace(args.args);
  if (c.ipv4Namespaces && !(ns && c.ipv4Namespaces.includes(ns))) {
    cidrs = cidrs.filter((cidr) => cidrFamily(cidr) !== 4);
    if (cidrs.length === 0) {
      throw invalidConfig(
        `kube-node: only pods in ${
          c.ipv4Namespaces.join(", ")
        } get IPv4 and this node has no IPv6 range`,
      );
    }
  }
  const ipam: Record<string, unknown> & { type: string } = {
    ...(args.config.ipam as Record<string, unknown>),
    type: "hydra-ipam",
  };
  for (
    const k of [
      "annotation",
      "ipv4-namespaces",
      "kubeconfig",
      "nodeName",
      "daemonSocket",
      "nodeCacheTTL",
      "apiTimeout",
    ]
  ) delete ipam[k];
  ipam.dataDir = c.dataDir;
  ipam.ranges = cidrs.map((subnet) => [{ subnet }]);
  return { ...args, config: { ...args.config, ipam } };
}

async function add(args: CmdArgs): Promise<AnyResult> {
  return await hostLocal.add(await asHostLocal(args));
}

async function check(args: CmdArgs): Promise<void> {
  await hostLocal.check(await asHostLocal(args));
}

/** The kube-node IPAM plugin (invoked as `kube-node`). */
export const plugin: Plugin = {
  kind: "kube-node",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  check,
  // The store alone says what to release or collect; no Node needed.
  del: (args) => hostLocal.del(args),
  // Ready when the Node can be read and the store written.
  status: async (args) => await hostLocal.status?.(await asHostLocal(args)),
  gc: (args) => hostLocal.gc ? hostLocal.gc(args) : Promise.resolve(),
};
