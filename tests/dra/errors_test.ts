/**
 * Bad input reaches the user as a clear error on the pod (the kubelet's
 * FailedPrepareDynamicResources Event carries hydra's message), with
 * nothing prepared, reserved or moved: a claim naming a missing NAD, a bad
 * interface name, IPAM set in a claim, two claims asking for one interface
 * name, a NIC gone between allocation and prepare; and a NIC gone between
 * prepare and the sandbox of a pod that started while the NRI plugin was
 * away: the claim says Ready=False and the pod gets a Warning Event.
 * kube-scheduler allocates the claims, but for the NIC gone between
 * allocation and prepare, whose allocation the test writes (the scheduler
 * does not allocate a NIC the slices no longer list). Steps of one world.
 *
 * Needs root and the built peers.
 */

import assert from "node:assert/strict";
import { poll } from "../infra/process.ts";
import { run } from "../helpers/netns.ts";
import { type DraWorld, runSteps, type TestNic, withDraWorld } from "./world.ts";

async function failsWith(w: DraWorld, pod: string, re: RegExp): Promise<void> {
  let seen: { reason: string; message: string }[] = [];
  const ok = await poll(
    async () => {
      seen = await w.events(pod);
      return seen.some((e) => e.reason === "FailedPrepareDynamicResources" && re.test(e.message));
    },
    60_000,
    200,
  );
  assert.ok(ok, `${pod}: an Event matching ${re}; got ${JSON.stringify(seen)}`);
  assert.notEqual(((await w.getPod(pod))?.status as { phase?: string }).phase, "Running");
}

const byName = (nic: TestNic) => `device.attributes["hydra.clusternet.io"].ifName == "${nic.name}"`;

/** A pod using `claims`, scheduled (and its claims allocated) by kube-scheduler. */
async function podWith(w: DraWorld, name: string, claims: string[]) {
  await w.createPod(name, claims.map((claim, i) => ({ name: `c${i}`, claim })));
}

