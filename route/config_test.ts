import assert from "node:assert/strict";
import { ConfigError, parseRouterConfig } from "./config.ts";

Deno.test("networks file: defaults for the default network and annotations for the others", async () => {
  const { networks, problems } = await parseRouterConfig(`
networks:
  - name: default
    allowedCIDRs: [10.244.0.0/16]
  - name: blue
    allowedCIDRs: "10.245.1.7/16, fd45::/48"
    protocol: 203
    table: 100
    metric: 10
    mtu: 1400
  - name: red
    allowedCIDRs: [10.246.0.0/16]
    mode: vxlan
    protocol: 204
    vxlan: { device: vx-red, vni: 7, underlayDevice: eth0 }
`);
  assert.deepEqual(problems, []);
  assert.deepEqual(networks[0], {
    name: "default",
    mode: "routed",
    protocol: 202,
    table: 254,
    allowedCIDRs: ["10.244.0.0/16"],
    cidrAnnotation: "",
    addressAnnotation: "",
  });
  assert.equal(networks[1].cidrAnnotation, "hydra.clusternet.io/blue.cidr");
  assert.equal(networks[1].addressAnnotation, "hydra.clusternet.io/blue.address");
  assert.equal(networks[1].table, 100);
  // Comma-separated as a flag gives them; host bits cleared.
  assert.deepEqual(networks[1].allowedCIDRs, ["10.245.0.0/16", "fd45::/48"]);
  assert.equal(networks[1].metric, 10);
  assert.deepEqual(networks[2].vxlan, {
    owner: "router",
    device: "vx-red",
    vni: 7,
    port: 8472,
    underlayDevice: "eth0",
  });
});

Deno.test("vxlan devices: vx-<network> by default, hydravx<vni> when the hydra-vxlan plugin owns it", async () => {
  const { networks } = await parseRouterConfig(`
networks:
  - { allowedCIDRs: [10.0.0.0/8], name: red, mode: vxlan, vxlan: { vni: 7 } }
  - { allowedCIDRs: [10.0.0.0/8], name: green, mode: vxlan, protocol: 205, vxlan: { owner: plugin, vni: 42 } }
`);
  assert.equal(networks[0].vxlan!.device, "vx-red");
  assert.deepEqual(networks[1].vxlan, {
    owner: "plugin",
    device: "hydravx42",
    vni: 42,
    port: 8472,
  });
  await assert.rejects(
    () =>
      parseRouterConfig(
        "networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, mode: vxlan, vxlan: { vni: 1, owner: cni } }]",
      ),
    /vxlan.owner must be "router" or "plugin"/,
  );
});

Deno.test("networks file as JSON, and a bare list", async () => {
  const json = await parseRouterConfig(
    '{"networks":[{"name":"a","allowedCIDRs":["10.0.0.0/8"],"cidrAnnotation":"x.io/c"}]}',
  );
  assert.equal(json.networks[0].cidrAnnotation, "x.io/c");
  assert.equal(json.networks[0].addressAnnotation, "hydra.clusternet.io/a.address");
  assert.equal(
    (await parseRouterConfig("- { name: default, allowedCIDRs: [10.0.0.0/8] }")).networks.length,
    1,
  );
});

Deno.test("a protocol clash leaves the later network out with a problem, the rest stays", async () => {
  const { networks, problems } = await parseRouterConfig(`
networks:
  - { allowedCIDRs: [10.0.0.0/8], name: default }
  - { allowedCIDRs: [10.0.0.0/8], name: blue }
  - { allowedCIDRs: [10.0.0.0/8], name: green, protocol: 205 }
`);
  assert.deepEqual(networks.map((n) => n.name), ["default", "green"]);
  assert.equal(problems.length, 1);
  assert.equal(problems[0].kind, "protocol_clash");
  assert.equal(problems[0].network, "blue");
  assert.match(problems[0].message, /protocol 202 is already network default's/);
});

Deno.test("vxlan device or VNI used twice leaves the later network out", async () => {
  const { networks, problems } = await parseRouterConfig(`
networks:
  - { allowedCIDRs: [10.0.0.0/8], name: a, protocol: 210, mode: vxlan, vxlan: { device: vx0, vni: 1 } }
  - { allowedCIDRs: [10.0.0.0/8], name: b, protocol: 211, mode: vxlan, vxlan: { device: vx0, vni: 2 } }
  - { allowedCIDRs: [10.0.0.0/8], name: c, protocol: 212, mode: vxlan, vxlan: { device: vx1, vni: 1 } }
  - { allowedCIDRs: [10.0.0.0/8], name: d, protocol: 213, mode: vxlan, vxlan: { device: vx2, vni: 1, port: 4789 } }
`);
  assert.deepEqual(networks.map((n) => n.name), ["a", "d"]);
  assert.deepEqual(problems.map((p) => p.network), ["b", "c"]);
});

Deno.test("bad networks files are refused with the entry and key named", async () => {
  const cases: [string, RegExp][] = [
    ["", /non-empty "networks" list/],
    ["networks: []", /non-empty/],
    ["networks: [{ allowedCIDRs: [10.0.0.0/8], name: Bad_Name }]", /DNS label/],
    [
      "networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, mode: bgp }]",
      /mode must be "routed" or "vxlan"/,
    ],
    [
      "networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, protocol: 3 }]",
      /protocol must be a whole number from 5 to 255/,
    ],
    ["networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, protocol: 256 }]", /protocol/],
    ["networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, table: 255 }]", /kernel's/],
    ["networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, mode: vxlan }]", /needs a "vxlan" object/],
    [
      "networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, vxlan: { device: x, vni: 1 } }]",
      /vxlan given for a routed network/,
    ],
    [
      "networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, mode: vxlan, vxlan: { device: waytoolongdevicename, vni: 1 } }]",
      /device name/,
    ],
    [
      "networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, mode: vxlan, vxlan: { device: x, vni: 0 } }]",
      /vni/,
    ],
    [
      "networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, mode: vxlan, vxlan: { device: x, vni: 1, local: nope } }]",
      /not an address/,
    ],
    ["networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, colour: red }]", /unknown key "colour"/],
    [
      "networks: [{ allowedCIDRs: [10.0.0.0/8], name: a, cidrAnnotation: 'not a key!' }]",
      /not an annotation key/,
    ],
    ["networks: [{ allowedCIDRs: [10.0.0.0/8], name: a }", /not YAML or JSON/],
    ["networks: [{ name: a }]", /network a: allowedCIDRs is missing: list the ranges/],
    ["networks: [{ name: a, allowedCIDRs: [] }]", /allowedCIDRs must be a non-empty list/],
    ["networks: [{ name: a, allowedCIDRs: [10.0.0.1] }]", /entry "10.0.0.1" is not a CIDR/],
    ["networks: [{ name: a, allowedCIDRs: 7 }]", /non-empty list of CIDRs/],
  ];
  for (const [text, re] of cases) {
    await assert.rejects(() => parseRouterConfig(text, "net.yaml"), (err: unknown) => {
      assert.ok(err instanceof ConfigError, text);
      assert.match(err.message, re, text);
      assert.match(err.message, /^net\.yaml: /, text);
      return true;
    });
  }
});
