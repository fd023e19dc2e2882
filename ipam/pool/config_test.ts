import assert from "node:assert/strict";
import { CniError } from "../../cni/errors.ts";
import { formatIpAddr } from "../../ipaddr/ip.ts";
import { loadPoolConfig, rangeAllows } from "./config.ts";
import { parseIpAddr } from "../../ipaddr/ip.ts";

const noEnv = { get: (_: string) => undefined } as unknown as typeof Deno.env;

function load(ipam: Record<string, unknown>, extra: Record<string, unknown> = {}, cniArgs = "") {
  return loadPoolConfig({
    config: {
      cniVersion: "1.0.0",
      name: "net",
      type: "macvlan",
      ipam: { type: "hydra-pool", ...ipam },
      ...extra,
    },
    args: cniArgs,
  }, noEnv);
}

function rejects(ipam: Record<string, unknown>, pattern: RegExp, extra = {}, cniArgs = "") {
  assert.throws(() => load(ipam, extra, cniArgs), (err: unknown) => {
    assert.ok(err instanceof CniError, String(err));
    assert.equal(err.code, 7, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

Deno.test("whereabouts range forms: CIDR, a-b/cidr, range_start/range_end", () => {
  const plain = load({ range: "10.1.0.0/24" });
  assert.equal(plain.ranges.length, 1);
  assert.equal(plain.ranges[0].spec.rangeStart, "10.1.0.1");
  assert.equal(plain.ranges[0].spec.rangeEnd, "10.1.0.254");
  assert.equal(plain.ranges[0].name, "10.1.0.0-24");

  const dashed = load({ range: "10.1.0.50-10.1.0.99/24" });
  assert.equal(dashed.ranges[0].spec.cidr, "10.1.0.0/24");
  assert.equal(dashed.ranges[0].spec.rangeStart, "10.1.0.50");
  assert.equal(dashed.ranges[0].spec.rangeEnd, "10.1.0.99");
  assert.match(dashed.ranges[0].name, /^10\.1\.0\.0-24-[0-9a-f]{10}$/);

  const keys = load({ range: "10.1.0.0/24", range_start: "10.1.0.10", range_end: "10.1.0.20" });
  assert.equal(keys.ranges[0].spec.rangeStart, "10.1.0.10");
  assert.equal(keys.ranges[0].spec.rangeEnd, "10.1.0.20");
  // The same window written either way is the same pool.
  assert.equal(load({ range: "10.1.0.10-10.1.0.20/24" }).ranges[0].name, keys.ranges[0].name);
});

Deno.test("dual stack with ipRanges, network_name in names, gateway per family", () => {
  const cfg = load({
    range: "10.2.0.0/16",
    ipRanges: [{ range: "fd00:2::/64", exclude: ["fd00:2::1/128"] }],
    network_name: "blue",
    gateway: "10.2.0.1",
    routes: [{ dst: "0.0.0.0/0" }],
  });
  assert.equal(cfg.ranges.length, 2);
  assert.equal(cfg.networkKey, "blue");
  assert.equal(cfg.ranges[0].name, "blue.10.2.0.0-16");
  assert.match(cfg.ranges[1].name, /^blue\.fd00-2--0-64-[0-9a-f]{10}$/);
  assert.equal(formatIpAddr(cfg.ranges[0].gateway!), "10.2.0.1");
  assert.equal(cfg.ranges[1].gateway, undefined);
  assert.equal(
    rangeAllows(cfg.ranges[0], parseIpAddr("10.2.0.1")!),
    false,
    "the gateway is never handed out",
  );
  assert.equal(rangeAllows(cfg.ranges[1], parseIpAddr("fd00:2::1")!), false);
  assert.equal(rangeAllows(cfg.ranges[1], parseIpAddr("fd00:2::2")!), true);
  assert.equal(cfg.routes[0].dst, "0.0.0.0/0");
  assert.equal(cfg.overlapping, true, "whereabouts' default");
});

Deno.test("a network_name that is not a DNS label becomes a hashed key", () => {
  const cfg = load({ range: "10.3.0.0/24", network_name: "Tenant_A" });
  assert.match(cfg.networkKey, /^n-[0-9a-f]{12}$/);
  assert.ok(cfg.ranges[0].name.startsWith(`${cfg.networkKey}.`));
  assert.equal(cfg.ranges[0].spec.networkName, "Tenant_A");
});

Deno.test("exclusions: CIDRs and single addresses", () => {
  const cfg = load({ range: "10.4.0.0/28", exclude: ["10.4.0.0/30", "10.4.0.9"] });
  const allowed = (t: string) => rangeAllows(cfg.ranges[0], parseIpAddr(t)!);
  assert.equal(allowed("10.4.0.3"), false);
  assert.equal(allowed("10.4.0.4"), true);
  assert.equal(allowed("10.4.0.9"), false);
  assert.equal(allowed("10.4.0.15"), false, "the last address of the CIDR");
  assert.deepEqual(cfg.ranges[0].spec.exclude, ["10.4.0.0/30", "10.4.0.9/32"]);
});

Deno.test("static addresses from the selection: honoured, validated", () => {
  const rc = { runtimeConfig: { ips: ["10.5.0.7/24"] } };
  const cfg = load(
    { range: "10.5.0.0/24", ipRanges: [{ range: "fd05::/120" }] },
    rc,
    "IgnoreUnknown=1;IP=fd05::9",
  );
  assert.equal(formatIpAddr(cfg.statics.get(0)!), "10.5.0.7");
  assert.equal(formatIpAddr(cfg.statics.get(1)!), "fd05::9");
  rejects({ range: "10.5.0.0/24" }, /static address 10\.6\.0\.7 is outside every range/, {
    runtimeConfig: { ips: ["10.6.0.7"] },
  });
  rejects({ range: "10.5.0.0/24", exclude: ["10.5.0.0/29"] }, /10\.5\.0\.3 is excluded in pool/, {
    runtimeConfig: { ips: ["10.5.0.3"] },
  });
  rejects(
    { range: "10.5.0.100-10.5.0.200/24" },
    /10\.5\.0\.7 is outside 10\.5\.0\.100-10\.5\.0\.200/,
    {
      runtimeConfig: { ips: ["10.5.0.7"] },
    },
  );
  rejects({ range: "10.5.0.0/24", gateway: "10.5.0.1" }, /10\.5\.0\.1 is the gateway/, {
    runtimeConfig: { ips: ["10.5.0.1"] },
  });
  rejects({ range: "10.5.0.0/24" }, /both in pool/, {
    runtimeConfig: { ips: ["10.5.0.7", "10.5.0.8"] },
  });
  rejects({ range: "10.5.0.0/24" }, /invalid static address "banana"/, {
    runtimeConfig: { ips: ["banana"] },
  });
});

Deno.test("malformed ranges are clear errors (code 7)", () => {
  rejects({}, /no range/);
  rejects({ range: "10.0.0.0/33" }, /invalid CIDR/);
  rejects({ range: "banana" }, /invalid CIDR/);
  rejects({ range: 42 }, /must be a CIDR/);
  rejects({ range: "10.0.0.0/31" }, /too small/);
  rejects(
    { range: "10.0.0.9-10.0.0.3/24" },
    /range start 10\.0\.0\.9 is after range end 10\.0\.0\.3/,
  );
  rejects(
    { range: "10.9.0.1-10.0.0.3/24" },
    /range start 10\.9\.0\.1 is not inside 10\.0\.0\.0\/24/,
  );
  rejects({ range: "10.0.0.0/24", range_start: "nope" }, /range_start: invalid IP/);
  rejects({ range: "10.0.0.0/24", exclude: ["10.0.0.0/40"] }, /neither a CIDR nor an IP/);
  rejects({ range: "10.0.0.0/24", exclude: ["fd00::/64"] }, /not of the family/);
  rejects(
    { range: "10.0.0.0/24", ipRanges: [{ range: "10.0.0.128/25" }] },
    /ranges 0 .* and 1 .* overlap/,
  );
  rejects(
    { range: "10.0.0.0/24", enable_overlapping_ranges: "yes" },
    /enable_overlapping_ranges must be a boolean/,
  );
  rejects({ range: "10.0.0.0/24", apiTimeout: -1 }, /apiTimeout/);
  rejects({ range: "10.0.0.0/24", gateway: "x" }, /ipam.gateway: invalid IP/);
  rejects({ ipRanges: "10.0.0.0/24" }, /ipam.ipRanges must be a list/);
});

Deno.test("access: kubeconfig from whereabouts' kubernetes block, node from the environment", () => {
  const env = {
    get: (k: string) => (k === "NODE_NAME" ? "Worker-7" : undefined),
  } as unknown as typeof Deno.env;
  const cfg = loadPoolConfig({
    config: {
      cniVersion: "0.3.1",
      name: "n",
      type: "macvlan",
      ipam: {
        type: "hydra-pool",
        range: "10.0.0.0/24",
        kubernetes: { kubeconfig: "/k" },
        daemonSocket: "",
      },
    },
    args: "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_UID=u1",
  }, env);
  assert.equal(cfg.kubeconfig, "/k");
  assert.equal(cfg.nodeName, "worker-7");
  assert.equal(cfg.daemonSocket, undefined);
  assert.deepEqual(cfg.pod, { namespace: "ns", name: "p", uid: "u1" });
  assert.equal(cfg.apiTimeoutMs, 10_000);
});
