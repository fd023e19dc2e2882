/**
 * The config shapes against the mistakes users make, and against the
 * parsers: every key a parser reads must be declared in its kind's shape
 * (so doctor and the installer never call a key unknown that hydra uses).
 */

import assert from "node:assert/strict";
import { CniError } from "../cni/errors.ts";
import type { CmdArgs, NetConf } from "../cni/types.ts";
import type { Shape } from "../pkg/schema.ts";
import { checkNetworkConfig } from "./conf_check.ts";
import { parseMetaOptions } from "./config.ts";
import { parseKubeMetaSettings } from "./kube_config.ts";
import { META_SHAPE } from "./meta_schema.ts";
import { parseBridgeConf } from "../plugins/bridge_conf.ts";
import { parseVxlanConf } from "../plugins/vxlan.ts";
import { BRIDGE_SHAPE, VXLAN_SHAPE } from "../plugins/schemas.ts";
import { loadHostLocalConfig } from "../ipam/config.ts";
import { loadStaticConfig } from "../ipam/static.ts";
import { HOST_LOCAL_SHAPE, POOL_SHAPE, STATIC_SHAPE } from "../ipam/schemas.ts";
import { loadPoolConfig } from "../ipam/pool/config.ts";
import type { KeySpec } from "../pkg/schema.ts";

const bridge = (extra: Record<string, unknown> = {}) => ({
  cniVersion: "1.1.0",
  name: "blue",
  type: "hydra-bridge",
  bridge: "br-blue",
  ipam: { type: "hydra-ipam", ranges: [[{ subnet: "10.9.0.0/24" }]] },
  ...extra,
});

const messages = (conf: Record<string, unknown>) =>
  checkNetworkConfig(conf).problems.map((p) => p.message);

Deno.test("a typo in a plugin key is found with the key it misspells", () => {
  assert.deepEqual(messages(bridge({ isGatway: true })), [
    '"isGatway" is not a key of a bridge config; did you mean "isGateway"?',
  ]);
  assert.deepEqual(messages(bridge()), []);
});

Deno.test("a typo in an IPAM range is found with its path", () => {
  const conf = bridge({
    ipam: {
      type: "hydra-ipam",
      ranges: [[{ subnet: "10.9.0.0/24", rangeStrat: "10.9.0.10" }]],
    },
  });
  assert.deepEqual(messages(conf), [
    '"ipam.ranges[0][0].rangeStrat" is not a key of a range; did you mean "rangeStart"?',
  ]);
});

Deno.test("an ipam block without a type is a problem, an empty one is not", () => {
  const none = bridge({ ipam: { subnet: "10.9.0.0/24" } });
  assert.match(messages(none)[0], /"ipam" has no "type"/);
  assert.deepEqual(messages(bridge({ ipam: {} })), []);
});

Deno.test("a hydra-pool block: typos, whereabouts' keys it ignores, refuses or reads", () => {
  const conf = bridge({
    ipam: {
      type: "hydra-pool",
      range: "10.9.0.0/24",
      range_strat: "10.9.0.10",
      ipRanges: [{ range: "fd09::/64", exlude: ["fd09::1"] }],
      exclude: "10.9.0.5",
      addresses: [{ address: "10.9.0.7/24" }],
      leader_lease_duration: 1500,
      kubernetes: { kubeconfig: "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig" },
      datastore: "etcd",
    },
  });
  const r = checkNetworkConfig(conf);
  assert.deepEqual(r.problems.map((p) => `${p.kind} ${p.path}`), [
    "unknown ipam.range_strat",
    "unknown ipam.ipRanges[0].exlude",
    "type ipam.exclude",
    "unsupported ipam.addresses",
    "value ipam.datastore",
  ]);
  assert.match(r.problems[0].message, /not a key of a hydra-pool .* did you mean "range_start"\?/);
  assert.match(r.problems[1].message, /did you mean "exclude"\?/);
  assert.match(r.problems[2].message, /"ipam.exclude" must be a list of strings, got string/);
  assert.match(r.problems[3].message, /records in the pool/);
  assert.deepEqual(r.notes.map((n) => n.path), [
    "ipam.leader_lease_duration",
    "ipam.kubernetes.kubeconfig",
    "ipam.datastore",
  ]);
  const clean = bridge({
    ipam: { type: "hydra-pool", range: "10.9.0.0/24", ipRanges: [{ range: "fd09::/64" }] },
  });
  assert.deepEqual(messages(clean), []);
});

