/**
 * hydra-pool's exec path checks its block against POOL_SHAPE before
 * anything else: a typo is a warning naming the key it misspells, a
 * whereabouts key it cannot honour is a warning saying what to do, a key of
 * the wrong type is CNI error 7 — all before any API call.
 */

import assert from "node:assert/strict";
import { CniError } from "../../cni/errors.ts";
import type { CmdArgs, IpamConfig } from "../../cni/types.ts";
import { plugin } from "./plugin.ts";

function args(ipam: IpamConfig, warnings: string[]): CmdArgs {
  return {
    command: "ADD",
    containerId: "c1",
    netns: "/var/run/netns/none",
    ifName: "net1",
    args: "",
    path: [],
    stdinData: new Uint8Array(),
    config: { cniVersion: "1.0.0", name: "blue", type: "macvlan", ipam },
    warn: (m) => warnings.push(m),
  };
}

async function addFails(ipam: Record<string, unknown>, pattern: RegExp): Promise<string[]> {
  const warnings: string[] = [];
  await assert.rejects(plugin.add(args({ type: "hydra-pool", ...ipam }, warnings)), (e) => {
    assert.ok(e instanceof CniError, String(e));
    assert.equal(e.code, 7, e.message);
    assert.match(e.message, pattern);
    return true;
  });
  return warnings;
}

Deno.test("hydra-pool ADD: a misspelt range warns with the key it misspells, then fails naming the missing one", async () => {
  const warnings = await addFails({ rnage: "10.9.0.0/24" }, /no range: set ipam\.range/);
  assert.deepEqual(warnings, [
    '"ipam.rnage" is not a key of a hydra-pool (whereabouts) block; did you mean "range"?',
  ]);
});

Deno.test("hydra-pool ADD: whereabouts' addresses warn with what to do; a wrong type is error 7", async () => {
  const warnings = await addFails(
    { range: "10.9.0.0/24", addresses: [{ address: "10.9.0.7/24" }], exclude: "10.9.0.5" },
    /ipam\.exclude must be a list of strings/,
  );
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(warnings[0], /"ipam\.addresses" is not supported: .*network selection \("ips"\)/);
});

Deno.test("hydra-pool ADD and DEL: a pod cannot use a node's reserved sandbox id (error 7, before any API call)", async () => {
  const pod = "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=hydra-hybrid-gateway-node1";
  for (const command of ["ADD", "DEL"] as const) {
    const a = {
      ...args({ type: "hydra-pool", range: "10.9.0.0/24" }, []),
      command,
      containerId: "hydra-hybrid-gateway-node1",
      ifName: "gateway",
      args: pod,
    };
    await assert.rejects(command === "ADD" ? plugin.add(a) : plugin.del(a), (e) => {
      assert.ok(e instanceof CniError, String(e));
      assert.equal(e.code, 7, e.message);
      assert.match(
        e.message,
        /reserved for a node's own address; pod ns1\/hydra-hybrid-gateway-node1/,
      );
      return true;
    });
  }
});
