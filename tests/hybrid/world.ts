/**
 * A hybrid network's world in namespaces: a fabric namespace playing the
 * physical switch (bridge `sw`) and its gateway (192.168.50.1, forwarding
 * to an "outside" host at 203.0.113.10 in a namespace of its own), and node
 * namespaces whose uplink bridge `br-fab` holds their fabric address and
 * their `eth0` port on the switch. Each node has one overlay pod (on
 * `br-ov`, block 10.250.<n>.0/24) and one underlay pod (on `br-fab`, block
 * 192.168.50.<64+16(n-1)>/28, the fabric's gateway as default route and
 * the overlay through its node). The router runs as the real
 * `hydra hybrid sync --once` inside each node's namespace.
 *
 * With `underlay: "macvlan"` a node has no uplink bridge: its `eth0` holds
 * the fabric address and is the uplink, and each underlay pod is a macvlan
 * device (bridge mode) of it; the router keeps the node's shim.
 *
 * Every name is unique; {@link destroyHybridWorld} removes everything,
 * also after a failure.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { probeAll } from "../../cmd/icmp_probe.ts";
import type { NodeInfo } from "../../route/nodes.ts";
import { createNetns, deleteNetns, run, type TestNetns, uniqueName } from "../helpers/netns.ts";

/** The hydra launcher of this tree. */
export const hydraBin = fileURLToPath(new URL("../../bin/hydra", import.meta.url));

/** The hybrid network of the world. */
export const HYBRID_YAML = `networks:
  - name: hy
    vni: 7000
    uplink: br-fab
    device: hy-hy
    protocol: 210
    table: 210
    mtu: 1450
    defaultKind: overlay
    subnets:
      - { name: ov, kind: overlay, cidr: 10.250.0.0/16, blockSize: 24 }
      - { name: fab, kind: underlay, cidr: 192.168.50.0/24, gateway: 192.168.50.1,
          start: 192.168.50.64, end: 192.168.50.191, blockSize: 28 }
`;

/** The world's network with macvlan underlay pods on each node's `eth0`. */
export const HYBRID_MACVLAN_YAML = HYBRID_YAML.replace("uplink: br-fab", "uplink: eth0")
  .replace("defaultKind: overlay", "defaultKind: overlay\n    underlayAttachment: macvlan");

/** How the world's underlay pods are attached. */
export type UnderlayMode = "bridge" | "macvlan";

/** The outside host's address (beyond the fabric's gateway). */
export const OUTSIDE_IP = "203.0.113.10";

/** A pod of the world. */
export interface HybridPod {
  name: string;
  kind: "overlay" | "underlay";
  node: HybridNode;
  ns: TestNetns;
  ip: string;
}

/** A node of the world. */
export interface HybridNode {
  index: number;
  name: string;
  ns: TestNetns;
  address: string;
  overlayBlock: string;
  underlayBlock: string;
  pods: HybridPod[];
}

/** The world. */
export interface HybridWorld {
  id: string;
  underlay: UnderlayMode;
  dir: string;
  fabric: TestNetns;
  outside: TestNetns;
  nodes: HybridNode[];
  config: string;
  nodesFile: string;
}

/** Builds a world with nodes 1..count. */
export async function createHybridWorld(
  count: number,
  underlay: UnderlayMode = "bridge",
): Promise<HybridWorld> {
  const w: Partial<HybridWorld> & { nodes: HybridNode[] } = {
    id: uniqueName("h"),
    underlay,
    nodes: [],
  };
  try {
    w.dir = await Deno.makeTempDir({ prefix: "hydra-hybrid-" });
    w.fabric = await createNetns("hyfb");
    w.outside = await createNetns("hyfo");
    const f = (...a: string[]) => run("ip", "-n", w.fabric!.name, ...a);
    await f("link", "add", "sw", "type", "bridge");
    await f("addr", "add", "192.168.50.1/24", "dev", "sw");
    await f("link", "set", "sw", "up");
    await f("link", "add", "out", "type", "veth", "peer", "eth0", "netns", w.outside.name);
    await f("addr", "add", "203.0.113.1/24", "dev", "out");
    await f("link", "set", "out", "up");
    await w.fabric.exec("sysctl", "-qw", "net.ipv4.ip_forward=1");
    const o = (...a: string[]) => run("ip", "-n", w.outside!.name, ...a);
    await o("addr", "add", `${OUTSIDE_IP}/24`, "dev", "eth0");
    await o("link", "set", "eth0", "up");
    await o("route", "add", "default", "via", "203.0.113.1");
    w.config = `${w.dir}/hybrid.yaml`;
    w.nodesFile = `${w.dir}/nodes.json`;
    await Deno.writeTextFile(w.config, underlay === "macvlan" ? HYBRID_MACVLAN_YAML : HYBRID_YAML);
    const world = w as HybridWorld;
    for (let n = 1; n <= count; n++) await addHybridNode(world, n);
    return world;
  } catch (err) {
    await destroyHybridWorld(w);
    throw err;
  }
}

