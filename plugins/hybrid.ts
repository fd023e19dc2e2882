/**
 * hydra-hybrid: attaches a pod to a hybrid network (docs/hybrid.md) — an
 * overlay or an underlay subnet, chosen per pod — by running the bridge
 * delegate the network's model gives for it.
 *
 * ```json
 * {
 *   "cniVersion": "1.0.0", "name": "hy", "type": "hydra-hybrid",
 *   "network": "hy",               // the Network object (hydra.clusternet.io)
 *   "kind": "underlay",            // optional: what this attachment asks for
 *   "kubeconfig": "/etc/cni/net.d/hydra.d/hydra.kubeconfig",
 *   "nodeName": "worker-1", "dataDir": "/var/lib/cni/networks",
 *   "defaultRoute": false, "extraRoutes": ["203.0.113.0/24"], "apiTimeout": 5
 * }
 * ```
 *
 * - **ADD** reads the Network and its accepted Subnets, this node's Node
 *   (its blocks and fabric address) and the pod (CNI_ARGS `K8S_POD_NAMESPACE`
 *   / `K8S_POD_NAME`) from the API server (`kubeconfig`, else the
 *   in-cluster account). The pod's annotation
 *   `hybrid.hydra.clusternet.io/kind` wins, then `kind`, then the
 *   network's `defaultKind`. The delegate (hydra-bridge with hydra-ipam
 *   over the node's block, or hydra-pool for a `pool: true` subnet) is
 *   written to `<dataDir>/.hydra-hybrid/<container>-<ifname>.json` before it
 *   runs, so DEL and CHECK need no API server and undo exactly what ADD did.
 *   On a pool-backed overlay subnet the node's gateway address comes from
 *   hydra-pool first (the node's, kept across pods: DEL leaves it), and the
 *   overlay bridge answers ARP for the subnet's other nodes (proxy ARP).
 * - **DEL** runs the recorded delegate's DEL and removes the record; with no
 *   record there is nothing to undo.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { invokePlugin } from "../cni/invoke.ts";
import { parseCniArgs } from "../cni/args.ts";
import type { AnyResult, CmdArgs, NetConf, Plugin } from "../cni/types.ts";
import { SUPPORTED_VERSIONS } from "../cni/types.ts";
import { writeFileAtomic } from "../pkg/fsutil.ts";
import { enforcePluginShape } from "./netconf.ts";
import { HYBRID_SHAPE } from "./schemas.ts";
import { fields } from "../pkg/fields.ts";
import {
  hybridDelegate,
  PlacementError,
  placePod,
  type PodPlacement,
} from "../hybridnet/attach.ts";
import {
  enableProxyArp,
  GATEWAY_IFNAME,
  gatewayConf,
  gatewaySandbox,
} from "../hybridnet/gateway.ts";
import type { HybridNetwork, HybridSubnet } from "../hybridnet/model.ts";
import type { KubeClient } from "../kube/client.ts";
import type { AddressBlock } from "../ipam/pool/objects.ts";
import { type HybridNode, hybridNode, type HybridProblem } from "../hybridnet/node.ts";

/** hydra-hybrid's settings. */
interface HybridConf {
  network: string;
  kind?: string;
  kubeconfig?: string;
  nodeName: string;
  dataDir: string;
  defaultRoute: boolean;
  extraRoutes: string[];
  apiTimeoutMs: number;
}

const DEFAULT_DATA_DIR = "/var/lib/cni/networks";
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, `hydra-hybrid: ${msg}`);
}

function readConf(args: CmdArgs): HybridConf {
  enforcePluginShape(args, HYBRID_SHAPE);
  const f = fields(args.config as Record<string, unknown>, {
    fail: (p) => invalid(`${p.path} must be ${p.expected}`),
    emptyStringUnset: true,
  });
  const network = f.string("network");
  if (!network || !NAME.test(network)) throw invalid("network must name a hybrid Network");
  const extra = f.strings("extraRoutes") ?? [];
  const timeout = f.number("apiTimeout") ?? 5;
  if (!(timeout > 0)) throw invalid("apiTimeout must be a positive number of seconds");
  return {
    network,
    kind: f.string("kind") || undefined,
    kubeconfig: f.string("kubeconfig") || undefined,
    nodeName: (f.string("nodeName") || Deno.hostname()).toLowerCase(),
    dataDir: f.string("dataDir") || DEFAULT_DATA_DIR,
    defaultRoute: f.boolean("defaultRoute") ?? false,
    extraRoutes: extra,
    apiTimeoutMs: timeout * 1000,
  };
}

