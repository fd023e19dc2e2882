/**
 * A multi-node world for the router's end-to-end tests, in namespaces: an
 * underlay bridge in a namespace of its own, node namespaces on it (eth0,
 * forwarding on), and per node one pod attached to two per-node bridges —
 * a routed network (10.244.<n>.0/24, node address as next hop) and a vxlan
 * network (10.246.<n>.0/24). Routers run as real `hydra route sync`
 * processes started inside their node's namespace, with logs in a file
 * and the health endpoint on a unix socket the test reads from outside.
 *
 * Every name is unique; {@link destroyWorld} removes everything, also
 * after a failure.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { getFromEndpoint } from "../../pkg/http.ts";
import { withNetnsSync } from "../../netlink/mod.ts";
import { probeAll } from "../../cmd/icmp_probe.ts";
import {
  createNetns,
  deleteNetns,
  run,
  type TestNetns,
  tryRun,
  uniqueName,
} from "../helpers/netns.ts";

/** The hydra launcher of this tree. */
export const hydraBin = fileURLToPath(new URL("../../bin/hydra", import.meta.url));

/** The routed network (protocol 202) and the vxlan network (protocol 203, device vx-red). */
export const NETWORKS_YAML = `networks:
  - name: default
    mode: routed
    allowedCIDRs: [10.244.0.0/16]
  - name: red
    mode: vxlan
    allowedCIDRs: [10.246.0.0/16]
    protocol: 203
    mtu: 1450
    vxlan: { device: vx-red, vni: 4242, underlayDevice: eth0 }
`;

/** A node of the world. */
export interface WorldNode {
  index: number;
  name: string;
  ns: TestNetns;
  /** Current underlay address (changed by {@link changeAddress}). */
  address: string;
  pod: TestNetns;
  /** Pod addresses on the routed and the vxlan network. */
  podIp: { routed: string; vxlan: string };
}

/** The world. */
export interface World {
  id: string;
  dir: string;
  underlay: TestNetns;
  nodes: WorldNode[];
}

/** The routed network's CIDR of node `n`. */
export const routedCidr = (n: number) => `10.244.${n}.0/24`;
/** The vxlan network's CIDR of node `n`. */
export const vxlanCidr = (n: number) => `10.246.${n}.0/24`;

/** Builds `count` nodes with one pod each. */
export async function createWorld(count: number): Promise<World> {
  const world: World = {
    id: uniqueName("w"),
    dir: await Deno.makeTempDir({ prefix: "hydra-route-e2e-" }),
    underlay: await createNetns("hyru"),
    nodes: [],
  };
  try {
    await run("ip", "-n", world.underlay.name, "link", "add", "ul0", "type", "bridge");
    await run("ip", "-n", world.underlay.name, "link", "set", "ul0", "up");
    for (let n = 1; n <= count; n++) world.nodes.push(await addNode(world, n));
    return world;
  } catch (err) {
    await destroyWorld(world);
    throw err;
  }
}

async function addNode(world: World, n: number): Promise<WorldNode> {
  const ns = await createNetns("hyrn");
  const pod = await createNetns("hyrq");
  const node: WorldNode = {
    index: n,
    name: `node${n}`,
    ns,
    address: `192.168.60.${10 + n}`,
    pod,
    podIp: { routed: `10.244.${n}.2`, vxlan: `10.246.${n}.2` },
  };
  try {
    await wireNode(world, node);
  } catch (err) {
    await deleteNetns(pod);
    await deleteNetns(ns);
    throw err;
  }
  return node;
}

