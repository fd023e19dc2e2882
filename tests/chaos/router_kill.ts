/**
 * kill -9 of `hydra route sync` mid-sync: a node namespace with an underlay
 * and a node list of a few thousand nodes. Each cycle changes the list
 * (nodes gone, new ones, moved CIDRs and addresses), starts the router,
 * kills it at a random point of its pass, then runs it again once
 * (`--once`), as its restarted pod would sync. That run must succeed, and
 * the kernel must then hold exactly the routes the list asks for: none
 * missing, none left for a node that is gone (its route or its nexthop
 * object), nothing of another protocol touched.
 *
 * @module
 */

import { closeHandle, listRoutes, openHandle } from "../../netlink/mod.ts";
import { listNexthops } from "../../netlink/nexthop.ts";
import { createNetns, deleteNetns, run } from "../helpers/netns.ts";
import { BIN } from "./node_world.ts";
import { median, runKillable } from "./kill.ts";
import type { ChaosReport } from "./report.ts";
import type { Rng } from "./rng.ts";

const SCENARIO = "kill-router";
const PROTOCOL = 202;

interface Entry {
  name: string;
  podCIDRs: string[];
  addresses: string[];
}

/**
 * About `n` nodes: node i with 10.(64 + j/256).(j%256).0/24 via
 * 192.168.(i/250).(2 + i%250), j = i, or (moved) i + n: CIDRs never overlap.
 */
function nodeList(n: number, rng: Rng): Entry[] {
  const out: Entry[] = [{
    name: "self",
    podCIDRs: ["10.63.255.0/24"],
    addresses: ["192.168.255.1"],
  }];
  for (let i = 0; i < n; i++) {
    if (rng.chance(0.1)) continue; // gone this time
    const j = rng.chance(0.05) ? i + n : i;
    out.push({
      name: `node${i}`,
      podCIDRs: [`10.${64 + (j >> 8)}.${j & 255}.0/24`],
      addresses: [`192.168.${(i / 250) | 0}.${2 + (i % 250)}`],
    });
  }
  return out;
}

/** The routes (dst → gateway) the list asks for on node "self". */
function desired(list: Entry[]): Map<string, string> {
  return new Map(list.filter((e) => e.name !== "self").map((e) => [e.podCIDRs[0], e.addresses[0]]));
}

/** Runs `cycles` cycles with `nodes` nodes. */
export async function runRouterKill(
  report: ChaosReport,
  rng: Rng,
  cycles: number,
  nodes = 3000,
): Promise<void> {
  const ns = await createNetns("hcr");
  const peer = await createNetns("hcq");
  const dir = await Deno.makeTempDir({ prefix: "hydra-chaos-router-" });
  try {
    await run(
      "ip",
      "-n",
      ns.name,
      "link",
      "add",
      "ul0",
      "type",
      "veth",
      "peer",
      "name",
      "ul1",
      "netns",
      peer.name,
    );
    await run("ip", "-n", ns.name, "addr", "add", "192.168.255.1/16", "dev", "ul0");
    await run("ip", "-n", ns.name, "link", "set", "ul0", "up");
    await run("ip", "-n", peer.name, "link", "set", "ul1", "up");
    // Another protocol's route in the same range: never the router's to touch.
    await run(
      "ip",
      "-n",
      ns.name,
      "route",
      "add",
      "10.62.0.0/16",
      "via",
      "192.168.9.9",
      "proto",
      "static",
    );
    const config = `${dir}/networks.yaml`;
    await Deno.writeTextFile(
      config,
      "networks:\n  - { name: default, allowedCIDRs: [10.0.0.0/8] }\n",
    );
    const file = `${dir}/nodes.json`;
    const sync = (once: boolean, killAfterMs?: number) => {
      return runKillable({
        program: "ip",
        args: [
          "netns",
          "exec",
          ns.name,
          `${BIN}/hydra`,
          "route",
          "sync",
          "--config",
          config,
          "--nodes-file",
          file,
          "--node-name",
          "self",
          "--health-addr",
          "off",
          ...(once ? ["--once"] : []),
        ],
        env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
        killAfterMs,
        // Not --once: it runs until killed (a killed pass, or one that ended first).
        timeoutMs: once ? 120_000 : (killAfterMs ?? 0) + 5_000,
      });
    };
    const write = (list: Entry[]) => Deno.writeTextFile(file, JSON.stringify({ nodes: list }));
    await write(nodeList(nodes, rng));
    const times: number[] = [];
    for (let i = 0; i < 2; i++) times.push((await sync(true)).ms);
    for (let cycle = 0; cycle < cycles; cycle++) {
      report.counts.cycles++;
      const list = nodeList(nodes, rng);
      await write(list);
      const killed = await sync(false, rng.next() * median(times) * 1.3);
      if (killed.killed) report.counts.killed++;
      const again = await sync(true);
      if (again.code !== 0) {
        report.find(
          "stuck",
          SCENARIO,
          `the sync after the kill failed (${again.code}): ${again.stderr.slice(-400)}`,
          cycle,
        );
        continue;
      }
      checkRoutes(report, ns.path, desired(list), cycle);
    }
  } finally {
    await deleteNetns(ns);
    await deleteNetns(peer);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The kernel's routes of the router's protocol against the wanted set. */
function checkRoutes(
  report: ChaosReport,
  netns: string,
  want: Map<string, string>,
  cycle: number,
): void {
  const h = openHandle({ netnsPath: netns });
  try {
    const have = listRoutes(h, { family: 4, protocol: PROTOCOL });
    const seen = new Set<string>();
    for (const r of have) {
      seen.add(r.dst);
      const gw = want.get(r.dst);
      if (gw === undefined) {
        report.findOnce(
          "leakedAddresses",
          `route ${r.dst} ${cycle}`,
          SCENARIO,
          `route ${r.dst} left for a node that is gone`,
          cycle,
        );
      }
    }
    const missing = [...want.keys()].filter((d) => !seen.has(d));
    if (missing.length) {
      report.find(
        "stuck",
        SCENARIO,
        `${missing.length} routes missing after a full sync (${
          missing.slice(0, 3).join(", ")
        }, ...)`,
        cycle,
      );
    }
    const used = new Set(have.map((r) => r.nhid).filter((id) => id !== undefined));
    for (const nh of listNexthops(h, { protocol: PROTOCOL })) {
      if (!used.has(nh.id)) {
        report.findOnce(
          "leakedAddresses",
          `nexthop ${nh.id} ${cycle}`,
          SCENARIO,
          `nexthop ${nh.id} (${nh.gateway}) left with no route`,
          cycle,
        );
      }
    }
    if (!listRoutes(h, { family: 4 }).some((r) => r.dst === "10.62.0.0/16" && r.protocol === 4)) {
      report.find("stuck", SCENARIO, "another protocol's route was taken away", cycle);
    }
  } finally {
    closeHandle(h);
  }
}
