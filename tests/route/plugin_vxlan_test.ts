/**
 * The router and the hydra-vxlan plugin together: pods on two node
 * namespaces are attached by the real plugin (bridge, pod link, tunnel),
 * `hydra route sync --once` in each node programs the tunnel's routes,
 * neighbours and FDB (`vxlan.owner: plugin`), and the pods reach each other.
 */

import assert from "node:assert/strict";
import { dirname } from "node:path";
import { outputInNetns } from "../../netlink/netns_spawn.ts";
import { probeAll } from "../../cmd/icmp_probe.ts";
import { withTwoNodes } from "../helpers/two_nodes.ts";
import { containerId, mustInvoke, reference } from "../plugins/helpers.ts";
import { hydraBin } from "./world.ts";

const NETWORKS = `networks:
  - name: green
    mode: vxlan
    allowedCIDRs: [10.43.0.0/16]
    protocol: 205
    vxlan: { owner: plugin, vni: 42 }
`;

Deno.test("hydra-vxlan pods on two nodes reach each other once the router programs the plugin's tunnel", async () => {
  await withTwoNodes({
    underlays: ["10.251.0.1", "10.251.0.2"],
    podRanges: ["10.43.1.0/24", "10.43.2.0/24"],
    prefix: "hyrvx",
  }, async (a, b, dir) => {
    const nodes = [a, b];
    for (const n of nodes) {
      await mustInvoke(n.ns, `${dirname(hydraBin)}/hydra-vxlan`, {
        command: "ADD",
        containerId: containerId(),
        netns: n.pod.path,
        ifName: "eth0",
        path: [reference().dir],
      }, {
        cniVersion: "1.1.0",
        name: "green",
        type: "hydra-vxlan",
        vni: 42,
        dev: "ul0",
        ipam: {
          type: "hydra-ipam",
          subnet: n.podRange,
          routes: [{ dst: "10.43.0.0/16" }],
          dataDir: `${dir}/${n.name}`,
        },
      });
    }
    const config = `${dir}/networks.yaml`;
    const nodesFile = `${dir}/nodes.json`;
    await Deno.writeTextFile(config, NETWORKS);
    await Deno.writeTextFile(
      nodesFile,
      JSON.stringify({
        nodes: nodes.map((n) => ({
          name: n.name,
          annotations: {
            "hydra.clusternet.io/green.cidr": n.podRange,
            "hydra.clusternet.io/green.address": n.underlay,
          },
        })),
      }),
    );
    for (const n of nodes) {
      const out = await outputInNetns(n.ns.path, hydraBin, {
        args: [
          "route",
          "sync",
          "--once",
          "--config",
          config,
          "--nodes-file",
          nodesFile,
          "--node-name",
          n.name,
        ],
      });
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    }
    const routes = await a.ns.ipJson<{ dst: string; gateway: string; dev: string }[]>(
      "route",
      "show",
      "proto",
      "205",
    );
    assert.deepEqual(routes.map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`), [
      "10.43.2.0/24 via 10.43.2.1 dev hydravx42",
    ]);
    const fromA = probeAll(a.pod.path, ["10.43.2.2"], 2000);
    const fromB = probeAll(b.pod.path, ["10.43.1.2"], 2000);
    assert.deepEqual([...fromA.values(), ...fromB.values()], [true, true]);
  });
});
