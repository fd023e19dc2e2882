/**
 * Hybrid network benchmark: round-trip latency and TCP throughput between
 * pods for each path kind, beside a veth baseline, and the time the hybrid
 * router takes to sync a node of a 1,000-node cluster, beside hydra's vxlan
 * router on the same nodes. Prints one JSON document on stdout (progress
 * on stderr):
 *
 * ```json
 * {"paths": {"<kind>": {"rttUs": 0, "gbps": 0}}, "syncMs": 0, "resyncMs": 0,
 *  "vxlanRouterSyncMs": 0, "nodes": 1000, "probes": 20}
 * ```
 *
 * Usage: deno run -A bench/hybrid.ts [--probes 20] [--nodes 1000] [--mib 64]
 *
 * Paths (the world of tests/hybrid/world.ts: two nodes on a fabric, the
 * real `hydra hybrid sync` on each): `veth` (two namespaces joined by one
 * veth pair: the baseline), and overlay-overlay, overlay-underlay,
 * underlay-underlay, each `-same` (both pods on one node) and `-cross`
 * (on two nodes). `rttUs`: median of `--probes` UDP round trips, each a
 * new flow. `gbps`: `--mib` MiB through one TCP connection. Before the
 * figures count, every path's packets are checked to take the path its
 * name says (vxlan counters).
 *
 * `syncMs`: the first full pass of the hybrid router (plan and kernel)
 * for one node of `--nodes` nodes, each with an overlay and an underlay
 * block; `resyncMs` a second pass with nothing to change;
 * `vxlanRouterSyncMs` the first pass of `hydra route sync`'s engine for a
 * vxlan network of the same nodes (one block each), in a namespace of its
 * own.
 *
 * Needs root and libnftables.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { closeHandle, openHandle } from "../netlink/mod.ts";
import { linkStats } from "../netlink/link_stats.ts";
import { parseHybridNetwork } from "../hybridnet/model.ts";
import { syncHybrid } from "../hybrid/sync.ts";
import type { NodeInfo } from "../route/nodes.ts";
import { parseNetwork } from "../route/config.ts";
import { createRouter } from "../route/router.ts";
import { createRouterMetrics } from "../route/metrics.ts";
import { silentLogger } from "../pkg/log.ts";
import { udpRoundTrips } from "../tests/policy/probe.ts";
import { createNetns, deleteNetns, run, type TestNetns } from "../tests/helpers/netns.ts";
import {
  addPod,
  createHybridWorld,
  destroyHybridWorld,
  type HybridPod,
  type HybridWorld,
  syncNode,
  writeNodeList,
} from "../tests/hybrid/world.ts";
import { tcpGbps } from "./hybrid_lib.ts";
import { percentile } from "./stats.ts";

interface Options {
  probes: number;
  nodes: number;
  mib: number;
}

interface PathFigures {
  rttUs: number;
  gbps: number;
}

function log(msg: string): void {
  console.error(`[bench/hybrid] ${msg}`);
}

/** Waits (5 s at most) until `ip` answers from `from`: links up, neighbours resolved. */
function warm(from: TestNetns, to: TestNetns, ip: string): void {
  for (let i = 0;; i++) {
    try {
      udpRoundTrips(from.path, to.path, ip, 9, 1);
      return;
    } catch (err) {
      if (i >= 4) throw err;
    }
  }
}

function figures(from: TestNetns, to: TestNetns, ip: string, o: Options): PathFigures {
  warm(from, to, ip);
  const rtts = udpRoundTrips(from.path, to.path, ip, 9, o.probes).sort((a, b) => a - b);
  const gbps = tcpGbps(from.path, to.path, ip, 5201, o.mib * 1024 * 1024);
  return {
    rttUs: Math.round(percentile(rtts, 50) * 10) / 10,
    gbps: Math.round(gbps * 100) / 100,
  };
}

