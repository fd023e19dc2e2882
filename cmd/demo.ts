/**
 * `hydra demo`: the main job with no cluster. Builds "nodes" and "pods" as
 * network namespaces, attaches every pod to a default and secondary
 * networks through the real meta-CNI (exec'd inside each node namespace, as
 * a runtime would), syncs routes between the nodes with the router, prints
 * who reaches whom on which network, and tears everything down.
 *
 * @module
 */

import { parseFlags } from "../pkg/flags.ts";
import { closeHandle, listAddrs, listLinks, openHandle } from "../netlink/mod.ts";
import { outputInNetns } from "../netlink/netns_spawn.ts";
import { probeAll } from "./icmp_probe.ts";
import { selfBinDir, selfExecutable } from "../pkg/self.ts";
import { buildWorld, type DemoPod, type DemoWorld, destroyWorld } from "./demo_world.ts";
import { type DemoNetwork, demoNetworks, type PluginSet } from "./demo_networks.ts";
import { syncDemoRoutes } from "./demo_routes.ts";
import {
  buildFabric,
  hybridNet,
  measureHybrid,
  renderHybrid,
  syncDemoHybrid,
} from "./demo_hybrid.ts";

const STATE_ROOT = "/run/hydra-demo";

const HELP = `Usage: hydra demo [options]

Builds nodes and pods as network namespaces, attaches every pod to the
default and secondary networks through the meta-CNI, syncs routes between
nodes with the router, prints a reachability table and removes everything.
The hybrid network (net3) puts odd-numbered pods on an overlay and
even-numbered pods on a simulated fabric with its gateway and an outside
host; its table shows the path each pair's packets took.

Options:
  --nodes N          number of nodes (default 3)
  --pods N           pods per node (default 2)
  --plugins SET      "hydra" (built-in plugins and hydra-ipam, default) or
                     "reference" (the reference bridge and host-local on CNI_PATH)
  --keep             leave the namespaces up to poke at (remove with --down ID)
  --down ID          remove what the kept demo ID left (other demos are left alone)
  --json             print the table as JSON
  -h, --help         this help

Each demo prints its ID when it starts; its namespaces are hydra-demo-ID-*.
Interrupted (Ctrl-C, SIGTERM), a demo removes what it made and exits 130 (143).`;

/** One cell of the reachability table. */
export interface Reachability {
  source: string;
  destination: string;
  address: string;
  network: string;
  reachable: boolean;
}

/** A demo's ID: six hex digits, also in its namespaces' names and its state folder. */
const DEMO_ID = /^[0-9a-f]{6}$/;

interface Options {
  nodes: number;
  pods: number;
  plugins: PluginSet;
  keep: boolean;
  json: boolean;
}

function positiveInt(name: string, value: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new Error(`--${name} must be a whole number from 1 to ${max}, got "${value}"`);
  }
  return n;
}

async function cni(
  world: DemoWorld,
  pod: DemoPod,
  command: "ADD" | "DEL",
  stateDir: string,
): Promise<unknown> {
  const confPath = `${stateDir}/${pod.node.name}/${pod.name}.conf`;
  const conf = await Deno.readFile(confPath);
  const env = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: pod.containerId,
    CNI_NETNS: pod.netnsPath,
    CNI_IFNAME: "eth0",
    CNI_PATH: [selfBinDir(), "/opt/cni/bin", "/usr/lib/cni"].join(":"),
  };
  // A runtime runs CNI plugins in the node's namespace: start it there.
  const out = await outputInNetns(pod.node.netnsPath, selfExecutable(), { env, stdin: conf });
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    const stderr = new TextDecoder().decode(out.stderr).trim();
    throw new Error(
      `${command} ${pod.name} in ${world.id} failed: ${text || stderr || `exit ${out.code}`}`,
    );
  }
  return text ? JSON.parse(text) : undefined;
}