/** Where ADD records the delegate it ran for this attachment. */
function recordPath(c: Pick<HybridConf, "dataDir">, args: CmdArgs): string {
  // The skel validated both (no "/"); checked again because the path is built from them.
  if (/[/\0]|^\.\.?$/.test(args.containerId) || /[/\0]/.test(args.ifName)) {
    throw invalid("container ID or interface name not usable in a file name");
  }
  return `${c.dataDir.replace(/\/+$/, "")}/.hydra-hybrid/${args.containerId}-${args.ifName}.json`;
}

/** What ADD needs from the API server: the network, this node, the pod's annotations. */
interface Facts {
  net: HybridNetwork;
  node: HybridNode & { address: string };
  annotations: Record<string, string>;
}

/** A client of the API server, from the attachment's kubeconfig or the in-cluster account. */
async function connect(c: HybridConf): Promise<KubeClient> {
  const { resolveConnection } = await import("../kube/kubeconfig.ts");
  const { createKubeClient } = await import("../kube/client.ts");
  const conn = await resolveConnection(c.kubeconfig).catch((err) => {
    throw invalid((err as Error).message);
  });
  if (!conn) throw invalid("neither kubeconfig nor an in-cluster account to read the network");
  return createKubeClient(conn, { timeoutMs: c.apiTimeoutMs, userAgent: "hydra-hybrid" });
}

async function readFacts(c: HybridConf, args: CmdArgs): Promise<Facts> {
  const { getNode, getPod } = await import("../kube/objects.ts");
  const { kubeCniError } = await import("../kube/errors.ts");
  const { networksFromApi } = await import("../hybridnet/api.ts");
  const client = await connect(c);
  try {
    const pod = Object.fromEntries(parseCniArgs(args.args));
    const [nets, node, podObj] = await Promise.all([
      networksFromApi(client),
      getNode(client, c.nodeName),
      pod.K8S_POD_NAME && pod.K8S_POD_NAMESPACE
        ? getPod(client, pod.K8S_POD_NAMESPACE, pod.K8S_POD_NAME)
        : undefined,
    ]).catch((err) => {
      throw kubeCniError(err, "hydra-hybrid: reading the network, node and pod");
    });
    const net = nets.find((n) => n.name === c.network);
    if (!net) {
      throw invalid(
        `there is no hybrid network "${c.network}" (or none of its subnets is accepted)`,
      );
    }
    const problems: HybridProblem[] = [];
    const facts = hybridNode(
      {
        name: c.nodeName,
        internalIPs: (node.status?.addresses ?? []).filter((a) => a.type === "InternalIP")
          .map((a) => a.address),
        annotations: node.metadata.annotations ?? {},
      },
      net,
      problems,
    );
    if (!facts.address) throw invalid(problems.map((p) => p.message).join("; "));
    return {
      net,
      node: { ...facts, address: facts.address },
      annotations: podObj?.metadata.annotations ?? {},
    };
  } finally {
    client.close();
  }
}

/** Where the pod goes, as the network's model places it. */
function placementFor(c: HybridConf, f: Facts): PodPlacement {
  try {
    return placePod(f.net, f.node, f.annotations, c.kind);
  } catch (err) {
    if (err instanceof PlacementError) throw invalid(err.message);
    throw err;
  }
}

/** hydra-pool's keys for this node. */
function poolOptions(c: HybridConf): Record<string, unknown> {
  return { nodeName: c.nodeName, ...(c.kubeconfig ? { kubeconfig: c.kubeconfig } : {}) };
}

/**
 * The node's gateway address on a pool-backed overlay subnet: allocated
 * from the pool for the node on its first pod there, the same address on
 * every later ADD (see hybridnet/gateway.ts).
 */
async function nodeGateway(c: HybridConf, args: CmdArgs, f: Facts, place: PodPlacement) {
  const call = {
    command: "ADD" as const,
    type: "hydra-pool",
    config: gatewayConf(f.net, place.subnet, poolOptions(c)) as Record<string, unknown>,
    containerId: gatewaySandbox(c.nodeName),
    netns: args.netns,
    ifName: GATEWAY_IFNAME,
    args: "",
    path: args.path,
    builtins: args.builtins,
    signal: args.signal,
  };
  const result = await invokePlugin(call);
  const ip = (result as { ips?: { address: string }[] } | undefined)?.ips?.[0]?.address;
  if (!ip) throw new CniError(ErrorCode.Internal, "hydra-pool gave the node no gateway address");
  const gateway = ip.split("/")[0];
  try {
    await checkOwnBlock(c, place.subnet, gateway);
  } catch (err) {
    // Not kept: a later ADD tries again, once a block may be free.
    await invokePlugin({ ...call, command: "DEL", signal: undefined }).catch(() => undefined);
    throw err;
  }
  return gateway;
}

/**
 * Refuses an overlay pool address outside this node's blocks: hydra-pool
 * lends another node's block only once none is left to claim, and the
 * overlay routes that block to the other node, never to this one.
 */
