/**
 * Bad input reaches a running router: malformed annotations, overlapping
 * CIDRs, a CIDR holding a node's own address, missing annotations, a node
 * list that does not parse, a protocol number taken twice. Each gets a log
 * line and a metric; the good nodes stay routed and nothing that should
 * stay is removed.
 */

import assert from "node:assert/strict";
import { stringify } from "yaml";
import {
  createWorld,
  destroyWorld,
  eventually,
  metricsOf,
  NETWORKS_YAML,
  type RouterProcess,
  routesOf,
  sample,
  startRouter,
  stopRouter,
} from "./world.ts";

interface Entry {
  name: string;
  podCIDRs?: string[];
  addresses?: string[];
  annotations?: Record<string, string>;
}

function good(name: string, n: number): Entry {
  const addr = `192.168.60.${100 + n}`;
  return {
    name,
    podCIDRs: [`10.244.${n}.0/24`],
    addresses: [addr],
    annotations: {
      "hydra.clusternet.io/red.cidr": `10.246.${n}.0/24`,
      "hydra.clusternet.io/red.address": addr,
    },
  };
}

const RED = "hydra.clusternet.io/red";

Deno.test("bad node input and a protocol clash: logged and counted, the rest synced, nothing lost", async () => {
  const world = await createWorld(1);
  const [self] = world.nodes;
  let router: RouterProcess | undefined;
  try {
    const config = `${world.dir}/networks.yaml`;
    // "blue" asks for the vxlan network's protocol: it is left out, the others run.
    await Deno.writeTextFile(
      config,
      // The default network also allows the underlay's range here, so that a CIDR holding a
      // node address meets the check made for it rather than the allowed-range check.
      NETWORKS_YAML.replace("[10.244.0.0/16]", "[10.244.0.0/16, 192.168.60.0/24]") +
        "  - { name: blue, protocol: 203, allowedCIDRs: [10.0.0.0/8] }\n",
    );
    const nodesFile = `${world.dir}/nodes.yaml`;
    const local: Entry = {
      name: self.name,
      podCIDRs: ["10.244.1.0/24"],
      addresses: [self.address],
      annotations: { [`${RED}.cidr`]: "10.246.1.0/24", [`${RED}.address`]: self.address },
    };
    const write = (entries: Entry[]) =>
      Deno.writeTextFile(nodesFile, stringify({ nodes: entries }));
    await write([local, good("n2", 2), good("n3", 3)]);
    router = startRouter(world, self, ["--config", config, "--nodes-file", nodesFile]);
    const r = router;
    const want = ["10.244.2.0/24 via 192.168.60.102", "10.244.3.0/24 via 192.168.60.103"];
    await eventually("good routes", () => routesOf(self, "202"), (v) => v.join() === want.join());

    await write([
      local,
      good("n2", 2),
      good("n3", 3),
      {
        ...good("n4", 4),
        annotations: { [`${RED}.cidr`]: "10.246.4.0/33", [`${RED}.address`]: "192.168.60.104" },
      },
      {
        ...good("n5", 5),
        annotations: { [`${RED}.cidr`]: "10.246.5.0/24", [`${RED}.address`]: "192.168.60.999" },
      },
      { ...good("n6", 6), podCIDRs: ["10.244.2.128/25"] }, // overlaps n2, which was there first
      { ...good("n7", 7), podCIDRs: ["192.168.60.0/28"] }, // holds this node's underlay address
      { name: "n8", podCIDRs: ["10.244.8.0/24"], addresses: ["192.168.60.108"] }, // no red annotations
      { ...good("n9", 9), podCIDRs: ["8.8.8.0/24"] }, // outside the allowed ranges
    ]);
    const m = await eventually(
      "problems counted",
      () => metricsOf(r),
      (text) => sample(text, 'hydra_route_errors_total{kind="missing_annotation"}') >= 1,
    );
    for (
      const kind of [
        "malformed_annotation",
        "overlapping_cidr",
        "cidr_contains_node_address",
        "cidr_not_allowed",
        "missing_annotation",
        "protocol_clash",
      ]
    ) {
      assert.ok(sample(m, `hydra_route_errors_total{kind="${kind}"}`) >= 1, kind);
      assert.ok(sample(m, `hydra_route_problems{kind="${kind}"}`) >= 1, kind);
    }
    // n2 keeps its route; n4, n5 (red only) and n8 (red only) still get their default-network routes.
    assert.deepEqual(await routesOf(self, "202"), [
      "10.244.2.0/24 via 192.168.60.102",
      "10.244.3.0/24 via 192.168.60.103",
      "10.244.4.0/24 via 192.168.60.104",
      "10.244.5.0/24 via 192.168.60.105",
      "10.244.8.0/24 via 192.168.60.108",
    ]);
    assert.deepEqual(await routesOf(self, "203"), [
      "10.246.2.0/24 via 10.246.2.0",
      "10.246.3.0/24 via 10.246.3.0",
      "10.246.6.0/24 via 10.246.6.0",
      "10.246.7.0/24 via 10.246.7.0",
      "10.246.9.0/24 via 10.246.9.0",
    ]);
    const log = await Deno.readTextFile(r.logFile);
    for (
      const re of [
        /10.246.4.0\/33\\", not a CIDR/,
        /192.168.60.999\\", not an address/,
        /CIDR 10.244.2.128\/25 of node n6 overlaps node n2's 10.244.2.0\/24/,
        /CIDR 192.168.60.0\/28 of node n7 contains this node's address 192.168.60.11/,
        /node n8 has no annotation hydra.clusternet.io\/red.cidr/,
        /node n9: spec.podCIDRs claims 8.8.8.0\/24, outside the ranges network default allows/,
        /route protocol 203 is already network red's/,
      ]
    ) assert.match(log, re);

    // A node list that does not parse changes nothing.
    const before = sample(await metricsOf(r), 'hydra_route_errors_total{kind="source"}');
    await Deno.writeTextFile(nodesFile, "nodes: [ { name: broken");
    await eventually(
      "the broken list noticed",
      () => metricsOf(r),
      (text) => sample(text, 'hydra_route_errors_total{kind="source"}') > before,
    );
    assert.equal((await routesOf(self, "202")).length, 5);
    assert.match(await Deno.readTextFile(r.logFile), /not YAML or JSON/);
    // Nor does an empty one (a writer that truncated and has not written yet).
    const broken = sample(await metricsOf(r), 'hydra_route_errors_total{kind="source"}');
    await Deno.writeTextFile(nodesFile, "");
    await eventually(
      "the empty list noticed",
      () => metricsOf(r),
      (text) => sample(text, 'hydra_route_errors_total{kind="source"}') > broken,
    );
    assert.equal((await routesOf(self, "202")).length, 5);
    assert.equal((await routesOf(self, "203")).length, 5);
    assert.equal((await stopRouter(r)).code, 0);
    router = undefined;
  } finally {
    if (router) await stopRouter(router);
    await destroyWorld(world);
  }
});
