import assert from "node:assert/strict";
import { catchCni } from "../tests/cni/helpers.ts";
import { convertResult, fromInternal, parseResult, toInternal } from "./convert.ts";
import type { AnyResult, LegacyResult, Result } from "./types.ts";
import { SUPPORTED_VERSIONS } from "./types.ts";

/** A 1.1.0 result using every field, both families. */
const rich: Result = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "br0", mac: "0a:58:0a:01:00:01", mtu: 1400 },
    {
      name: "eth0",
      mac: "0a:58:0a:01:00:05",
      mtu: 1400,
      sandbox: "/run/netns/pod",
      socketPath: "/run/vhost.sock",
      pciID: "0000:04:00.5",
    },
  ],
  ips: [
    { interface: 1, address: "10.1.0.5/16", gateway: "10.1.0.1" },
    { interface: 1, address: "10.2.0.5/24" },
    { interface: 1, address: "fd00::5/64", gateway: "fd00::1" },
  ],
  routes: [
    {
      dst: "0.0.0.0/0",
      gw: "10.1.0.1",
      mtu: 1300,
      advmss: 1200,
      priority: 10,
      table: 100,
      scope: 0,
    },
    { dst: "192.168.0.0/16" },
    { dst: "::/0", gw: "fd00::1", priority: 5 },
  ],
  dns: {
    nameservers: ["10.96.0.10"],
    domain: "cluster.local",
    search: ["svc"],
    options: ["ndots:5"],
  },
};

const LEGACY = ["0.1.0", "0.2.0"];
const ZERO_THREE = ["0.3.0", "0.3.1", "0.4.0"];
const ONE = ["1.0.0", "1.1.0"];

/** Checks `r` has exactly the shape the spec defines for `version`. */
function assertShape(r: AnyResult, version: string, from: string) {
  assert.equal(r.cniVersion, version);
  const keys = Object.keys(r);
  if (LEGACY.includes(version)) {
    const l = r as LegacyResult;
    assert.deepEqual(keys.filter((k) => !["cniVersion", "ip4", "ip6", "dns"].includes(k)), []);
    assert.deepEqual(l.ip4, {
      ip: "10.1.0.5/16",
      gateway: "10.1.0.1",
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }, { dst: "192.168.0.0/16" }],
    });
    assert.deepEqual(l.ip6, {
      ip: "fd00::5/64",
      gateway: "fd00::1",
      routes: [{ dst: "::/0", gw: "fd00::1" }],
    });
    assert.deepEqual(l.dns, rich.dns);
    return;
  }
  const m = r as Result;
  assert.deepEqual(
    keys.filter((k) => !["cniVersion", "interfaces", "ips", "routes", "dns"].includes(k)),
    [],
  );
  assert.deepEqual(m.dns, rich.dns);
  const fromLegacy = LEGACY.includes(from);
  const keep11 = ONE.includes(version) && ONE.includes(from);
  if (fromLegacy) {
    // 0.1/0.2 know one address per family and no interfaces.
    assert.equal(m.interfaces, undefined);
    assert.deepEqual(m.ips?.map((ip) => ip.address), ["10.1.0.5/16", "fd00::5/64"]);
    assert.deepEqual(m.routes, [
      { dst: "0.0.0.0/0", gw: "10.1.0.1" },
      { dst: "192.168.0.0/16" },
      { dst: "::/0", gw: "fd00::1" },
    ]);
  } else {
    assert.equal(m.interfaces?.length, 2);
    assert.deepEqual(m.ips?.map((ip) => ip.address), rich.ips!.map((ip) => ip.address));
    assert.deepEqual(m.ips?.map((ip) => ip.interface), [1, 1, 1]);
    assert.equal(m.interfaces![1].sandbox, "/run/netns/pod");
    assert.equal(m.interfaces![1].mac, "0a:58:0a:01:00:05");
    if (keep11) {
      assert.deepEqual(m.interfaces, rich.interfaces);
      assert.deepEqual(m.routes, rich.routes);
    } else {
      for (const i of m.interfaces!) {
        assert.equal(i.mtu, undefined);
        assert.equal(i.socketPath, undefined);
        assert.equal(i.pciID, undefined);
      }
      assert.deepEqual(m.routes, [
        { dst: "0.0.0.0/0", gw: "10.1.0.1" },
        { dst: "192.168.0.0/16" },
        { dst: "::/0", gw: "fd00::1" },
      ]);
    }
  }
  if (ZERO_THREE.includes(version)) {
    assert.deepEqual(
      m.ips?.map((ip) => ip.version),
      m.ips?.map((ip) => (ip.address.includes(":") ? "6" : "4")),
    );
  } else {
    for (const ip of m.ips ?? []) assert.equal("version" in ip, false);
  }
}

for (const from of SUPPORTED_VERSIONS) {
  for (const to of SUPPORTED_VERSIONS) {
    Deno.test(`convertResult ${from} -> ${to} applies the spec's field changes`, () => {
      const source = convertResult(rich, from);
      assertShape(source, from, "1.1.0");
      const before = structuredClone(source);
      const out = convertResult(source, to);
      assert.deepEqual(source, before, "input not modified");
      assertShape(out, to, from);
      // Printed JSON parses back to the same result.
      assert.deepEqual(parseResult(JSON.parse(JSON.stringify(out))), out);
    });
  }
}

