import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../cni/errors.ts";
import type { CmdArgs, Command, NetConf } from "../cni/types.ts";
import { plugin } from "./static.ts";

function cmd(command: Command, config: NetConf, args = ""): CmdArgs {
  return {
    command,
    containerId: "c",
    netns: "",
    ifName: "eth0",
    args,
    path: [],
    stdinData: new Uint8Array(),
    config,
  };
}

function conf(ipam: Record<string, unknown>, extra: Partial<NetConf> = {}): NetConf {
  return {
    cniVersion: "1.0.0",
    name: "n",
    type: "bridge",
    ipam: { type: "hydra-static", ...ipam },
    ...extra,
  };
}

Deno.test("static returns the configured addresses, routes and dns as written", async () => {
  const config = conf({
    addresses: [{ address: "10.10.0.1/24", gateway: "10.10.0.254" }, {
      address: "3ffe:FFFF:0:01ff::1/64",
    }],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.10.5.1" }],
    dns: { nameservers: ["8.8.8.8"], domain: "example.com", search: ["example.com"] },
  });
  assert.deepEqual(await plugin.add(cmd("ADD", config)), {
    cniVersion: "1.0.0",
    ips: [{ address: "10.10.0.1/24", gateway: "10.10.0.254" }, {
      address: "3ffe:ffff:0:1ff::1/64",
    }],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.10.5.1" }],
    dns: { nameservers: ["8.8.8.8"], domain: "example.com", search: ["example.com"] },
  });
});

Deno.test("CNI_ARGS adds addresses and gateways; args and runtimeConfig replace them", async () => {
  const base = conf({ addresses: [{ address: "10.10.0.1/24" }] });
  const fromEnv = await plugin.add(
    cmd("ADD", base, "IP=10.20.0.5/16,fd00::5/64;GATEWAY=10.20.0.1"),
  );
  assert.deepEqual(fromEnv, {
    cniVersion: "1.0.0",
    ips: [
      { address: "10.10.0.1/24" },
      { address: "10.20.0.5/16", gateway: "10.20.0.1" },
      { address: "fd00::5/64" },
    ],
  });
  const fromArgs = await plugin.add(
    cmd("ADD", { ...base, args: { cni: { ips: ["10.30.0.5/24"] } } }),
  );
  assert.deepEqual(fromArgs, { cniVersion: "1.0.0", ips: [{ address: "10.30.0.5/24" }] });
  const fromRuntime = await plugin.add(
    cmd("ADD", { ...base, runtimeConfig: { ips: ["10.40.0.5/24"] } }),
  );
  assert.deepEqual(fromRuntime, { cniVersion: "1.0.0", ips: [{ address: "10.40.0.5/24" }] });
});

Deno.test("static rejects addresses not in CIDR form and too many per family for old versions", async () => {
  const bad = conf({ addresses: [{ address: "10.10.0.1" }] });
  await assert.rejects(
    plugin.add(cmd("ADD", bad)),
    (e: unknown) =>
      e instanceof CniError && e.code === ErrorCode.InvalidNetworkConfig &&
      /expected to be in CIDR notation, got: '10\.10\.0\.1'/.test(e.message),
  );
  const two = conf({ addresses: [{ address: "10.0.0.1/24" }, { address: "10.0.1.1/24" }] }, {
    cniVersion: "0.2.0",
  });
  await assert.rejects(
    plugin.add(cmd("ADD", two)),
    /does not support more than 1 address per family/,
  );
});

Deno.test("static CHECK compares the previous result with the config", async () => {
  const config = conf({ addresses: [{ address: "10.10.0.1/24", gateway: "10.10.0.254" }] });
  const good = { cniVersion: "1.0.0", ips: [{ address: "10.10.0.1/24", gateway: "10.10.0.254" }] };
  await plugin.check(cmd("CHECK", { ...config, prevResult: good }));
  const otherGw = { cniVersion: "1.0.0", ips: [{ address: "10.10.0.1/24", gateway: "10.10.0.1" }] };
  await assert.rejects(
    plugin.check(cmd("CHECK", { ...config, prevResult: otherGw })),
    /Failed to match addr 10\.10\.0\.1/,
  );
  const none = { cniVersion: "1.0.0", ips: [] };
  await assert.rejects(
    plugin.check(cmd("CHECK", { ...config, prevResult: none })),
    /10\.10\.0\.1 missing/,
  );
  await assert.rejects(plugin.check(cmd("CHECK", config)), /Required prevResult missing/);
});
