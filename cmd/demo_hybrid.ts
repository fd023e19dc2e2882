/**
 * The demo's hybrid network: a simulated fabric (bridge `fab0` in the
 * underlay namespace, its gateway 192.168.50.1 routing to an "outside"
 * host 203.0.113.10), each node on it through its uplink bridge `br-fab`;
 * odd-numbered pods overlay (10.250.<node>.0/24, vxlan between nodes),
 * even-numbered pods underlay (the node's /28 of the fabric). The router
 * is the real `hydra hybrid sync --once` in every node's namespace.
 *
 * Every probe runs on its own, between readings of the nodes' vxlan
 * counters, so the path printed for a pair is the one its packets took.
 *
 * @module
 */

import type { NetConf } from "../cni/types.ts";
import {
  addAddr,
  addLink,
  addRoute,
  closeHandle,
  createNamedNetns,
  type Handle,
  namedNetnsPath,
  openHandle,
  setLinkMaster,
  setLinkUp,
  sysctlWrite,
} from "../netlink/mod.ts";
import { linkStats } from "../netlink/link_stats.ts";
import { outputInNetns } from "../netlink/netns_spawn.ts";
import { selfExecutable } from "../pkg/self.ts";
import { hybridDelegate, placePod } from "../hybridnet/attach.ts";
import { KIND_ANNOTATION, parseHybridNetwork, type SubnetKind } from "../hybridnet/model.ts";
import { addressAnnotation, blocksAnnotation, hybridNode } from "../hybridnet/node.ts";
import { probeAll } from "./icmp_probe.ts";
import type { DemoNode, DemoPod, DemoWorld } from "./demo_world.ts";

/** The outside host's address, beyond the fabric's gateway. */
export const OUTSIDE_IP = "203.0.113.10";
const OUTSIDE_NET = "203.0.113.0/24";

/** The demo's hybrid network, as `hydra hybrid sync` reads it. */
export const DEMO_HYBRID = {
  name: "hybrid",
  vni: 4300,
  uplink: "br-fab",
  protocol: 230,
  table: 230,
  mtu: 1450,
  defaultKind: "overlay",
  subnets: [
    { name: "hybrid-overlay", kind: "overlay", cidr: "10.250.0.0/16", blockSize: 24 },
    {
      name: "hybrid-fabric",
      kind: "underlay",
      cidr: "192.168.50.0/24",
      gateway: "192.168.50.1",
      start: "192.168.50.64",
      end: "192.168.50.191",
      blockSize: 28,
    },
  ],
};

/** The network parsed (what the router and the attachment use). */
export const hybridNet = parseHybridNetwork(DEMO_HYBRID);

/** A node's fabric address. */
export const fabricIp = (node: DemoNode) => `192.168.50.${10 + node.index}`;

/** A pod's kind: odd-numbered pods overlay, even-numbered underlay (its "annotation"). */
export function podKind(pod: DemoPod): SubnetKind {
  const n = Number(/pod(\d+)$/.exec(pod.name)?.[1] ?? 1);
  return n % 2 ? "overlay" : "underlay";
}

/** The node as the hybrid network sees it (as its Node object would say). */
function nodeInfo(node: DemoNode) {
  return {
    name: node.name,
    podCIDRs: [],
    internalIPs: [node.underlayIp],
    annotations: {
      [blocksAnnotation(hybridNet.name)]: `10.250.${node.index}.0/24,192.168.50.${
        64 + 16 * (node.index - 1)
      }/28`,
      [addressAnnotation(hybridNet.name)]: fabricIp(node),
    },
  };
}

/** The delegate attaching `pod` to the hybrid network (its kind from its annotation). */
export function hybridPodDelegate(
  pod: DemoPod,
  plugins: "hydra" | "reference",
  dataDir: string,
): NetConf {
  const node = hybridNode(nodeInfo(pod.node), hybridNet, []);
  const place = placePod(hybridNet, node, { [KIND_ANNOTATION]: podKind(pod) });
  return hybridDelegate(hybridNet, place, fabricIp(pod.node), {
    plugins,
    dataDir,
    defaultRoute: false,
    extraRoutes: [OUTSIDE_NET],
  });
}