/** Adds node `n` with its two pods (not yet in the node list: see {@link writeNodeList}). */
export async function addHybridNode(w: HybridWorld, n: number): Promise<HybridNode> {
  const ns = await createNetns("hyfn");
  const node: HybridNode = {
    index: n,
    name: `node${n}`,
    ns,
    address: `192.168.50.${10 + n}`,
    overlayBlock: `10.250.${n}.0/24`,
    underlayBlock: `192.168.50.${64 + 16 * (n - 1)}/28`,
    pods: [],
  };
  w.nodes.push(node);
  const ipn = (...a: string[]) => run("ip", "-n", ns.name, ...a);
  const port = `p${n}${w.id}`.slice(0, 15);
  await run(
    "ip",
    "-n",
    w.fabric.name,
    "link",
    "add",
    port,
    "type",
    "veth",
    "peer",
    "eth0",
    "netns",
    ns.name,
  );
  await run("ip", "-n", w.fabric.name, "link", "set", port, "master", "sw", "up");
  const uplink = w.underlay === "macvlan" ? "eth0" : "br-fab";
  if (uplink === "br-fab") {
    await ipn("link", "add", "br-fab", "type", "bridge");
    await ipn("link", "set", "eth0", "master", "br-fab");
  }
  await ipn("link", "set", "eth0", "up");
  await ipn("addr", "add", `${node.address}/24`, "dev", uplink);
  await ipn("link", "set", uplink, "up");
  await ipn("route", "add", "default", "via", "192.168.50.1");
  await ipn("link", "add", "br-ov", "mtu", "1450", "type", "bridge");
  await ipn("addr", "add", `10.250.${n}.1/24`, "dev", "br-ov");
  await ipn("link", "set", "br-ov", "up");
  await ns.exec("sysctl", "-qw", "net.ipv4.ip_forward=1");
  await addPod(node, "overlay", `10.250.${n}.10`, "br-ov");
  await addPod(node, "underlay", `192.168.50.${64 + 16 * (n - 1) + 2}`, uplink, w.underlay);
  return node;
}

/**
 * Adds a pod of `kind` with address `ip` on `bridge` of `node` (the world's
 * routes for its kind); with `attach` "macvlan", a macvlan device of
 * `bridge` (then the node's NIC) in bridge mode.
 */