async function vethBaseline(o: Options): Promise<PathFigures> {
  const a = await createNetns("hybv");
  const b = await createNetns("hybv");
  try {
    await run(
      "ip",
      "-n",
      a.name,
      "link",
      "add",
      "eth0",
      "type",
      "veth",
      "peer",
      "eth0",
      "netns",
      b.name,
    );
    for (const [ns, ip] of [[a, "10.99.0.1"], [b, "10.99.0.2"]] as const) {
      await run("ip", "-n", ns.name, "addr", "add", `${ip}/24`, "dev", "eth0");
      await run("ip", "-n", ns.name, "link", "set", "eth0", "up");
    }
    return figures(a, b, "10.99.0.2", o);
  } finally {
    await deleteNetns(a);
    await deleteNetns(b);
  }
}

function vxlanTx(w: HybridWorld): number[] {
  return w.nodes.map((n) => {
    const h = openHandle({ netnsPath: n.ns.path });
    try {
      return linkStats(h, "hy-hy").txPackets;
    } finally {
      closeHandle(h);
    }
  });
}

/** Measures one pod pair after checking its packets take the path its kind names. */
function pathFigures(w: HybridWorld, a: HybridPod, b: HybridPod, o: Options): PathFigures {
  warm(a.ns, b.ns, b.ip);
  const before = vxlanTx(w);
  udpRoundTrips(a.ns.path, b.ns.path, b.ip, 9, 1);
  const moved = vxlanTx(w).some((v, i) => v > before[i]);
  const overlay = a.node !== b.node && (a.kind === "overlay" || b.kind === "overlay");
  if (moved !== overlay) {
    throw new Error(
      `${a.name} → ${b.name}: vxlan ${moved ? "used" : "not used"}, against the model`,
    );
  }
  return figures(a.ns, b.ns, b.ip, o);
}

async function podPaths(o: Options): Promise<Record<string, PathFigures>> {
  const w = await createHybridWorld(2);
  try {
    const [n1, n2] = w.nodes;
    await addPod(n1, "overlay", "10.250.1.11", "br-ov");
    await addPod(n1, "underlay", "192.168.50.67", "br-fab");
    await writeNodeList(w);
    for (const n of w.nodes) await syncNode(w, n);
    const [ov1, ul1, ov1b, ul1b] = n1.pods;
    const [ov2, ul2] = n2.pods;
    const pairs: [string, HybridPod, HybridPod][] = [
      ["overlay-overlay-same", ov1, ov1b],
      ["overlay-overlay-cross", ov1, ov2],
      ["overlay-underlay-same", ov1, ul1],
      ["overlay-underlay-cross", ov1, ul2],
      ["underlay-underlay-same", ul1, ul1b],
      ["underlay-underlay-cross", ul1, ul2],
    ];
    const out: Record<string, PathFigures> = {};
    for (const [kind, a, b] of pairs) {
      out[kind] = pathFigures(w, a, b, o);
      log(`${kind}: ${JSON.stringify(out[kind])}`);
    }
    return out;
  } finally {
    await destroyHybridWorld(w);
  }
}

/** The benchmark's cluster: node i at 172.17.x.y, blocks 10.(128+)…/24 and 172.18.…/28. */
function benchNodes(count: number): NodeInfo[] {
  return Array.from({ length: count }, (_, i) => {
    const address = `172.17.${(i + 1) >> 8}.${(i + 1) & 255}`;
    const overlay = `10.${128 + (i >> 8)}.${i & 255}.0/24`;
    const u = 16 * i;
    const underlay = `172.18.${u >> 8}.${u & 255}/28`;
    return {
      name: `node${i}`,
      podCIDRs: [],
      internalIPs: [address],
      annotations: {
        "hydra.clusternet.io/hy.cidr": `${overlay},${underlay}`,
        "hydra.clusternet.io/vx.cidr": overlay,
        "hydra.clusternet.io/vx.address": address,
      },
    };
  });
}