Deno.test("the meta-CNI conf: wrong types, Multus's keys with their meaning or named unsupported", () => {
  const conf = {
    cniVersion: "1.1.0",
    name: "hydra",
    type: "hydra",
    daemonExec: "yes",
    logLevel: "verbose",
    cniDir: "/var/lib/cni/multus",
    logToStderr: true,
    auxiliaryCNIChainName: "cni-chain-config",
    logOptions: { maxAge: 5 },
    delegates: [bridge({ isGatway: true })],
  };
  const r = checkNetworkConfig(conf);
  assert.deepEqual(r.problems.map((p) => `${p.kind} ${p.path}`), [
    "type daemonExec",
    "unsupported auxiliaryCNIChainName",
    "unsupported logOptions",
    "unknown delegates[0].isGatway",
  ]);
  assert.match(r.problems[0].message, /"daemonExec" must be a boolean, got string/);
  assert.match(r.problems[1].message, /no auxiliary chain/);
  assert.deepEqual(r.notes.map((n) => n.path), ["cniDir", "logToStderr"]);
});

Deno.test("the meta-CNI reads Multus's log levels and refuses a wrong-typed key on ADD, not on DEL", () => {
  const base = { cniVersion: "1.1.0", name: "hydra", type: "hydra", delegates: [bridge()] };
  assert.equal(parseMetaOptions({ ...base, logLevel: "verbose" } as NetConf).logLevel, "debug");
  assert.equal(parseMetaOptions({ ...base, logLevel: "panic" } as NetConf).logLevel, "error");
  const typo = { ...base, daemonExec: "yes" } as NetConf;
  assert.throws(
    () => parseMetaOptions(typo, "ADD"),
    (e: unknown) =>
      e instanceof CniError && e.code === 6 && /"daemonExec" must be a boolean/.test(e.message),
  );
  assert.doesNotThrow(() => parseMetaOptions(typo, "DEL"));
});

/** The conf as a proxy that records the top-level keys a parser reads. */
function recording(conf: Record<string, unknown>, read: Set<string>): NetConf {
  return new Proxy(conf, {
    get(target, key, receiver) {
      if (typeof key === "string") read.add(key);
      return Reflect.get(target, key, receiver);
    },
  }) as NetConf;
}

function args(config: NetConf): CmdArgs {
  return {
    command: "ADD",
    containerId: "c1",
    netns: "/var/run/netns/x",
    ifName: "eth0",
    args: "",
    path: [],
    stdinData: new Uint8Array(),
    config,
  };
}

/**
 * The object as a proxy that records every key path a parser reads, nested
 * objects and list items included: "ipRanges[].range", "kubernetes.kubeconfig".
 */
function recordingDeep<T>(value: T, read: Set<string>, where = ""): T {
  if (typeof value !== "object" || value === null) return value;
  const list = Array.isArray(value);
  return new Proxy(value, {
    get(target, key, receiver) {
      const v = Reflect.get(target, key, receiver);
      if (typeof key !== "string") return v;
      if (list) return /^\d+$/.test(key) ? recordingDeep(v, read, `${where}[]`) : v;
      const path = where ? `${where}.${key}` : key;
      read.add(path);
      return recordingDeep(v, read, path);
    },
  });
}