export async function addPod(
  node: HybridNode,
  kind: HybridPod["kind"],
  ip: string,
  bridge: string,
  attach: UnderlayMode = "bridge",
): Promise<HybridPod> {
  const ns = await createNetns("hyfp");
  const pod: HybridPod = {
    name: `${kind === "overlay" ? "ov" : "ul"}${node.index}${
      node.pods.some((p) => p.kind === kind) ? "b" : ""
    }`,
    kind,
    node,
    ns,
    ip,
  };
  node.pods.push(pod); // removed with the node even when wiring fails below
  const host = `v-${kind}${node.pods.length}`; // this pod is already listed
  const ipn = (...a: string[]) => run("ip", "-n", node.ns.name, ...a);
  if (attach === "macvlan") {
    await ipn("link", "add", host, "link", bridge, "type", "macvlan", "mode", "bridge");
    await ipn("link", "set", host, "netns", ns.name);
    await run("ip", "-n", ns.name, "link", "set", host, "name", "eth0");
  } else {
    const mtu = kind === "overlay" ? "1450" : "1500";
    await ipn("link", "add", host, "mtu", mtu, "type", "veth", "peer", "eth0", "netns", ns.name);
    await ipn("link", "set", host, "master", bridge, "up");
  }
  const ipp = (...a: string[]) => run("ip", "-n", ns.name, ...a);
  if (kind === "overlay") {
    await ipp("addr", "add", `${ip}/24`, "dev", "eth0");
    await ipp("link", "set", "eth0", "up");
    await ipp("route", "add", "default", "via", `10.250.${node.index}.1`);
  } else {
    await ipp("addr", "add", `${ip}/24`, "dev", "eth0");
    await ipp("link", "set", "eth0", "up");
    await ipp("route", "add", "default", "via", "192.168.50.1");
    // The overlay is reached through the pod's own node, never the fabric's gateway.
    await ipp("route", "add", "10.250.0.0/16", "via", node.address);
  }
  return pod;
}

/** The world's nodes as the router reads them (fabric address, both blocks). */
export function nodeInfos(w: HybridWorld, names?: string[]): NodeInfo[] {
  return w.nodes.filter((n) => !names || names.includes(n.name)).map((n) => ({
    name: n.name,
    podCIDRs: [],
    internalIPs: [n.address],
    annotations: { "hydra.clusternet.io/hy.cidr": `${n.overlayBlock},${n.underlayBlock}` },
  }));
}

/** Writes the node list with `names` (default: every node of the world), atomically. */
export async function writeNodeList(w: HybridWorld, names?: string[]): Promise<void> {
  const nodes = nodeInfos(w, names).map(({ internalIPs, ...n }) => ({
    ...n,
    addresses: internalIPs,
  }));
  await Deno.writeTextFile(`${w.nodesFile}.tmp`, JSON.stringify({ nodes }));
  await Deno.rename(`${w.nodesFile}.tmp`, w.nodesFile);
}

/** What `hydra hybrid sync --once` printed. */
export interface SyncSummary {
  ok: boolean;
  networks: { network: string; errors: string[] }[];
  shimsRemoved: string[];
}

/** Runs `hydra hybrid sync --once` on `node`; returns its JSON summary (also when it failed). */
export async function syncNode(w: HybridWorld, node: HybridNode): Promise<SyncSummary> {
  const out = await new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      node.ns.name,
      hydraBin,
      "hybrid",
      "sync",
      "--once",
      "--config",
      w.config,
      "--nodes-file",
      w.nodesFile,
      "--node-name",
      node.name,
      "--log-file",
      `${w.dir}/${node.name}.log`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  try {
    return JSON.parse(text);
  } catch {
    const err = new TextDecoder().decode(out.stderr);
    throw new Error(`hydra hybrid sync on ${node.name} failed (${out.code}): ${err}${text}`);
  }
}

/** Whether `from` gets an answer to one ping to `ip`. */
export function pings(from: TestNetns, ip: string): Promise<boolean> {
  // One retry: the first echo may wait for neighbour resolution on a busy machine.
  for (let i = 0; i < 2; i++) {
    if (probeAll(from.path, [ip], 1000).get(ip)) return Promise.resolve(true);
  }
  return Promise.resolve(false);
}

/** Packets a device of a namespace has sent. */
export async function txPackets(ns: TestNetns, dev: string): Promise<number> {
  const [link] = await ns.ipJson<{ stats64: { tx: { packets: number } } }[]>(
    "-s",
    "link",
    "show",
    "dev",
    dev,
  );
  return link.stats64.tx.packets;
}

/** Removes every namespace and file of the world. */
export async function destroyHybridWorld(w: Partial<HybridWorld>): Promise<void> {
  for (const node of w.nodes ?? []) {
    for (const pod of node.pods) await deleteNetns(pod.ns);
    await deleteNetns(node.ns);
  }
  if (w.outside) await deleteNetns(w.outside);
  if (w.fabric) await deleteNetns(w.fabric);
  if (w.dir) await Deno.remove(w.dir, { recursive: true }).catch(() => {});
}