async function checkOwnBlock(c: HybridConf, subnet: HybridSubnet, ip: string): Promise<void> {
  const { blockOf, blockPath, networkKey } = await import("../ipam/pool/objects.ts");
  const { parseIpAddr } = await import("../ipaddr/ip.ts");
  const { kubeCniError } = await import("../kube/errors.ts");
  const addr = parseIpAddr(ip);
  if (!addr) throw new CniError(ErrorCode.Internal, `hydra-pool gave no usable address (${ip})`);
  const client = await connect(c);
  try {
    const { name } = blockOf(networkKey(subnet.name), addr);
    const block = await client.get<AddressBlock>(blockPath(name)).catch((err) => {
      throw kubeCniError(err, "hydra-hybrid: reading the address's block");
    });
    if (block.spec.node === c.nodeName) return;
    throw new CniError(
      ErrorCode.TryAgainLater,
      `hydra-hybrid: subnet ${subnet.name} has no /28 block left for node ${c.nodeName} ` +
        `(${ip} is in node ${block.spec.node || "(none)"}'s block ${block.spec.cidr}, which the ` +
        `overlay carries there); widen the subnet or free addresses`,
    );
  } finally {
    client.close();
  }
}

/** The delegate conf for this pod, as the network's model gives it. */
function delegateFor(
  c: HybridConf,
  args: CmdArgs,
  f: Facts,
  place: PodPlacement,
  gateway?: string,
): NetConf {
  const conf = hybridDelegate(f.net, place, f.node.address, {
    plugins: "hydra",
    dataDir: c.dataDir,
    defaultRoute: c.defaultRoute,
    extraRoutes: c.extraRoutes,
    poolOptions: poolOptions(c),
    nodeGateway: gateway,
  });
  // The delegate speaks the runtime's version under the network's name: every NAD of the
  // network on this node then shares one address store over the node's blocks.
  return { ...conf, cniVersion: args.config.cniVersion };
}

function invoke(args: CmdArgs, conf: NetConf, command: "ADD" | "DEL" | "CHECK") {
  return invokePlugin({
    command,
    type: conf.type,
    config: conf as Record<string, unknown>,
    containerId: args.containerId,
    netns: args.netns,
    ifName: args.ifName,
    args: args.args,
    path: args.path,
    builtins: args.builtins,
    signal: command === "DEL" ? undefined : args.signal,
  });
}

async function readRecord(path: string): Promise<NetConf | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as NetConf;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    // A truncated record (crash while writing cannot leave one: the write is atomic) or a
    // hand-edited one: refuse rather than guess what to undo.
    throw new CniError(ErrorCode.Internal, `hydra-hybrid: unreadable record ${path}: ${err}`);
  }
}

async function add(args: CmdArgs): Promise<AnyResult> {
  const c = readConf(args);
  const path = recordPath(c, args);
  const facts = await readFacts(c, args);
  const place = placementFor(c, facts);
  const overlayPool = place.subnet.kind === "overlay" && place.subnet.pool;
  const gateway = overlayPool ? await nodeGateway(c, args, facts, place) : undefined;
  const conf = delegateFor(c, args, facts, place, gateway);
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
  // Recorded first: a crash during the delegate's ADD leaves what DEL needs to undo it.
  await writeFileAtomic(path, JSON.stringify(conf), 0o600);
  try {
    const result = await invoke(args, conf, "ADD");
    if (!result) throw new CniError(ErrorCode.Internal, `${conf.type} returned no result`);
    // Pods of a pool subnet see the whole subnet on their link; the node answers for the rest.
    if (overlayPool) {
      const ip = (result as { ips?: { address: string }[] }).ips?.[0]?.address ?? "";
      await checkOwnBlock(c, place.subnet, ip.split("/")[0]);
      enableProxyArp(String(conf.bridge));
    }
    return result;
  } catch (err) {
    await invoke(args, conf, "DEL").catch(() => undefined);
    await Deno.remove(path).catch(() => undefined);
    throw err;
  }
}

async function del(args: CmdArgs): Promise<void> {
  const c = readConf(args);
  const path = recordPath(c, args);
  const conf = await readRecord(path);
  if (!conf) return;
  await invoke(args, conf, "DEL");
  await Deno.remove(path).catch((err) => {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  });
}

async function check(args: CmdArgs): Promise<void> {
  const c = readConf(args);
  const conf = await readRecord(recordPath(c, args));
  if (!conf) {
    throw new CniError(ErrorCode.Internal, "hydra-hybrid: no record of this attachment's ADD");
  }
  await invoke(args, { ...conf, prevResult: args.config.prevResult }, "CHECK");
}

/** The hydra-hybrid plugin. */
export const plugin: Plugin = {
  kind: "hydra-hybrid",
  supportedVersions: SUPPORTED_VERSIONS,
  add,
  del,
  check,
};