function inNs<T>(path: string, fn: (h: Handle) => T): T {
  const h = openHandle({ netnsPath: path });
  try {
    return fn(h);
  } finally {
    closeHandle(h);
  }
}

/**
 * Adds the fabric, its gateway and the outside host to the world (in the
 * underlay namespace and one more, recorded in `world.extraNetns`).
 */
export function buildFabric(world: DemoWorld): void {
  const outside = `hydra-demo-${world.id}-out`;
  const outPath = createNamedNetns(outside);
  world.extraNetns.push(outside);
  world.outsideNetnsPath = outPath;
  const underlay = namedNetnsPath(world.underlayNetns);
  inNs(underlay, (h) => {
    addLink(h, { kind: "bridge", name: "fab0", up: true });
    addAddr(h, "fab0", "192.168.50.1/24");
    addLink(h, { kind: "veth", name: "out", up: true, peer: { name: "eth0", netns: outPath } });
    addAddr(h, "out", "203.0.113.1/24");
  });
  sysctlWrite(underlay, "net.ipv4.ip_forward", "1");
  inNs(outPath, (h) => {
    setLinkUp(h, "lo");
    addAddr(h, "eth0", `${OUTSIDE_IP}/24`);
    setLinkUp(h, "eth0");
    addRoute(h, { dst: "default", gateway: "203.0.113.1" });
  });
  for (const node of world.nodes) {
    inNs(underlay, (h) =>
      addLink(h, {
        kind: "veth",
        name: `f${node.index}`,
        master: "fab0",
        up: true,
        peer: { name: "fab", netns: node.netnsPath },
      }));
    inNs(node.netnsPath, (h) => {
      addLink(h, { kind: "bridge", name: "br-fab", up: true });
      addLink(h, { kind: "bridge", name: "hyo-hybrid", up: true, mtu: hybridNet.mtu });
      setLinkMaster(h, "fab", "br-fab");
      setLinkUp(h, "fab");
      addAddr(h, "br-fab", `${fabricIp(node)}/24`);
      addRoute(h, { dst: OUTSIDE_NET, gateway: "192.168.50.1" });
    });
  }
}

/** Writes the hybrid networks file and node list, runs `hydra hybrid sync --once` on every node. */
export async function syncDemoHybrid(world: DemoWorld, stateDir: string): Promise<number> {
  const dir = `${stateDir}/hybrid`;
  await Deno.mkdir(dir, { recursive: true });
  const config = `${dir}/networks.json`;
  const nodesFile = `${dir}/nodes.json`;
  await Deno.writeTextFile(config, JSON.stringify({ networks: [DEMO_HYBRID] }, null, 2) + "\n");
  const nodes = world.nodes.map((n) => {
    const info = nodeInfo(n);
    return {
      name: info.name,
      podCIDRs: [],
      addresses: info.internalIPs,
      annotations: info.annotations,
    };
  });
  await Deno.writeTextFile(nodesFile, JSON.stringify({ nodes }, null, 2) + "\n");
  let routes = 0;
  const failures: string[] = [];
  const runs = world.nodes.map((node) => ({
    node,
    out: outputInNetns(node.netnsPath, selfExecutable(), {
      args: [
        "hybrid",
        "sync",
        "--once",
        "--config",
        config,
        "--nodes-file",
        nodesFile,
        "--node-name",
        node.name,
        "--log-file",
        `${dir}/${node.name}.log`,
      ],
    }),
  }));
  for (const { node, out } of runs) {
    const res = await out;
    const text = new TextDecoder().decode(res.stdout).trim();
    if (!res.success) {
      failures.push(`${node.name}: ${new TextDecoder().decode(res.stderr).trim() || text}`);
      continue;
    }
    const summary = JSON.parse(text) as { networks: { routes: number }[] };
    routes += summary.networks.reduce((a, n) => a + n.routes, 0);
  }
  if (failures.length) {
    throw new Error(`hybrid sync failed (logs in ${dir}): ${failures.join("; ")}`);
  }
  return routes;
}