async function wireNode(world: World, node: WorldNode): Promise<void> {
  const { ns, pod, index: n } = node;
  const ipn = (...args: string[]) => run("ip", "-n", ns.name, ...args);
  const ipp = (...args: string[]) => run("ip", "-n", pod.name, ...args);
  const ul = `ul${n}${world.id}`.slice(0, 15);
  await run(
    "ip",
    "-n",
    world.underlay.name,
    "link",
    "add",
    ul,
    "type",
    "veth",
    "peer",
    "eth0",
    "netns",
    ns.name,
  );
  await run("ip", "-n", world.underlay.name, "link", "set", ul, "master", "ul0", "up");
  await ipn("addr", "add", `${node.address}/24`, "dev", "eth0");
  await ipn("link", "set", "eth0", "up");
  await ipn("link", "set", "lo", "up");
  await run("ip", "netns", "exec", ns.name, "sysctl", "-qw", "net.ipv4.ip_forward=1");
  // A node moving to a new address keeps the subnet while the old address goes.
  await run(
    "ip",
    "netns",
    "exec",
    ns.name,
    "sysctl",
    "-qw",
    "net.ipv4.conf.eth0.promote_secondaries=1",
  );
  for (
    const [br, cidrOf, mtu, podIf] of [["br0", routedCidr, "1500", "eth0"], [
      "brr",
      vxlanCidr,
      "1450",
      "net1",
    ]] as const
  ) {
    const gw = cidrOf(n).replace(".0/24", ".1");
    await ipn("link", "add", br, "mtu", mtu, "type", "bridge");
    await ipn("addr", "add", `${gw}/24`, "dev", br);
    await ipn("link", "set", br, "up");
    await ipn(
      "link",
      "add",
      `v-${podIf}`,
      "mtu",
      mtu,
      "type",
      "veth",
      "peer",
      podIf,
      "netns",
      pod.name,
    );
    await ipn("link", "set", `v-${podIf}`, "master", br, "up");
    await ipp("addr", "add", `${cidrOf(n).replace(".0/24", ".2")}/24`, "dev", podIf);
    await ipp("link", "set", podIf, "up");
    await ipp("route", "add", cidrOf(0).replace(".0.0/24", ".0.0/16"), "via", gw);
  }
}

/** Adds node `n` to a running world. */
export async function growWorld(world: World, n: number): Promise<WorldNode> {
  const node = await addNode(world, n);
  world.nodes.push(node);
  return node;
}

/** Moves a node to a new underlay address (the old one is removed). */
export async function changeAddress(node: WorldNode, address: string): Promise<void> {
  await run("ip", "-n", node.ns.name, "addr", "add", `${address}/24`, "dev", "eth0");
  await run("ip", "-n", node.ns.name, "addr", "del", `${node.address}/24`, "dev", "eth0");
  node.address = address;
}

/** Removes every namespace and file of the world. */
export async function destroyWorld(world: World): Promise<void> {
  for (const node of world.nodes) {
    await deleteNetns(node.pod);
    await deleteNetns(node.ns);
  }
  await deleteNetns(world.underlay);
  await Deno.remove(world.dir, { recursive: true }).catch(() => {});
}

/** A route as `ip -j route` prints it. */
export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  flags?: string[];
}

/** Routes of one protocol in a node (as "dst via gateway"), sorted. */
export async function routesOf(node: WorldNode, protocol: string): Promise<string[]> {
  const list = await node.ns.ipJson<IpRoute[]>("route", "show", "proto", protocol);
  return list.map((r) => `${r.dst} via ${r.gateway}`).sort();
}

/** Every route of a node except the kernel's own, as "dst via gateway proto p". */
export async function allRoutes(node: WorldNode): Promise<string[]> {
  const list = await node.ns.ipJson<IpRoute[]>("route", "show");
  return list.filter((r) => r.protocol !== "kernel")
    .map((r) => `${r.dst} via ${r.gateway} proto ${r.protocol}`).sort();
}

/** The routes node `self` should have to the others in `peers`. */
export function expectedRoutes(
  self: WorldNode,
  peers: WorldNode[],
): { routed: string[]; vxlan: string[] } {
  const others = peers.filter((p) => p !== self);
  return {
    routed: others.map((p) => `${routedCidr(p.index)} via ${p.address}`).sort(),
    vxlan: others.map((p) => `${vxlanCidr(p.index)} via ${vxlanCidr(p.index).replace("/24", "")}`)
      .sort(),
  };
}

/** Polls until `check` holds; throws with the last observed value after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  observe: () => Promise<T>,
  check: (v: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    last = await observe();
    if (check(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until node `self` has exactly the routes to `peers` on both networks. */
