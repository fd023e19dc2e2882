/**
 * The sandbox hook on its own, in real namespaces (a "node" namespace with
 * a veth NIC, a "pod" namespace standing for a sandbox's), with prepared
 * claims written as `hydra dra serve` writes them: set up once, repeated
 * runs change nothing, release puts the NIC back; a NIC gone fails the run
 * with nothing left behind; an unfinished setup found on disk is undone and
 * redone; Synchronize attaches a running pod that lacks its NIC, releases
 * sandboxes that are gone, and never drops a prepared claim. Needs root.
 */

import assert from "node:assert/strict";
import { type TestNetns, uniqueName, withNetns, withTempDir } from "../tests/helpers/netns.ts";
import { createLogger } from "../pkg/log.ts";
import { createDraHook, type DraHook, type SandboxRef } from "./hook.ts";
import {
  CLAIM_KIND,
  listSandboxes,
  loadClaim,
  loadSandbox,
  SANDBOX_KIND,
  saveClaim,
  saveSandbox,
  stateDirs,
} from "./state.ts";

interface Link {
  ifname: string;
  address: string;
  mtu: number;
  addr_info: { local: string; prefixlen: number; scope: string }[];
}

const log = createLogger({ level: "off" });

function sandbox(pod: TestNetns, uid: string, id = uniqueName("sb")): SandboxRef {
  return { id, name: "p", uid, namespace: "ns", netns: pod.path };
}

async function links(ns: TestNetns): Promise<Link[]> {
  return await ns.ipJson<Link[]>("addr", "show");
}

function addrs(l: Link | undefined): string[] {
  return (l?.addr_info ?? []).filter((a) => a.scope === "global").map((a) =>
    `${a.local}/${a.prefixlen}`
  );
}

async function world(
  fn: (
    o: { node: TestNetns; pod: TestNetns; hook: DraHook; nic: string; mac: string; dir: string },
  ) => Promise<void>,
) {
  await withTempDir((dir) =>
    withNetns(3, async (node, pod, wire) => {
      const nic = uniqueName("nic");
      await node.exec(
        "ip",
        "link",
        "add",
        nic,
        "mtu",
        "1450",
        "type",
        "veth",
        "peer",
        "name",
        "w0",
        "netns",
        wire.name,
      );
      await node.exec("ip", "addr", "add", "192.0.2.5/24", "dev", nic);
      await node.exec("ip", "link", "set", nic, "up");
      const mac = (await links(node)).find((l) => l.ifname === nic)!.address;
      const d = stateDirs(`${dir}/dra`);
      saveClaim(d, {
        kind: CLAIM_KIND,
        claim: { namespace: "ns", name: "c", uid: "claim-1" },
        pods: [{ namespace: "ns", name: "p", uid: "pod-1" }],
        devices: [{
          request: "nic",
          pool: "node",
          device: `nic-${nic}`,
          kind: "nic",
          nic: {
            hostName: nic,
            mac,
            ifName: "data0",
            mtu: 1400,
            addresses: ["198.51.100.9/24"],
            routes: [],
          },
        }],
        preparedAt: "",
      });
      const hook = createDraHook({
        stateDir: `${dir}/dra`,
        cniPath: [],
        log,
        hostNetns: node.path,
      });
      try {
        await fn({ node, pod, hook, nic, mac, dir: `${dir}/dra` });
      } finally {
        await hook.close();
      }
    })
  );
}

Deno.test("hook: set up once, repeated runs change nothing, release restores", () =>
  world(async ({ node, pod, hook, nic, mac, dir }) => {
    const sb = sandbox(pod, "pod-1");
    const out = await hook.run(sb);
    assert.equal(out.status, "attached");
    assert.deepEqual(out.devices.map((d) => [d.device, d.ifName, d.ips, d.mac, d.networkName]), [
      [`nic-${nic}`, "data0", ["198.51.100.9/24"], mac, "ns/c"],
    ]);
    const inPod = (await links(pod)).find((l) => l.ifname === "data0");
    assert.equal(inPod?.mtu, 1400);
    assert.deepEqual(addrs(inPod), ["198.51.100.9/24"]);
    assert.equal((await hook.run(sb)).status, "already");
    assert.equal(loadSandbox(stateDirs(dir), sb.id)?.phase, "attached");
    // Another pod's sandbox gets nothing.
    assert.equal((await hook.run(sandbox(pod, "pod-2"))).status, "none");
    await hook.release(sb.id, pod.path);
    const back = (await links(node)).find((l) => l.ifname === nic);
    assert.equal(back?.mtu, 1450);
    assert.deepEqual(addrs(back), ["192.0.2.5/24"]);
    assert.equal(loadSandbox(stateDirs(dir), sb.id), undefined);
    assert.ok(loadClaim(stateDirs(dir), "claim-1"), "the prepared claim stays until unprepare");
  }));

Deno.test("hook: a NIC gone fails the run with nothing left; an unfinished setup is redone", () =>
  world(async ({ node, pod, hook, nic, dir }) => {
    const d = stateDirs(dir);
    // A crash left a record of a setup that did not finish (the NIC never moved).
    const sb = sandbox(pod, "pod-1");
    saveSandbox(d, {
      kind: SANDBOX_KIND,
      sandboxId: sb.id,
      pod: { namespace: "ns", name: "p", uid: "pod-1" },
      netns: pod.path,
      nics: [],
      reports: [],
      phase: "attaching",
      updatedAt: "",
    });
    assert.equal((await hook.run(sb)).status, "attached");
    assert.ok((await links(pod)).some((l) => l.ifname === "data0"));
    await hook.release(sb.id, pod.path);

    await node.exec("ip", "link", "del", nic);
    const sb2 = sandbox(pod, "pod-1");
    await assert.rejects(hook.run(sb2), /NIC nic-\S+ \(\S+, \S+\) is no longer on the host/);
    assert.equal(loadSandbox(d, sb2.id), undefined, "no record left");
    assert.ok(!(await links(pod)).some((l) => l.ifname === "data0"));
  }));

Deno.test("hook: Synchronize attaches a running pod that lacks its NIC and releases gone sandboxes", () =>
  world(async ({ node, pod, hook, nic, dir }) => {
    const d = stateDirs(dir);
    const running = sandbox(pod, "pod-1");
    await hook.synchronize([running]);
    assert.ok((await links(pod)).some((l) => l.ifname === "data0"), "late attach");
    assert.equal(loadSandbox(d, running.id)?.phase, "attached");
    // The sandbox is gone from the runtime's list: its NIC goes back.
    await hook.synchronize([]);
    assert.ok((await links(node)).some((l) => l.ifname === nic), "NIC back");
    assert.deepEqual(listSandboxes(d), []);
    assert.ok(loadClaim(d, "claim-1"), "Synchronize never drops a prepared claim");
  }));
