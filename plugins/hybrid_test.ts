import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../cni/errors.ts";
import type { CmdArgs, NetConf } from "../cni/types.ts";
import { plugin } from "./hybrid.ts";

function cmd(
  command: CmdArgs["command"],
  extra: Record<string, unknown>,
  over: Partial<CmdArgs> = {},
): CmdArgs {
  const config = { cniVersion: "1.0.0", name: "hy", type: "hydra-hybrid", ...extra };
  return {
    command,
    containerId: "c1",
    netns: "/var/run/netns/x",
    ifName: "net1",
    args: "",
    path: [],
    stdinData: new TextEncoder().encode(JSON.stringify(config)),
    config: config as NetConf,
    ...over,
  };
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CniError, String(e));
    return e.code;
  }
  assert.fail("no error");
}

Deno.test("hydra-hybrid refuses a config without a network, or with keys of the wrong type", async () => {
  const bad = ErrorCode.InvalidNetworkConfig;
  assert.equal(await code(plugin.add(cmd("ADD", {}))), bad);
  assert.equal(await code(plugin.add(cmd("ADD", { network: "../etc" }))), bad);
  // A key of the wrong type fails decoding, as in every built-in plugin.
  const wrongType = plugin.add(cmd("ADD", { network: "hy", extraRoutes: [1] }));
  assert.equal(await code(wrongType), ErrorCode.DecodingFailure);
  assert.equal(await code(plugin.add(cmd("ADD", { network: "hy", apiTimeout: 0 }))), bad);
  // No kubeconfig and no in-cluster account: nothing to read the network from.
  const dataDir = await Deno.makeTempDir();
  try {
    const err = await plugin.add(
      cmd("ADD", { network: "hy", dataDir, kubeconfig: `${dataDir}/none` }),
    )
      .then(() => undefined, (e) => e);
    assert.ok(err instanceof CniError && err.code === bad, String(err));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("hydra-hybrid DEL without a record of the ADD has nothing to undo; CHECK says so", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await plugin.del(cmd("DEL", { network: "hy", dataDir }));
    assert.equal(
      await code(plugin.check(cmd("CHECK", { network: "hy", dataDir }))),
      ErrorCode.Internal,
    );
    // A container ID that would leave the record folder is refused, never joined into a path.
    const escape = cmd("DEL", { network: "hy", dataDir }, { containerId: "../x" });
    assert.equal(await code(plugin.del(escape)), ErrorCode.InvalidNetworkConfig);
    // A damaged record is reported, not guessed at.
    await Deno.mkdir(`${dataDir}/.hydra-hybrid`);
    await Deno.writeTextFile(`${dataDir}/.hydra-hybrid/c1-net1.json`, "{");
    assert.equal(
      await code(plugin.del(cmd("DEL", { network: "hy", dataDir }))),
      ErrorCode.Internal,
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
