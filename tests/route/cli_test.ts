/** `hydra route sync` on the command line: usage, exit codes, --once for scripts. */

import assert from "node:assert/strict";
import { outputInNetns } from "../../netlink/netns_spawn.ts";
import { createWorld, destroyWorld, hydraBin, routesOf } from "./world.ts";

async function hydra(args: string[], netnsPath?: string, env: Record<string, string> = {}) {
  const out = await outputInNetns(netnsPath, hydraBin, {
    args,
    env: { KUBERNETES_SERVICE_HOST: "", ...env },
  });
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("hydra route: help, and bad usage exits 2 with the reason", async () => {
  const help = await hydra(["route", "sync", "--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: hydra route sync/);
  assert.match(help.stdout, /--health-addr ADDR/);
  assert.match((await hydra(["--help"])).stdout, /route +keep pod networks routed/);
  const cases: [string[], RegExp][] = [
    [["route"], /Usage: hydra route sync/],
    [["route", "flush"], /unknown subcommand "flush"/],
    [["route", "sync", "--bogus"], /bogus/],
    [["route", "sync", "--nodes-file", "a", "--kubeconfig", "b"], /pick one/],
    [["route", "sync", "--vni", "5"], /--vni needs --mode vxlan/],
    [["route", "sync", "--protocol", "2"], /protocol must be a whole number from 5 to 255/],
    [["route", "sync", "--health-addr", "nowhere"], /not \[HOST\]:PORT or unix:PATH/],
    [["route", "sync", "--config", "x.yaml", "--mode", "vxlan"], /--config and --mode conflict/],
    [["route", "sync", "--once", "--node-name", "n1"], /--allowed-cidrs is missing/],
    [
      ["route", "sync", "--once", "--node-name", "n1", "--allowed-cidrs", "10.0.0.0/8"],
      /no node source/,
    ],
    [["route", "sync", "--allowed-cidrs", "10.0.0.1"], /entry "10.0.0.1" is not a CIDR/],
  ];
  for (const [args, re] of cases) {
    const r = await hydra(args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr + r.stdout, re, args.join(" "));
  }
});

Deno.test("hydra route sync: an unreadable networks file exits 1 with the path", async () => {
  const r = await hydra([
    "route",
    "sync",
    "--once",
    "--config",
    "/nonexistent/networks.yaml",
    "--nodes-file",
    "/nonexistent/nodes.yaml",
    "--node-name",
    "n1",
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot read \/nonexistent\/networks.yaml/);
});

Deno.test("hydra route sync --once: single network from flags, JSON summary; a config clash exits 1 but syncs the rest", async () => {
  const world = await createWorld(1);
  try {
    const [self] = world.nodes;
    const nodesFile = `${world.dir}/nodes.json`;
    await Deno.writeTextFile(
      nodesFile,
      JSON.stringify({
        nodes: [
          { name: "node1", podCIDRs: ["10.244.1.0/24"], addresses: [self.address] },
          { name: "node2", podCIDRs: ["10.244.2.0/24"], addresses: ["192.168.60.12"] },
        ],
      }),
    );
    const once = await hydra(
      [
        "route",
        "sync",
        "--once",
        "--nodes-file",
        nodesFile,
        "--node-name",
        "node1",
        "--protocol",
        "210",
        "--allowed-cidrs",
        "10.244.0.0/16",
      ],
      self.ns.path,
    );
    assert.equal(once.code, 0, once.stderr);
    const summary = JSON.parse(once.stdout);
    assert.equal(summary.routes, 1);
    assert.equal(summary.ok, true);
    assert.equal(summary.changes.routesAdded, 1);
    assert.deepEqual(await routesOf(self, "210"), ["10.244.2.0/24 via 192.168.60.12"]);
    // Run again: nothing to do.
    const again = await hydra(
      [
        "route",
        "sync",
        "--once",
        "--nodes-file",
        nodesFile,
        "--node-name",
        "node1",
        "--protocol",
        "210",
        "--allowed-cidrs",
        "10.244.0.0/16",
      ],
      self.ns.path,
    );
    assert.equal(JSON.parse(again.stdout).changes.routesAdded, 0);

    // Now with a networks file where "blue" takes default's protocol, and a third node.
    await Deno.writeTextFile(
      nodesFile,
      JSON.stringify({
        nodes: [
          { name: "node1", podCIDRs: ["10.244.1.0/24"], addresses: [self.address] },
          { name: "node2", podCIDRs: ["10.244.2.0/24"], addresses: ["192.168.60.12"] },
          { name: "node3", podCIDRs: ["10.244.3.0/24"], addresses: ["192.168.60.13"] },
        ],
      }),
    );
    const config = `${world.dir}/clash.yaml`;
    await Deno.writeTextFile(
      config,
      "networks:\n  - { name: default, allowedCIDRs: [10.244.0.0/16] }\n" +
        "  - { name: blue, allowedCIDRs: [10.245.0.0/16] }\n",
    );
    const clash = await hydra(
      [
        "route",
        "sync",
        "--once",
        "--config",
        config,
        "--nodes-file",
        nodesFile,
        "--node-name",
        "node1",
      ],
      self.ns.path,
    );
    assert.equal(clash.code, 1);
    assert.match(clash.stderr, /route protocol 202 is already network default's/);
    // node2's destination is held by the protocol 210 route of the first run: left alone.
    assert.match(
      clash.stderr,
      /route 10.244.2.0\/24 \(table 254\) to node node2 is held by a route of another protocol/,
    );
    assert.deepEqual(await routesOf(self, "202"), ["10.244.3.0/24 via 192.168.60.13"]);
    assert.deepEqual(await routesOf(self, "210"), ["10.244.2.0/24 via 192.168.60.12"]);
  } finally {
    await destroyWorld(world);
  }
});