async function writeNodeConfs(
  world: DemoWorld,
  networks: DemoNetwork[],
  plugins: PluginSet,
  stateDir: string,
): Promise<void> {
  for (const node of world.nodes) {
    const dir = `${stateDir}/${node.name}`;
    await Deno.mkdir(dir, { recursive: true });
    // One conf per pod: the same on every pod of a node but for the hybrid network's kind.
    for (const pod of node.pods) {
      const delegates = networks.map((net, i) => ({
        ...(net.podDelegate
          ? net.podDelegate(pod, plugins, `${dir}/ipam`)
          : net.delegate(node, plugins, `${dir}/ipam`)),
        ...(i === 0 ? {} : { ifname: net.ifName }),
      }));
      const conf = {
        cniVersion: "1.1.0",
        name: "hydra-demo",
        type: "hydra",
        delegates,
        cacheDir: `${dir}/cache`,
        logFile: `${dir}/hydra.log`,
      };
      await Deno.writeTextFile(`${dir}/${pod.name}.conf`, JSON.stringify(conf, null, 2) + "\n");
    }
  }
}

/** The first IPv4 address of `ifName` in the pod, read from the kernel. */
function podAddress(pod: DemoPod, ifName: string): string | undefined {
  const h = openHandle({ netnsPath: pod.netnsPath });
  try {
    if (!listLinks(h).some((l) => l.name === ifName)) return undefined;
    return listAddrs(h, { link: ifName, family: 4 }).find((a) => a.scope === 0)?.address;
  } finally {
    closeHandle(h);
  }
}

function measure(world: DemoWorld, networks: DemoNetwork[]): Reachability[] {
  const pods = world.nodes.flatMap((n) => n.pods);
  const cells: Reachability[] = [];
  for (const net of networks.filter((n) => n.mode !== "hybrid")) {
    const addrs = new Map(pods.map((p) => [p.name, podAddress(p, net.ifName)]));
    for (const src of pods) {
      const targets = pods.filter((p) => p !== src && addrs.get(p.name));
      const answered = probeAll(src.netnsPath, targets.map((p) => addrs.get(p.name)!));
      for (const dst of targets) {
        const address = addrs.get(dst.name)!;
        cells.push({
          source: src.name,
          destination: dst.name,
          address,
          network: net.name,
          reachable: answered.get(address) ?? false,
        });
      }
    }
  }
  return cells;
}

function renderTable(world: DemoWorld, networks: DemoNetwork[], cells: Reachability[]): string {
  const pods = world.nodes.flatMap((n) => n.pods.map((p) => p.name));
  const width = Math.max(...pods.map((p) => p.length), ...cells.map((c) => c.address.length), 9) +
    2;
  const lines: string[] = [];
  for (const net of networks.filter((n) => n.mode !== "hybrid")) {
    lines.push(`network ${net.name} (${net.ifName}, ${net.cidr}, ${net.mode} between nodes)`);
    const addr = new Map(
      cells.filter((c) => c.network === net.name).map((c) => [c.destination, c.address]),
    );
    lines.push("  " + "from \\ to".padEnd(width) + pods.map((p) => p.padEnd(width)).join(""));
    lines.push(
      "  " + "".padEnd(width) + pods.map((p) => (addr.get(p) ?? "").padEnd(width)).join(""),
    );
    for (const src of pods) {
      const row = pods.map((dst) => {
        if (dst === src) return "·".padEnd(width);
        const cell = cells.find((c) =>
          c.network === net.name && c.source === src && c.destination === dst
        );
        return (cell ? (cell.reachable ? "ok" : "FAIL") : "n/a").padEnd(width);
      });
      lines.push("  " + src.padEnd(width) + row.join(""));
    }
    lines.push("");
  }
  const ok = cells.filter((c) => c.reachable).length;
  lines.push(`${ok}/${cells.length} pod pairs reachable`);
  return lines.join("\n");
}

