import assert from "node:assert/strict";
import { createCniExecutor } from "./cni_exec.ts";
import { type CniRequest, confDigest, RUN_LOCALLY_REASONS } from "../daemonclient/protocol.ts";
import { silentLogger } from "../pkg/log.ts";
import { withTempDir } from "../tests/helpers/netns.ts";

/** A conflist whose hydra-bridge asks for daemonExec, after `before` (another plugin) if given. */
function list(before?: Record<string, unknown>) {
  const bridge = {
    type: "hydra-bridge",
    bridge: "cnx0",
    daemonExec: true,
    ipam: { type: "hydra-ipam", subnet: "10.99.0.0/24" },
  };
  return {
    cniVersion: "1.0.0",
    name: before ? "chained" : "first",
    plugins: before ? [before, bridge] : [bridge],
  };
}

async function request(
  conf: ReturnType<typeof list>,
  command: CniRequest["command"],
): Promise<CniRequest> {
  const plugin = conf.plugins.at(-1)!;
  return {
    op: "cni",
    command,
    containerId: "c1",
    netns: "",
    ifName: "eth0",
    cniArgs: "",
    network: conf.name,
    plugin: "hydra-bridge",
    confDigest: await confDigest({ ...plugin, name: conf.name, cniVersion: conf.cniVersion }),
  };
}

Deno.test("the daemon refuses a standalone plugin's CHECK and chained ADD, so the exec'd plugin runs them", async () => {
  await withTempDir(async (dir) => {
    const first = list();
    const chained = list({ type: "hydra-tuning", sysctl: {} });
    await Deno.writeTextFile(`${dir}/10-first.conflist`, JSON.stringify(first));
    await Deno.writeTextFile(`${dir}/20-chained.conflist`, JSON.stringify(chained));
    const exec = createCniExecutor({ confDirs: [dir], binDirs: [], log: silentLogger });
    const signal = new AbortController().signal;

    for (
      const [conf, command] of [[first, "CHECK"], [chained, "ADD"], [chained, "CHECK"]] as const
    ) {
      const res = await exec(await request(conf, command), signal);
      assert.equal(res.ok, false, `${conf.name} ${command}`);
      if (res.ok) continue;
      assert.equal(res.reason, "BadRequest");
      assert.ok(RUN_LOCALLY_REASONS.has(res.reason!));
      assert.match(res.message, /needs the previous result/);
    }

    // A plugin type the daemon does not run, and a conf changed since the runtime read it.
    const tuning = { ...(await request(first, "ADD")), plugin: "hydra-tuning" };
    assert.equal((await exec(tuning, signal)).ok, false);
    const stale = { ...(await request(first, "ADD")), confDigest: "sha256:0" };
    const res = await exec(stale, signal);
    assert.equal(res.ok ? "" : res.reason, "ConfMismatch");
  });
});