Deno.test("0.2.0 -> 0.3.1: ip4/ip6 become ips with version, routes concatenated", () => {
  const legacy: LegacyResult = {
    cniVersion: "0.2.0",
    ip4: { ip: "10.0.0.2/24", gateway: "10.0.0.1", routes: [{ dst: "0.0.0.0/0" }] },
    ip6: { ip: "2001:db8::2/64", routes: [{ dst: "::/0", gw: "2001:db8::1" }] },
  };
  assert.deepEqual(convertResult(legacy, "0.3.1"), {
    cniVersion: "0.3.1",
    ips: [
      { version: "4", address: "10.0.0.2/24", gateway: "10.0.0.1" },
      { version: "6", address: "2001:db8::2/64" },
    ],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0", gw: "2001:db8::1" }],
  });
});

Deno.test("1.0.0 -> 0.2.0: first address per family; routes follow their family", () => {
  const r: Result = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "eth0" }],
    ips: [{ address: "10.0.0.2/24", interface: 0 }, { address: "10.0.0.3/24" }],
    routes: [{ dst: "::/0" }, { dst: "10.9.0.0/16", gw: "10.0.0.1" }],
  };
  // No v6 address: the v6 route has nowhere to go and is dropped.
  assert.deepEqual(convertResult(r, "0.2.0"), {
    cniVersion: "0.2.0",
    ip4: { ip: "10.0.0.2/24", routes: [{ dst: "10.9.0.0/16", gw: "10.0.0.1" }] },
  });
});

Deno.test("a result without addresses cannot go to 0.1.0/0.2.0 (code 1)", () => {
  const r: Result = { cniVersion: "1.0.0", interfaces: [{ name: "eth0", sandbox: "/x" }] };
  for (const to of LEGACY) {
    const err = catchCni(() => convertResult(r, to));
    assert.equal(err.code, 1);
    assert.match(err.message, /no valid IP addresses/);
  }
  // Upward and sideways it is fine.
  assert.deepEqual(convertResult(r, "0.4.0"), {
    cniVersion: "0.4.0",
    interfaces: [{ name: "eth0", sandbox: "/x" }],
  });
});

Deno.test("0.1.0 <-> 0.2.0 copies; empty version means 0.1.0", () => {
  const r = { cniVersion: "", ip4: { ip: "10.0.0.2/24" } } as LegacyResult;
  assert.deepEqual(convertResult(r, "0.2.0"), { cniVersion: "0.2.0", ip4: { ip: "10.0.0.2/24" } });
  assert.deepEqual(convertResult(r, ""), { cniVersion: "0.1.0", ip4: { ip: "10.0.0.2/24" } });
});

Deno.test("toInternal/fromInternal round-trip 0.4.0 results", () => {
  const r: Result = {
    cniVersion: "0.4.0",
    interfaces: [{ name: "eth0", mac: "aa:bb:cc:dd:ee:ff", sandbox: "/run/netns/x" }],
    ips: [{ version: "4", interface: 0, address: "10.0.0.2/24", gateway: "10.0.0.1" }],
    routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }],
    dns: { nameservers: ["1.1.1.1"] },
  };
  const internal = toInternal(r);
  assert.equal(internal.cniVersion, "1.1.0");
  assert.equal(internal.ips![0].version, undefined);
  assert.deepEqual(fromInternal(internal, "0.4.0"), r);
});

Deno.test("conversion to an unknown version is code 1", () => {
  assert.equal(catchCni(() => convertResult(rich, "2.0.0")).code, 1);
  assert.equal(catchCni(() => convertResult({ ...rich, cniVersion: "0.5.0" }, "1.0.0")).code, 1);
});

Deno.test("parseResult: missing cniVersion takes the config's; unknown keys are dropped", () => {
  const r = parseResult({ ips: [{ address: "10.0.0.2/24", extra: 1 }], foo: "bar" }, "1.0.0");
  assert.deepEqual(r, { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }] });
  // 0.3.x/0.4.0 without the required version get it from the address.
  assert.deepEqual(parseResult({ cniVersion: "0.4.0", ips: [{ address: "fd00::2/64" }] }), {
    cniVersion: "0.4.0",
    ips: [{ version: "6", address: "fd00::2/64" }],
  });
  // An empty dns is left out.
  assert.deepEqual(parseResult({ cniVersion: "1.1.0", dns: {} }), { cniVersion: "1.1.0" });
});

Deno.test("parseResult rejects malformed results with code 6 naming the field", () => {
  const cases: [unknown, RegExp][] = [
    ["text", /not a JSON object/],
    [{ cniVersion: "1.0.0", ips: [{ address: "10.0.0.300/24" }] }, /ips\[0\]\.address/],
    [{ cniVersion: "1.0.0", ips: [{ address: "10.0.0.3" }] }, /ips\[0\]\.address/],
    [{ cniVersion: "1.0.0", ips: [{ address: "10.0.0.3/24", gateway: "x" }] }, /ips\[0\]\.gateway/],
    [{ cniVersion: "1.0.0", routes: [{ gw: "10.0.0.1" }] }, /routes\[0\]\.dst/],
    [{ cniVersion: "1.0.0", interfaces: [{ mac: "x" }] }, /interfaces\[0\]\.name/],
    [{ cniVersion: "0.2.0", ip4: { ip: "nope" } }, /ip4\.ip/],
    [{ cniVersion: "0.4.0", ips: [{ version: "5", address: "10.0.0.3/24" }] }, /ips\[0\]\.version/],
    [{ cniVersion: 1 }, /cniVersion/],
  ];
  for (const [raw, re] of cases) {
    const err = catchCni(() => parseResult(raw));
    assert.equal(err.code, 6, JSON.stringify(raw));
    assert.match(err.message, re);
  }
  assert.equal(catchCni(() => parseResult({ cniVersion: "0.9.0" })).code, 1);
});