/** The spec a recorded key path names in `shape`, if it declares it. */
function specAt(shape: Shape, path: string): KeySpec | undefined {
  let spec: KeySpec | undefined;
  let keys: Shape["keys"] | undefined = shape.keys;
  for (const part of path.split(".")) {
    const [key, ...items] = part.split("[]");
    spec = keys && Object.hasOwn(keys, key) ? keys[key] : undefined;
    for (let i = 0; i < items.length && spec; i++) spec = spec.items;
    keys = spec?.shape?.keys;
  }
  return spec;
}

function assertDeclared(shape: Shape, read: Set<string>, what: string): void {
  const undeclared = [...read].filter((k) => !Object.hasOwn(shape.keys, k));
  assert.deepEqual(undeclared, [], `${what} reads keys its shape does not declare`);
}

Deno.test("every key a parser reads is declared in its shape", () => {
  let read = new Set<string>();
  parseBridgeConf(args(recording(bridge({ vlanTrunk: [{ id: 5 }] }), read)));
  assertDeclared(BRIDGE_SHAPE, read, "parseBridgeConf");

  read = new Set();
  parseVxlanConf(args(recording({ ...bridge(), type: "hydra-vxlan", vni: 7 }, read)));
  assertDeclared(VXLAN_SHAPE, read, "parseVxlanConf");

  read = new Set();
  const ipam = { type: "hydra-ipam", subnet: "10.9.0.0/24", routes: [] };
  loadHostLocalConfig({ ...bridge(), ipam: recording(ipam, read) } as NetConf, "");
  assertDeclared(HOST_LOCAL_SHAPE, read, "loadHostLocalConfig");

  read = new Set();
  const st = { type: "hydra-static", addresses: [{ address: "10.9.0.5/24" }] };
  loadStaticConfig({ ...bridge(), ipam: recording(st, read) } as NetConf, "");
  assertDeclared(STATIC_SHAPE, read, "loadStaticConfig");

  read = new Set();
  const pool = {
    type: "hydra-pool",
    range: "10.9.0.0/24",
    range_start: "10.9.0.10",
    range_end: "10.9.0.90",
    exclude: ["10.9.0.20/30"],
    ipRanges: [{ range: "fd09::/64", range_start: "fd09::10", range_end: "fd09::90", exclude: [] }],
    gateway: "10.9.0.1",
    routes: [{ dst: "0.0.0.0/0" }],
    dns: { nameservers: ["10.9.0.1"] },
    kubernetes: { kubeconfig: "/k" },
  };
  const noEnv = { get: (_: string) => undefined } as unknown as typeof Deno.env;
  loadPoolConfig(args({ ...bridge(), ipam: recordingDeep(pool, read) } as NetConf), noEnv);
  assert.ok(read.has("ipRanges[].range_start") && read.has("kubernetes"), [...read].join());
  const undeclared = [...read].filter((path) => !specAt(POOL_SHAPE, path));
  assert.deepEqual(undeclared, [], "loadPoolConfig reads keys its shape does not declare");

  read = new Set();
  const meta = { cniVersion: "1.1.0", name: "hydra", type: "hydra", clusterNetwork: "x" };
  parseMetaOptions(recording(meta, read));
  parseKubeMetaSettings(recording(meta, read));
  assertDeclared(META_SHAPE, read, "the meta-CNI's parsers");
});

Deno.test("nadPathRoots is a key of the meta conf, its kinds checked", () => {
  const meta = (nadPathRoots: unknown) =>
    messages({
      cniVersion: "1.1.0",
      name: "hydra",
      type: "hydra",
      clusterNetwork: "x",
      nadPathRoots,
    });
  assert.deepEqual(meta({ state: ["/var/lib/cni"], logs: ["/var/log"], read: [] }), []);
  assert.equal(meta({ stat: ["/var/lib/cni"] }).length, 1);
  assert.equal(meta("/var/lib/cni").length, 1);
});