/** IDs of demos whose namespaces or state are still there. */
async function keptDemos(): Promise<string[]> {
  const ids = new Set<string>();
  for (const dir of ["/var/run/netns", STATE_ROOT]) {
    try {
      for await (const e of Deno.readDir(dir)) {
        const m = /^(?:hydra-demo-)?([0-9a-f]{6})(?:-|$)/.exec(e.name);
        if (m && (dir === STATE_ROOT || e.name.startsWith("hydra-demo-"))) ids.add(m[1]);
      }
    } catch { /* nothing there */ }
  }
  return [...ids].sort();
}

/** Removes the namespaces and state of demo `id`, and nothing of any other. */
async function down(id: string): Promise<number> {
  const { deleteNamedNetns } = await import("../netlink/mod.ts");
  let removed = 0;
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir("/var/run/netns"));
  } catch { /* no namespaces at all */ }
  for (const entry of entries) {
    if (entry.name.startsWith(`hydra-demo-${id}-`)) {
      try {
        deleteNamedNetns(entry.name);
        removed++;
      } catch { /* gone meanwhile */ }
    }
  }
  await Deno.remove(`${STATE_ROOT}/${id}`, { recursive: true }).catch(() => {});
  console.log(`removed ${removed} namespaces of demo ${id}`);
  return 0;
}

type Parsed = Options | "help" | { down: string };