/** Bad claims fail to prepare with a message saying what is wrong. */
async function badClaims(w: DraWorld): Promise<void> {
  const [nicA, nicB, nicC, nicD] = [await w.nic(), await w.nic(), await w.nic(), await w.nic()];
  const dra = await w.startDra();
  await w.startNri();

  await w.createClaim("missing-nad", [{ name: "net1x", deviceClassName: "hydra-network" }], {
    network: "absent",
  });
  await podWith(w, "p-nad", ["missing-nad"]);
  await failsWith(w, "p-nad", /cannot find a network-attachment-definition \(absent\)/);

  await w.createClaim("bad-if", [{
    name: "nic",
    deviceClassName: "hydra-nic",
    selector: byName(nicA),
  }], {
    interface: "a-very-long-name0",
  });
  await podWith(w, "p-if", ["bad-if"]);
  await failsWith(
    w,
    "p-if",
    /claim .*\/bad-if request "nic": interface name "a-very-long-name0" is longer than 15 bytes/,
  );

  await w.createClaim("claim-ipam", [{
    name: "nic",
    deviceClassName: "hydra-nic",
    selector: byName(nicB),
  }], {
    ipam: { type: "host-local", subnet: "198.51.100.0/24", dataDir: "/etc" },
  });
  await podWith(w, "p-ipam", ["claim-ipam"]);
  await failsWith(w, "p-ipam", /"ipam" may only be set in a DeviceClass's config/);

  await w.createClaim("same-1", [{
    name: "nic",
    deviceClassName: "hydra-nic",
    selector: byName(nicC),
  }], { interface: "data0" });
  await w.createClaim("same-2", [{
    name: "nic",
    deviceClassName: "hydra-nic",
    selector: byName(nicD),
  }], { interface: "data0" });
  await podWith(w, "p-same", ["same-1", "same-2"]);
  await failsWith(w, "p-same", /both ask for interface "data0"/);

  const gone = await w.nic();
  await w.createClaim("vanished", [{
    name: "nic",
    deviceClassName: "hydra-nic",
    selector: byName(gone),
  }]);
  // Allocated by hand, as the scheduler would have before the NIC went: it does not allocate
  // a NIC the slices no longer list, so it cannot make this race happen on purpose.
  await run("ip", "-n", w.ctd.netnsName, "link", "del", gone.name);
  const pGone = await w.createPod("p-gone", [{ name: "c0", claim: "vanished" }], {
    byHand: true,
  });
  await w.schedule(pGone, [{ claim: "vanished", devices: { nic: gone.device } }]);
  await failsWith(w, "p-gone", new RegExp(`NIC ${gone.device} is not on this node`));

  // Nothing was prepared but the first of the two claims of one name, and every NIC is on the host.
  const prepared = dra.logLines().filter((l) => l.msg === "claim prepared");
  assert.deepEqual(prepared.map((l) => l.claim), [`${w.ns}/same-1`]);
  const links = (await w.nodeIp<{ ifname: string }[]>("link", "show")).map((l) => l.ifname);
  for (const n of [nicA, nicB, nicC, nicD]) {
    assert.ok(links.includes(n.name), `${n.name} on the host`);
  }
}

/** A NIC gone before a late setup: Ready=False on the claim, a Warning on the pod. */
async function nicGoneBeforeLateSetup(w: DraWorld): Promise<void> {
  const nic = await w.nic();
  const dra = await w.startDra();
  const nri = await w.startNri();
  await w.createClaim("late", [{
    name: "nic",
    deviceClassName: "hydra-nic",
    selector: byName(nic),
  }], { interface: "data0" });
  await nri.kill();
  await podWith(w, "p-late", ["late"]);
  assert.ok(
    await poll(() => dra.logLines().some((l) => l.msg === "claim prepared"), 60_000, 100),
  );
  await w.waitRunning("p-late");
  await run("ip", "-n", w.ctd.netnsName, "link", "del", nic.name);
  await w.startNri();
  let cond: Record<string, string> | undefined;
  assert.ok(
    await poll(
      async () => {
        const c = await w.getClaim("late");
        cond = c.status?.devices?.find((d) => d.device === nic.device)?.conditions?.[0] as
          | Record<string, string>
          | undefined;
        return cond?.status === "False";
      },
      60_000,
      200,
    ),
    "claim condition",
  );
  assert.equal(cond!.reason, "DeviceNotAttached");
  assert.match(cond!.message, /no longer on the host/);
  assert.ok(
    await poll(
      async () =>
        (await w.events("p-late")).some((e) =>
          e.type === "Warning" && e.reason === "DeviceNotAttached"
        ),
      30_000,
      200,
    ),
    "Warning Event on the pod",
  );
}

/** No sandbox hook at all (nri serve reads another state folder): the claim and pod say so. */
async function noSandboxHook(w: DraWorld): Promise<void> {
  const nic = await w.nic();
  await w.startDra(["--setup-grace=2"]);
  await w.startNri([`--dra-state-dir=${w.tmp}/elsewhere`]);
  await w.createClaim("unseen", [{
    name: "nic",
    deviceClassName: "hydra-nic",
    selector: byName(nic),
  }]);
  await podWith(w, "p-unseen", ["unseen"]);
  await w.waitRunning("p-unseen");
  let cond: Record<string, string> | undefined;
  assert.ok(
    await poll(
      async () => {
        const c = await w.getClaim("unseen");
        cond = c.status?.devices?.[0]?.conditions?.[0] as Record<string, string> | undefined;
        return cond?.status === "False";
      },
      60_000,
      200,
    ),
    "claim condition",
  );
  assert.match(cond!.message, /no device was set up in the pod's sandbox/);
  assert.ok(
    await poll(
      async () => (await w.events("p-unseen")).some((e) => e.reason === "DeviceNotAttached"),
      30_000,
      200,
    ),
    "Warning Event on the pod",
  );
}

Deno.test("dra: bad input and lost devices reach the user", (t) =>
  withDraWorld((w) =>
    runSteps(t, w, [
      ["bad claims fail to prepare with a message saying what is wrong", badClaims],
      [
        "a NIC gone before a late setup: Ready=False on the claim, a Warning on the pod",
        nicGoneBeforeLateSetup,
      ],
      [
        "no sandbox hook at all (nri serve reads another state folder): the claim and pod say so",
        noSandboxHook,
      ],
    ])
  ));
