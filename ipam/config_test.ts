import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../cni/errors.ts";
import type { NetConf } from "../cni/types.ts";
import { DEFAULT_DATA_DIR, loadHostLocalConfig, loadStoreLocation } from "./config.ts";
import { formatIpAddr } from "../ipaddr/ip.ts";
import { rangeSetToString } from "./range.ts";

function conf(ipam: Record<string, unknown>, extra: Partial<NetConf> = {}): NetConf {
  return {
    cniVersion: "1.0.0",
    name: "net",
    type: "bridge",
    ipam: { type: "hydra-ipam", ...ipam },
    ...extra,
  };
}

function rejects(
  c: NetConf,
  message: string | RegExp,
  code: number = ErrorCode.InvalidNetworkConfig,
  args = "",
) {
  assert.throws(() => loadHostLocalConfig(c, args), (err: unknown) => {
    assert.ok(err instanceof CniError, String(err));
    assert.equal(err.code, code);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

const sets = (c: NetConf, args = "") =>
  loadHostLocalConfig(c, args).rangeSets.map(rangeSetToString);

Deno.test("a bare subnet gets host-local's defaults", () => {
  const cfg = loadHostLocalConfig(conf({ subnet: "10.1.2.0/24" }), "");
  const [r] = cfg.rangeSets[0];
  assert.equal(formatIpAddr(r.rangeStart), "10.1.2.1");
  assert.equal(formatIpAddr(r.rangeEnd), "10.1.2.254"); // the broadcast address is never handed out
  assert.equal(formatIpAddr(r.gateway), "10.1.2.1");
  assert.equal(cfg.dataDir, DEFAULT_DATA_DIR);
  assert.equal(cfg.name, "net");
  assert.deepEqual(cfg.routes, []);
  const v6 =
    loadHostLocalConfig(conf({ ranges: [[{ subnet: "fd00:1::/64" }]] }), "").rangeSets[0][0];
  assert.equal(formatIpAddr(v6.rangeEnd), "fd00:1::ffff:ffff:ffff:ffff");
});

Deno.test("explicit start, end and gateway are kept", () => {
  const c = conf({
    ranges: [[{
      subnet: "10.1.0.0/16",
      rangeStart: "10.1.5.10",
      rangeEnd: "10.1.5.20",
      gateway: "10.1.0.254",
    }]],
  });
  const [r] = loadHostLocalConfig(c, "").rangeSets[0];
  assert.equal(rangeSetToString([r]), "10.1.5.10-10.1.5.20");
  assert.equal(formatIpAddr(r.gateway), "10.1.0.254");
});

Deno.test("range sets come in host-local's order: runtime ipRanges, legacy subnet, ranges", () => {
  const c = conf(
    { subnet: "10.2.0.0/24", ranges: [[{ subnet: "fd00::/120" }], [{ subnet: "10.3.0.0/24" }]] },
    { runtimeConfig: { ipRanges: [[{ subnet: "10.1.0.0/24" }]] } },
  );
  assert.deepEqual(sets(c), [
    "10.1.0.1-10.1.0.254",
    "10.2.0.1-10.2.0.254",
    "fd00::1-fd00::ff",
    "10.3.0.1-10.3.0.254",
  ]);
});

Deno.test("subnets too small to allocate from are rejected", () => {
  rejects(
    conf({ subnet: "10.0.0.0/31" }),
    "invalid range set 0: Network 10.0.0.0/31 too small to allocate from",
  );
  rejects(conf({ subnet: "10.0.0.1/32" }), /Network 10\.0\.0\.1\/32 too small/);
  rejects(conf({ ranges: [[{ subnet: "fd00::/127" }]] }), /fd00::\/127 too small/);
  assert.equal(sets(conf({ subnet: "10.0.0.0/30" }))[0], "10.0.0.1-10.0.0.2");
});

Deno.test("a subnet with host bits set names its network address", () => {
  rejects(
    conf({ subnet: "10.0.0.5/24" }),
    "invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.0.0.0",
  );
});

Deno.test("start and end must lie in the subnet and in order", () => {
  rejects(
    conf({ subnet: "10.0.0.0/24", rangeStart: "10.0.1.1" }),
    "invalid range set 0: RangeStart 10.0.1.1 not in network 10.0.0.0/24",
  );
  rejects(
    conf({ subnet: "10.0.0.0/24", rangeEnd: "10.0.1.1" }),
    "invalid range set 0: RangeEnd 10.0.1.1 not in network 10.0.0.0/24",
  );
  rejects(
    conf({ subnet: "10.0.0.0/24", rangeStart: "10.0.0.50", rangeEnd: "10.0.0.40" }),
    /RangeStart 10\.0\.0\.50 is after RangeEnd 10\.0\.0\.40/,
  );
  rejects(
    conf({ subnet: "10.0.0.0/24", rangeStart: "fd00::1" }),
    /RangeStart fd00::1 not in network/,
  );
  rejects(
    conf({ subnet: "10.0.0.0/24", gateway: "fd00::1" }),
    /gateway fd00::1 is not of the family/,
  );
});

Deno.test("malformed addresses are config errors naming the field", () => {
  rejects(
    conf({ subnet: "10.0.0.0/40" }),
    "invalid range set 0: invalid CIDR address: 10.0.0.0/40",
  );
  rejects(
    conf({ subnet: "10.0.0.0/24", rangeStart: "10.0.0.300" }),
    /invalid IP address in rangeStart: "10\.0\.0\.300"/,
  );
  rejects(
    conf({ ranges: [[{ rangeStart: "10.0.0.1" }]] }),
    "invalid range set 0: subnet is required",
  );
  rejects(conf({ ranges: [[]] }), "invalid range set 0: empty range set");
  rejects(conf({ ranges: [{ subnet: "10.0.0.0/24" }] }), /a range set must be a list of ranges/);
  rejects(conf({ ranges: "10.0.0.0/24" }), "ipam.ranges must be a list");
  rejects(
    conf({ ranges: [[{ subnet: "::ffff:10.0.0.0/104" }]] }),
    /IPNet IP and Mask version mismatch/,
  );
});

Deno.test("a range set is one family without overlaps", () => {
  rejects(
    conf({ ranges: [[{ subnet: "10.0.0.0/24" }, { subnet: "fd00::/64" }]] }),
    "invalid range set 0: mixed address families",
  );
  rejects(
    conf({ ranges: [[{ subnet: "10.0.0.0/16" }, { subnet: "10.0.5.0/24" }]] }),
    "invalid range set 0: subnets 10.0.0.1-10.0.255.254 and 10.0.5.1-10.0.5.254 overlap",
  );
  // Two pools of one subnet are fine as long as they do not share an address.
  assert.deepEqual(
    sets(conf({
      ranges: [[
        { subnet: "10.0.0.0/24", rangeStart: "10.0.0.10", rangeEnd: "10.0.0.19" },
        { subnet: "10.0.0.0/24", rangeStart: "10.0.0.20", rangeEnd: "10.0.0.29" },
      ]],
    })),
    ["10.0.0.10-10.0.0.19,10.0.0.20-10.0.0.29"],
  );
});

Deno.test("range sets must be disjoint", () => {
  rejects(
    conf({
      ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00::/64" }], [{ subnet: "10.0.0.0/25" }]],
    }),
    "range set 0 overlaps with 2",
  );
});

Deno.test("several addresses of one family need CNI 0.3.0 or newer", () => {
  const two = { ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "10.1.0.0/24" }]] };
  rejects(
    conf(two, { cniVersion: "0.2.0" }),
    "CNI version 0.2.0 does not support more than 1 address per family",
  );
  assert.equal(sets(conf(two, { cniVersion: "0.3.0" })).length, 2);
  // One per family is fine everywhere.
  assert.equal(
    sets(
      conf({ ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00::/64" }]] }, {
        cniVersion: "0.2.0",
      }),
    ).length,
    2,
  );
});