function parseOptions(args: string[]): Parsed {
  const values = parseFlags(args, {
    nodes: { type: "string", default: "3" },
    pods: { type: "string", default: "2" },
    plugins: { type: "string", default: "hydra" },
    keep: { type: "boolean", default: false },
    down: { type: "string" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  });
  if (values.help) return "help";
  if (values.down !== undefined) {
    if (!DEMO_ID.test(values.down)) {
      throw new Error(`--down takes a demo's ID (six hex digits), got "${values.down}"`);
    }
    return { down: values.down };
  }
  if (values.plugins !== "hydra" && values.plugins !== "reference") {
    throw new Error(`--plugins must be "hydra" or "reference", got "${values.plugins}"`);
  }
  return {
    nodes: positiveInt("nodes", values.nodes, 8),
    pods: positiveInt("pods", values.pods, 16),
    plugins: values.plugins,
    keep: values.keep,
    json: values.json,
  };
}

/** Runs `hydra demo`; returns 0 when every pod reaches every other on every network. */
export async function runDemo(args: string[]): Promise<number> {
  let opts: Parsed;
  try {
    opts = parseOptions(args);
  } catch (err) {
    const kept = await keptDemos();
    const which = kept.length ? `\nkept demos: ${kept.join(", ")}` : "";
    console.error(`hydra demo: ${(err as Error).message}${which}\n\n${HELP}`);
    return 2;
  }
  if (opts === "help") {
    console.log(HELP);
    return 0;
  }
  if ("down" in opts) return await down(opts.down);
  return await runWorld(opts);
}

/** Set by SIGINT or SIGTERM: the demo stops at its next step and removes what it made. */
class Interrupted extends Error {
  constructor(readonly signal: Deno.Signal) {
    super(`interrupted by ${signal}`);
  }
}

/** Listens for SIGINT and SIGTERM; `check()` throws once one came. */
function interruptions(): { check(): void; signal(): Deno.Signal | undefined; dispose(): void } {
  let got: Deno.Signal | undefined;
  const handlers = (["SIGINT", "SIGTERM"] as const).map((sig) => {
    const h = () => {
      got ??= sig;
    };
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  return {
    check() {
      if (got) throw new Interrupted(got);
    },
    signal: () => got,
    dispose: () => handlers.forEach(([sig, h]) => Deno.removeSignalListener(sig, h)),
  };
}

/** DELs the attached pods (last first), removes the namespaces and state; false if a DEL failed. */
async function removeDemo(
  world: DemoWorld,
  attached: DemoPod[],
  stateDir: string,
  log: (msg: string) => void,
): Promise<boolean> {
  let ok = true;
  for (const pod of [...attached].reverse()) {
    await cni(world, pod, "DEL", stateDir).catch((err) => {
      console.error(`[demo] ${err.message}`);
      ok = false;
    });
  }
  destroyWorld(world);
  await Deno.remove(stateDir, { recursive: true }).catch(() => {});
  log("removed every namespace, link and file the demo made");
  return ok;
}

/** Builds, measures and (unless kept) removes one demo world. */
async function runWorld(opts: Options): Promise<number> {
  const stop = interruptions();
  try {
    return await runWorldUntil(opts, stop);
  } finally {
    stop.dispose();
  }
}

async function runWorldUntil(
  opts: Options,
  stop: ReturnType<typeof interruptions>,
): Promise<number> {
  const id = crypto.randomUUID().slice(0, 6);
  const stateDir = `${STATE_ROOT}/${id}`;
  const networks = demoNetworks();
  const log = (msg: string) => {
    if (!opts.json) console.error(`[demo] ${msg}`);
  };
  // The ID on stderr always (also with --json): it is what --down takes.
  console.error(`[demo] demo ${id}: ${opts.nodes} nodes with ${opts.pods} pods each`);
  const world = buildWorld(id, opts.nodes, opts.pods);
  const attached: DemoPod[] = [];
  let status = 1;
  try {
    buildFabric(world);
    await writeNodeConfs(world, networks, opts.plugins, stateDir);
    const pods = world.nodes.flatMap((n) => n.pods);
    for (const pod of pods) {
      stop.check();
      // Recorded first: an ADD cut short by the signal may have attached part of it.
      attached.push(pod);
      await cni(world, pod, "ADD", stateDir);
    }
    stop.check();
    log(`attached ${pods.length} pods to ${networks.length} networks through the meta-CNI`);
    const routes = await syncDemoRoutes(
      world,
      networks.filter((n) => n.mode !== "hybrid"),
      stateDir,
    );
    if (routes !== undefined) log(`router synced ${routes} routes between nodes`);
    const hybridRoutes = await syncDemoHybrid(world, stateDir);
    log(`hybrid router synced ${hybridRoutes} routes through the overlay`);
    stop.check();
    const cells = measure(world, networks);
    const hybridIf = networks.find((n) => n.mode === "hybrid")!.ifName;
    const hybrid = measureHybrid(world, podAddress, hybridIf);
    if (opts.json) {
      console.log(JSON.stringify(
        {
          demo: id,
          nodes: world.nodes.map((n) => ({
            name: n.name,
            underlayIp: n.underlayIp,
            pods: n.pods.map((p) => p.name),
          })),
          networks: networks.map((n) => ({
            name: n.name,
            interface: n.ifName,
            cidr: n.cidr,
            mode: n.mode,
            ...(n.mode === "hybrid"
              ? {
                subnets: hybridNet.subnets.map((s) => ({
                  name: s.name,
                  kind: s.kind,
                  cidr: s.cidr,
                  ...(s.gateway ? { gateway: s.gateway } : {}),
                })),
              }
              : {}),
          })),
          results: [...cells, ...hybrid.map((p) => ({ ...p, network: hybridNet.name }))],
        },
        null,
        2,
      ));
    } else {
      console.log(renderHybrid(hybrid, hybridIf));
      console.log(renderTable(world, networks, cells));
    }
    const hybridOk = hybrid.length > 0 && hybrid.every((p) => p.reachable === p.expected);
    status = cells.length > 0 && cells.every((c) => c.reachable) && hybridOk ? 0 : 1;
  } catch (err) {
    // A signal that came during a step made that step fail: say so, not its error.
    if (!(err instanceof Interrupted) && !stop.signal()) throw err;
  } finally {
    const sig = stop.signal();
    if (sig) {
      console.error(`[demo] ${sig}: removing demo ${id}`);
      status = sig === "SIGINT" ? 130 : 143;
    }
    if (opts.keep && !sig) {
      log(
        `kept: namespaces hydra-demo-${id}-*, state in ${stateDir}; remove with ` +
          `"hydra demo --down ${id}"`,
      );
    } else if (!(await removeDemo(world, attached, stateDir, log)) && !sig) {
      status = 1;
    }
  }
  return status;
}