async function benchNodeNetns(address: string): Promise<TestNetns> {
  const ns = await createNetns("hybs");
  await run("ip", "-n", ns.name, "link", "add", "br-fab", "type", "bridge");
  await run("ip", "-n", ns.name, "addr", "add", `${address}/12`, "dev", "br-fab");
  await run("ip", "-n", ns.name, "link", "set", "br-fab", "up");
  return ns;
}

async function syncTimes(count: number): Promise<Record<string, number>> {
  const nodes = benchNodes(count);
  const net = parseHybridNetwork({
    name: "hy",
    vni: 7000,
    uplink: "br-fab",
    subnets: [
      { name: "ov", kind: "overlay", cidr: "10.128.0.0/9", blockSize: 24 },
      {
        name: "fab",
        kind: "underlay",
        cidr: "172.16.0.0/12",
        gateway: "172.16.0.1",
        blockSize: 28,
      },
    ],
  });
  const out: Record<string, number> = {};
  const ns = await benchNodeNetns(nodes[0].internalIPs[0]);
  try {
    const h = openHandle({ netnsPath: ns.path });
    try {
      const first = syncHybrid(h, [net], nodes, "node0", ns.path);
      if (!first.ok) {
        throw new Error(`hybrid sync failed: ${JSON.stringify(first.networks[0].errors)}`);
      }
      if (first.networks[0].routes !== 3 * (count - 1)) {
        throw new Error("hybrid sync: routes missing");
      }
      out.syncMs = first.ms;
      out.resyncMs = syncHybrid(h, [net], nodes, "node0", ns.path).ms;
    } finally {
      closeHandle(h);
    }
  } finally {
    await deleteNetns(ns);
  }
  const peer = await benchNodeNetns(nodes[0].internalIPs[0]);
  try {
    const h = openHandle({ netnsPath: peer.path });
    const router = createRouter({
      handle: h,
      networks: [parseNetwork({
        name: "vx",
        mode: "vxlan",
        protocol: 240,
        allowedCIDRs: ["10.128.0.0/9"],
        vxlan: { device: "vx-bench", vni: 5000, underlayDevice: "br-fab" },
      }, 0)],
      nodeName: "node0",
      logger: silentLogger,
      metrics: createRouterMetrics(),
      resyncIntervalMs: 0,
      addressCheckMs: 0,
    });
    try {
      router.replaceNodes(nodes);
      router.markSourceSynced();
      const s = router.syncNow(true);
      if (!s.ok || s.routes !== count - 1) throw new Error(`vxlan router: ${JSON.stringify(s)}`);
      out.vxlanRouterSyncMs = Math.round(s.durationMs * 10) / 10;
    } finally {
      router.stop();
      closeHandle(h);
    }
  } finally {
    await deleteNetns(peer);
  }
  return out;
}

function options(): Options {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      probes: { type: "string", default: "20" },
      nodes: { type: "string", default: "1000" },
      mib: { type: "string", default: "64" },
    },
  });
  const o = { probes: Number(values.probes), nodes: Number(values.nodes), mib: Number(values.mib) };
  if (!(o.probes >= 1 && o.nodes >= 2 && o.nodes <= 4000 && o.mib >= 1)) {
    console.error("usage: bench/hybrid.ts [--probes N>=1] [--nodes 2..4000] [--mib N>=1]");
    Deno.exit(2);
  }
  return o;
}

if (import.meta.main) {
  const o = options();
  log("veth baseline");
  const paths: Record<string, PathFigures> = { veth: await vethBaseline(o) };
  log(`veth: ${JSON.stringify(paths.veth)}`);
  Object.assign(paths, await podPaths(o));
  log(`router sync for ${o.nodes} nodes`);
  const sync = await syncTimes(o.nodes);
  console.log(JSON.stringify({ paths, ...sync, nodes: o.nodes, probes: o.probes }));
}