Deno.test("missing ipam or ranges, and bad network names", () => {
  rejects({ cniVersion: "1.0.0", name: "net", type: "x" }, "IPAM config missing 'ipam' key");
  rejects(conf({}), "no IP ranges specified");
  rejects(conf({ subnet: "10.0.0.0/24" }, { name: "../etc" }), /invalid network name/);
  rejects(conf({ subnet: "10.0.0.0/24" }, { name: "" }), /invalid network name/);
});

Deno.test("requested addresses: CNI_ARGS IP, then args.cni.ips, then runtimeConfig.ips", () => {
  const c = conf(
    { ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00::/64" }]] },
    {
      args: { cni: { ips: ["fd00::9/64", "10.0.0.7"] } },
      runtimeConfig: { ips: ["10.0.0.7/24", "10.0.0.8"] },
    },
  );
  const got = loadHostLocalConfig(c, "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.0.0.6").requestedIps.map(
    formatIpAddr,
  );
  assert.deepEqual(got, ["10.0.0.6", "fd00::9", "10.0.0.7", "10.0.0.8"]);
});

Deno.test("CNI_ARGS problems are code 4", () => {
  const c = conf({ subnet: "10.0.0.0/24" });
  rejects(c, /unknown args/, ErrorCode.InvalidEnvironmentVariables, "K8S_POD_NAME=p");
  rejects(c, /invalid pair/, ErrorCode.InvalidEnvironmentVariables, "IP");
  rejects(c, /IP=10\.0\.0\.300/, ErrorCode.InvalidEnvironmentVariables, "IP=10.0.0.300");
  assert.deepEqual(loadHostLocalConfig(c, "IP=").requestedIps, []);
  rejects(
    conf({ subnet: "10.0.0.0/24" }, { runtimeConfig: { ips: ["nope"] } }),
    /runtimeConfig\.ips\[0\]: invalid IP address "nope"/,
  );
});

Deno.test("routes are written back in canonical form, dataDir and resolvConf pass through", () => {
  const cfg = loadHostLocalConfig(
    conf({
      subnet: "10.0.0.0/24",
      dataDir: "/run/ipam",
      resolvConf: "/etc/resolv.conf",
      routes: [{ dst: "0.0.0.0/0" }, { dst: "2001:DB8:0::/48", gw: "2001:db8::0:1" }, {
        dst: "10.9.9.9/8",
        priority: 5,
      }],
    }),
    "",
  );
  assert.deepEqual(cfg.routes, [
    { dst: "0.0.0.0/0" },
    { dst: "2001:db8::/48", gw: "2001:db8::1" },
    { dst: "10.9.9.9/8", priority: 5 },
  ]);
  assert.equal(cfg.dataDir, "/run/ipam");
  assert.equal(cfg.resolvConf, "/etc/resolv.conf");
  rejects(conf({ subnet: "10.0.0.0/24", routes: [{ dst: "nope" }] }), /invalid CIDR address: nope/);
  rejects(
    conf({ subnet: "10.0.0.0/24", routes: [{ gw: "10.0.0.1" }] }),
    /dst must be a CIDR string/,
  );
});

Deno.test("DEL needs only the store location", () => {
  const loc = loadStoreLocation(conf({ subnet: "10.0.0.5/24", dataDir: "/x" }));
  assert.deepEqual(loc, { name: "net", dataDir: "/x" });
});
