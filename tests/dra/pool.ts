/**
 * The node's NIC pool is its limit (a step of claims_test.ts): with as
 * many pods claiming "any NIC" as the pool has NICs running, one more such
 * pod is not scheduled — kube-scheduler finds no free NIC in hydra's
 * ResourceSlices and says so where `kubectl describe pod` shows it (the
 * PodScheduled condition and a FailedScheduling Event) — and it is
 * scheduled and runs with the NIC once a pod holding one is deleted.
 *
 * @module
 */

import assert from "node:assert/strict";
import { poll } from "../infra/process.ts";
import type { ResourceSlice } from "../../dra/slices.ts";
import type { AttributeValue } from "../../dra/devices.ts";
import type { DraWorld } from "./world.ts";

function text(v: AttributeValue | undefined): string | undefined {
  return v && "string" in v ? v.string : undefined;
}

/** The names of the NICs this node publishes (kind "nic"), once `mustHave` is among them. */
async function publishedNics(w: DraWorld, mustHave: string): Promise<string[]> {
  let nics: string[] = [];
  const ok = await poll(
    async () => {
      const list = await w.cp.api.must("GET", "/apis/resource.k8s.io/v1/resourceslices") as {
        items: ResourceSlice[];
      };
      nics = list.items.filter((s) => s.spec.nodeName === w.nodeName)
        .flatMap((s) => s.spec.devices)
        .filter((d) => text(d.attributes.kind) === "nic")
        .map((d) => text(d.attributes.ifName) ?? d.name);
      return nics.includes(mustHave);
    },
    30_000,
    200,
  );
  assert.ok(ok, `${mustHave} published`);
  return nics;
}

/** The MAC of the pod's data0. */
async function data0Mac(w: DraWorld, pod: string): Promise<string | undefined> {
  return (await w.addrs(await w.podNetns(pod))).find((l) => l.ifname === "data0")?.address;
}

/** More claims than NICs: the extra pod stays Pending until a NIC is freed. */
export async function moreClaimsThanNics(w: DraWorld): Promise<void> {
  await w.startDra();
  await w.startNri();
  const added = await w.nic();
  const pool = await publishedNics(w, added.name);
  await w.createClaimTemplate("any-nic", [{ name: "nic", deviceClassName: "hydra-nic" }], {
    interface: "data0",
  });
  const holders = pool.map((_, i) => `holder-${i}`);
  for (const name of holders) await w.createPod(name, [{ name: "nic", template: "any-nic" }]);
  const macs = new Set<string>();
  for (const name of holders) {
    await w.waitRunning(name, 90_000);
    const mac = await data0Mac(w, name);
    assert.ok(mac, `${name} has its NIC`);
    macs.add(mac);
  }
  assert.equal(macs.size, pool.length, "each running pod holds a NIC of its own");

  await w.createPod("extra", [{ name: "nic", template: "any-nic" }]);
  const cond = await w.scheduled("extra");
  assert.equal(cond.status, "False");
  assert.equal(cond.reason, "Unschedulable");
  assert.match(cond.message ?? "", /0\/1 nodes are available: 1 cannot allocate all claims/);
  let events: { reason: string; message: string }[] = [];
  assert.ok(
    await poll(
      async () => {
        events = await w.events("extra");
        return events.some((e) =>
          e.reason === "FailedScheduling" && /cannot allocate all claims/.test(e.message)
        );
      },
      30_000,
      200,
    ),
    `a FailedScheduling Event on the pod; got ${JSON.stringify(events)}`,
  );
  const waiting = await w.getPod("extra");
  assert.equal(waiting?.spec?.nodeName, undefined, "not bound");
  assert.equal(waiting?.status?.phase, "Pending");

  // A NIC is freed: the waiting pod gets it.
  const freed = await data0Mac(w, holders[0]);
  await w.deletePod(holders[0]);
  await w.waitRunning("extra", 120_000);
  assert.equal((await w.scheduled("extra")).status, "True");
  assert.equal(await data0Mac(w, "extra"), freed, "the extra pod holds the freed NIC");

  for (const name of [...holders.slice(1), "extra"]) await w.deletePod(name);
  assert.ok(
    await poll(
      async () => {
        const links = (await w.nodeIp<{ ifname: string }[]>("link", "show")).map((l) => l.ifname);
        return pool.every((n) => links.includes(n));
      },
      30_000,
      200,
    ),
    "NICs back on the host",
  );
}
