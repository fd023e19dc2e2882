/**
 * The router and the hydra-vxlan plugin together: pods on two node
 * namespaces are attached by the real plugin (bridge, pod link, tunnel),
 * `hydra route sync --once` in each node programs the tunnel's routes,
 * neighbours and FDB (`vxlan.owner: plugin`), and the pods reach each other.
 */

import assert from "node:assert/strict";
import { dirname } from "node:path";
import { withNetnsSync } from "../../netlink/mod.ts";
import { probeAll } from "../../cmd/icmp_probe.ts";
import { createNetns, deleteNetns, run, type TestNetns } from "../helpers/netns.ts";
import { containerId, mustInvoke, reference } from "../plugins/helpers.ts";
import { hydraBin } from "./world.ts";

const NETWORKS = `networks:
  - name: green
    mode: vxlan
    protocol: 205
    vxlan: { owner: plugin, vni: 42 }
`;

Deno.test("hydra-vxlan pods on two nodes reach each other once the router programs the plugin's tunnel", async () => {
  const made: TestNetns[] = [];
  const dir = await Deno.makeTempDir({ prefix: "hydra-route-vxlan-" });
  try {
    const nodes = [];
    for (const [i, underlay] of ["10.251.0.1", "10.251.0.2"].entries()) {
      const ns = await createNetns("hyrn");
      made.push(ns);
      const pod = await createNetns("hyrq");
      made.push(pod);
      nodes.push({ name: `node${i + 1}`, ns, pod, underlay, range: `10.43.${i + 1}.0/24` });
    }
    const [a, b] = nodes;
    await run(
      "ip",
      "link",
      "add",
      "ul0",
      "netns",
      a.ns.name,
      "type",
      "veth",
      "peer",
      "name",
      "ul0",
      "netns",
      b.ns.name,
    );
    for (const n of nodes) {
      await run("ip", "-n", n.ns.name, "addr", "add", `${n.underlay}/24`, "dev", "ul0");
      await run("ip", "-n", n.ns.name, "link", "set", "ul0", "up");
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
          subnet: n.range,
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
            "hydra.clusternet.io/green.cidr": n.range,
            "hydra.clusternet.io/green.address": n.underlay,
          },
        })),
      }),
    );
    for (const n of nodes) {
      const child = withNetnsSync(n.ns.path, () =>
        new Deno.Command(hydraBin, {
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
          stdout: "piped",
          stderr: "piped",
        }).spawn());
      const out = await child.output();
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
  } finally {
    for (const ns of made.reverse()) await deleteNetns(ns);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