/** How a probe's packets went. */
export type HybridPath = "overlay" | "fabric" | "local" | "masqueraded";

/** One probe of the hybrid network. */
export interface HybridProbe {
  source: string;
  destination: string;
  address: string;
  reachable: boolean;
  /** The path, read from the nodes' vxlan counters around the probe; absent when unanswered. */
  path?: HybridPath;
  /** Whether the model wants an answer (the outside never reaches an overlay pod). */
  expected: boolean;
}

/** An end of a probe: a pod or the outside host. */
interface End {
  name: string;
  netnsPath: string;
  address: string;
  kind: SubnetKind | "outside";
  node?: DemoNode;
}

function vxlanTx(world: DemoWorld): number[] {
  return world.nodes.map((n) => inNs(n.netnsPath, (h) => linkStats(h, hybridNet.device).txPackets));
}

function pathOf(a: End, b: End, moved: boolean): HybridPath {
  if (moved) return "overlay";
  if (a.kind === "overlay" && b.kind === "outside") return "masqueraded";
  return a.node && a.node === b.node ? "local" : "fabric";
}

/** Probes every pair of the hybrid network one by one (pods and the outside host). */
export function measureHybrid(
  world: DemoWorld,
  podAddress: (p: DemoPod, ifName: string) => string | undefined,
  ifName: string,
): HybridProbe[] {
  const ends: End[] = world.nodes.flatMap((n) => n.pods).flatMap((p) => {
    const address = podAddress(p, ifName);
    return address
      ? [{ name: p.name, netnsPath: p.netnsPath, address, kind: podKind(p), node: p.node }]
      : [];
  });
  ends.push({
    name: "outside",
    netnsPath: world.outsideNetnsPath!,
    address: OUTSIDE_IP,
    kind: "outside",
  });
  const probes: HybridProbe[] = [];
  for (const a of ends) {
    for (const b of ends) {
      if (a === b) continue;
      const before = vxlanTx(world);
      const reachable = probeAll(a.netnsPath, [b.address], 1000).get(b.address) ?? false;
      const after = vxlanTx(world);
      const moved = after.some((v, i) => v > before[i]);
      probes.push({
        source: a.name,
        destination: b.name,
        address: b.address,
        reachable,
        ...(reachable ? { path: pathOf(a, b, moved) } : {}),
        expected: !(a.kind === "outside" && b.kind === "overlay"),
      });
    }
  }
  return probes;
}

/** The hybrid network's matrix as text: each cell the path, or why not. */
export function renderHybrid(probes: HybridProbe[], ifName: string): string {
  const names = [...new Set(probes.map((p) => p.source))];
  const addr = new Map(probes.map((p) => [p.destination, p.address]));
  const width =
    Math.max(...names.map((n) => n.length), ...[...addr.values()].map((a) => a.length), 11) + 2;
  const lines = [
    `network ${hybridNet.name} (${ifName}, hybrid: overlay 10.250.0.0/16 on odd pods, underlay ` +
    `192.168.50.0/24 on even pods; outside ${OUTSIDE_IP} beyond the fabric's gateway)`,
    "  " + "from \\ to".padEnd(width) + names.map((n) => n.padEnd(width)).join(""),
    "  " + "".padEnd(width) + names.map((n) => (addr.get(n) ?? "").padEnd(width)).join(""),
  ];
  for (const src of names) {
    const row = names.map((dst) => {
      if (dst === src) return "·".padEnd(width);
      const p = probes.find((c) => c.source === src && c.destination === dst);
      if (!p) return "n/a".padEnd(width);
      const text = p.reachable ? p.path! : p.expected ? "FAIL" : "blocked";
      return text.padEnd(width);
    });
    lines.push("  " + src.padEnd(width) + row.join(""));
  }
  lines.push(
    "  (overlay: through the vxlan device; fabric: on the physical network; local: inside the node;",
    "   masqueraded: overlay pod to the outside with its node's address; blocked: as designed)",
    "",
  );
  return lines.join("\n");
}