export async function waitForRoutes(
  self: WorldNode,
  peers: WorldNode[],
  timeoutMs = 20_000,
): Promise<void> {
  const want = expectedRoutes(self, peers);
  const same = (a: string[], b: string[]) => JSON.stringify(a) === JSON.stringify(b);
  await eventually(
    `routes on ${self.name}`,
    async () => ({
      routed: await routesOf(self, "202"),
      vxlan: await routesOf(self, "203"),
    }),
    (v) => same(v.routed, want.routed) && same(v.vxlan, want.vxlan),
    timeoutMs,
  );
}

/** Pings every other pod of `nodes` from every pod on both networks; returns the failures. */
export function unreachable(nodes: WorldNode[]): string[] {
  const failed: string[] = [];
  for (const src of nodes) {
    const targets = nodes.filter((n) => n !== src).flatMap((n) => [n.podIp.routed, n.podIp.vxlan]);
    const answered = probeAll(src.pod.path, targets, 2000);
    for (const [ip, ok] of answered) if (!ok) failed.push(`${src.name} -> ${ip}`);
  }
  return failed;
}

/** A running router process. */
export interface RouterProcess {
  node: WorldNode;
  child: Deno.ChildProcess;
  socket: string;
  logFile: string;
  /** Resolves with the exit status. */
  status: Promise<Deno.CommandStatus>;
  /** stderr collected so far (startup failures). */
  stderr(): string;
}

/** Starts `hydra route sync` inside the node's namespace. */
export function startRouter(world: World, node: WorldNode, args: string[]): RouterProcess {
  const socket = `${world.dir}/${node.name}.sock`;
  const logFile = `${world.dir}/${node.name}.log`;
  const child = withNetnsSync(node.ns.path, () =>
    new Deno.Command(hydraBin, {
      args: [
        "route",
        "sync",
        "--node-name",
        node.name,
        "--health-addr",
        `unix:${socket}`,
        "--log-file",
        logFile,
        "--log-level",
        "debug",
        ...args,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn());
  let err = "";
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) err += decoder.decode(chunk, { stream: true });
  })();
  const status = child.status.then(async (s) => {
    await drained;
    return s;
  });
  return { node, child, socket, logFile, status, stderr: () => err };
}

/** Sends SIGTERM and waits for a clean exit. */
export async function stopRouter(r: RouterProcess): Promise<Deno.CommandStatus> {
  try {
    r.child.kill("SIGTERM");
  } catch {
    // already gone
  }
  return await r.status;
}

/** kill -9. */
export async function killRouter(r: RouterProcess): Promise<void> {
  try {
    r.child.kill("SIGKILL");
  } catch {
    // already gone
  }
  await r.status;
}

/** Reads the router's metrics (Prometheus text) from its unix socket. */
export async function metricsOf(r: RouterProcess): Promise<string> {
  return (await getFromEndpoint({ transport: "unix", path: r.socket }, "/metrics")).body;
}

/** One sample's value from Prometheus text, 0 when absent. */
export function sample(metrics: string, series: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(series + " "));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** Waits until the router answers /readyz. */
export async function waitReady(r: RouterProcess, timeoutMs = 30_000): Promise<void> {
  await eventually(
    `${r.node.name}'s router ready (${r.stderr()})`,
    async () => {
      try {
        return (await getFromEndpoint({ transport: "unix", path: r.socket }, "/readyz")).status;
      } catch {
        return 0;
      }
    },
    (s) => s === 200,
    timeoutMs,
  );
}

/** Adds the foreign routes the tests check stay untouched. */
export async function addForeignRoutes(node: WorldNode): Promise<string[]> {
  await run(
    "ip",
    "-n",
    node.ns.name,
    "route",
    "add",
    "10.99.0.0/16",
    "via",
    "192.168.60.99",
    "proto",
    "static",
  );
  await run(
    "ip",
    "-n",
    node.ns.name,
    "route",
    "add",
    "10.98.0.0/16",
    "via",
    "192.168.60.98",
    "proto",
    "204",
  );
  return [
    "10.98.0.0/16 via 192.168.60.98 proto 204",
    "10.99.0.0/16 via 192.168.60.99 proto static",
  ];
}

/** The foreign routes present on a node. */
export async function foreignRoutes(node: WorldNode): Promise<string[]> {
  return (await allRoutes(node)).filter((r) => r.startsWith("10.99.") || r.startsWith("10.98."));
}

export { tryRun };
