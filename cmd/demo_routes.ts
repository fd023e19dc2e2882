/**
 * Route sync between the demo's nodes: the demo writes the static node list
 * a cluster would hold as Node objects (the default network's CIDR as
 * podCIDRs, the secondary networks' CIDRs and addresses as annotations) and
 * a networks file, then runs `hydra route sync --once` inside every node's
 * namespace, as the router DaemonSet would run on each node.
 *
 * @module
 */

import { outputInNetns } from "../netlink/netns_spawn.ts";
import { ANNOTATION_PREFIX, DEFAULT_PROTOCOL } from "../route/config.ts";
import type { DemoWorld } from "./demo_world.ts";
import type { DemoNetwork } from "./demo_networks.ts";
import { selfExecutable } from "../pkg/self.ts";

/** The demo's networks as the router's config: one protocol number each, vxlan on eth0. */
export function demoRouterConfig(networks: DemoNetwork[]): unknown {
  return {
    networks: networks.map((net, i) => ({
      name: net.name,
      mode: net.mode,
      allowedCIDRs: [net.cidr],
      protocol: DEFAULT_PROTOCOL + i,
      ...(net.mode === "vxlan"
        ? { vxlan: { device: `vx-${net.name}`.slice(0, 15), vni: 100 + i, underlayDevice: "eth0" } }
        : {}),
    })),
  };
}

/** The demo's nodes as the router's static node list. */
export function demoNodeList(world: DemoWorld, networks: DemoNetwork[]): unknown {
  return {
    nodes: world.nodes.map((node) => {
      const annotations: Record<string, string> = {};
      for (const net of networks) {
        if (net.name === "default") continue;
        annotations[`${ANNOTATION_PREFIX}${net.name}.cidr`] = net.nodeCidr(node);
        annotations[`${ANNOTATION_PREFIX}${net.name}.address`] = node.underlayIp;
      }
      const defaultNet = networks.find((n) => n.name === "default");
      return {
        name: node.name,
        podCIDRs: defaultNet ? [defaultNet.nodeCidr(node)] : [],
        addresses: [node.underlayIp],
        annotations,
      };
    }),
  };
}

/** Syncs routes on every node; returns how many routes the routers own in total. */
export async function syncDemoRoutes(
  world: DemoWorld,
  networks: DemoNetwork[],
  stateDir: string,
): Promise<number | undefined> {
  const dir = `${stateDir}/route`;
  await Deno.mkdir(dir, { recursive: true });
  const config = `${dir}/networks.json`;
  const nodesFile = `${dir}/nodes.json`;
  await Deno.writeTextFile(config, JSON.stringify(demoRouterConfig(networks), null, 2) + "\n");
  await Deno.writeTextFile(
    nodesFile,
    JSON.stringify(demoNodeList(world, networks), null, 2) + "\n",
  );
  // One router per node, inside the node's namespace, all at once.
  const runs = world.nodes.map((node) => {
    const out = outputInNetns(node.netnsPath, selfExecutable(), {
      args: [
        "route",
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
    });
    return { node, out };
  });
  let total = 0;
  const failures: string[] = [];
  for (const { node, out } of runs) {
    const res = await out;
    const text = new TextDecoder().decode(res.stdout).trim();
    if (!res.success) {
      const stderr = new TextDecoder().decode(res.stderr).trim();
      failures.push(`${node.name}: ${stderr || text || `exit ${res.code}`}`);
      continue;
    }
    total += (JSON.parse(text) as { routes: number }).routes;
  }
  if (failures.length) {
    throw new Error(`route sync failed (logs in ${dir}): ${failures.join("; ")}`);
  }
  return total;
}
