/**
 * A built-in interface plugin exec'd on its own (hydra-bridge as a
 * network's plugin, no meta-CNI) whose conf asks for `daemonExec`: its ADD
 * and DEL are run by `hydra daemon`, its CHECK by the exec'd process, and
 * with no daemon listening everything runs in the exec'd process.
 *
 * @module
 */

import assert from "node:assert/strict";
import { addresses, links, listFiles } from "../meta/harness.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { REPO_ROOT } from "../cni/helpers.ts";
import { eventually, type KubeEnv, startKubeEnv } from "./harness.ts";

const HYDRA_BRIDGE = `${REPO_ROOT}/bin/hydra-bridge`;

async function names(netns: TestNetns): Promise<string[]> {
  return [...(await links(netns)).keys()].filter((n) => n !== "lo").sort();
}

/** The daemon's count of `cni` requests it answered. */
function cniRequests(metrics: string): number {
  const line = metrics.split("\n").find((l) =>
    l.startsWith("hydra_daemon_requests_total{") && l.includes('op="cni"') &&
    l.includes('result="ok"')
  );
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}

function bridgeConf(
  env: KubeEnv,
  socket: string,
): { conf: Record<string, unknown>; subnet: string } {
  const net = env.bridgeNet("standalone", {
    type: "hydra-bridge",
    daemonExec: true,
    daemonSocket: socket,
  });
  const ipam = net.conf.ipam as Record<string, unknown>;
  return { conf: { ...net.conf, ipam: { ...ipam, type: "hydra-ipam" } }, subnet: net.subnet };
}

Deno.test("daemonExec: hydra-bridge exec'd on its own hands its ADD and DEL to the daemon, keeps its CHECK", async (t) => {
  const env = await startKubeEnv();
  try {
    const daemon = await env.startDaemon();
    const { conf, subnet } = bridgeConf(env, daemon.socket);

    await t.step("ADD and DEL run in the daemon; CHECK runs here", async () => {
      const netns = await env.podNetns();
      const call = { netns, program: HYDRA_BRIDGE, containerId: `sa-${netns.name}` };
      const before = cniRequests(await daemon.metrics());

      const added = await env.cni("ADD", conf, call);
      assert.equal(added.code, 0, added.stdout + added.stderr);
      const result = JSON.parse(added.stdout);
      assert.match(
        result.ips[0].address,
        new RegExp(`^${subnet.replaceAll(".", "\\.")}\\.\\d+/24$`),
      );
      const eth0 = (await links(netns)).get("eth0");
      assert.deepEqual(addresses(eth0), [result.ips[0].address]);
      assert.equal(cniRequests(await daemon.metrics()), before + 1, "the daemon ran the ADD");

      const checked = await env.cni("CHECK", { ...conf, prevResult: result }, call);
      assert.equal(checked.code, 0, checked.stdout + checked.stderr);
      assert.equal(
        cniRequests(await daemon.metrics()),
        before + 1,
        "CHECK ran in the exec'd plugin",
      );

      const deleted = await env.cni("DEL", { ...conf, prevResult: result }, call);
      assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
      assert.equal(cniRequests(await daemon.metrics()), before + 2, "the daemon ran the DEL");
      // The DEL answered with the link renamed away; the daemon deletes it just after.
      assert.ok(!(await names(netns)).includes("eth0"));
      await eventually("the pod's link deleted", async () => (await names(netns)).length === 0);

      // The address was released.
      const ip = result.ips[0].address.split("/")[0];
      const held = await listFiles(String((conf.ipam as Record<string, unknown>).dataDir));
      assert.ok(held.length > 0, "the IPAM store exists");
      assert.ok(!held.some((f) => f.endsWith(`/${ip}`)), `${ip} still reserved: ${held}`);
    });

    await t.step("an ADD chained after another plugin runs here", async () => {
      const netns = await env.podNetns();
      const call = { netns, program: HYDRA_BRIDGE, containerId: `ch-${netns.name}` };
      const before = cniRequests(await daemon.metrics());
      const prevResult = { cniVersion: "1.0.0", interfaces: [], ips: [] };
      const added = await env.cni("ADD", { ...conf, prevResult }, call);
      assert.equal(added.code, 0, added.stdout + added.stderr);
      assert.equal(cniRequests(await daemon.metrics()), before, "the daemon was not asked");
      assert.deepEqual(await names(netns), ["eth0"]);
      assert.equal((await env.cni("DEL", conf, call)).code, 0);
    });

    await t.step("with no daemon listening, ADD and DEL run here", async () => {
      assert.equal(await daemon.stop(), 0);
      const netns = await env.podNetns();
      const call = { netns, program: HYDRA_BRIDGE, containerId: `nd-${netns.name}` };
      const added = await env.cni("ADD", conf, call);
      assert.equal(added.code, 0, added.stdout + added.stderr);
      assert.deepEqual(await names(netns), ["eth0"]);
      const deleted = await env.cni("DEL", conf, call);
      assert.equal(deleted.code, 0, deleted.stdout + deleted.stderr);
      assert.deepEqual(await names(netns), []);
    });
  } finally {
    await env.close();
  }
});
