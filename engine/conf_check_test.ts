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
import { HOST_LOCAL_SHAPE, STATIC_SHAPE } from "../ipam/schemas.ts";

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
  const meta = { cniVersion: "1.1.0", name: "hydra", type: "hydra", clusterNetwork: "x" };
  parseMetaOptions(recording(meta, read));
  parseKubeMetaSettings(recording(meta, read));
  assertDeclared(META_SHAPE, read, "the meta-CNI's parsers");
});
