/**
 * hydra's processes dying around a pod's start, with a real kubelet and
 * containerd, kube-scheduler allocating the claims; steps of one world
 * (the kubelet's restart last):
 *
 * - both killed (SIGKILL) after the kubelet prepared the claim and before
 *   the NIC was set up in the sandbox (the NRI plugin died first, so
 *   containerd started the sandbox without it; then the driver): once both
 *   are back, the pod gets its NIC, and the claim's status says so —
 *   nothing of the prepared claim was lost;
 * - the driver down when a pod comes: the pod waits (the kubelet cannot
 *   prepare its claim, and says so in an Event) and starts with its NIC
 *   when the driver is back;
 * - the kubelet killed while a prepare call is running (its IPAM is made
 *   slow): it asks again, the claim is prepared and its address reserved
 *   once, and the pod starts with its NIC.
 *
 * Needs root and the built peers.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { poll } from "../infra/process.ts";
import { referencePluginDir } from "../infra/peers.ts";
import {
  type DraWorld,
  globalAddrs,
  type HydraProc,
  runSteps,
  type TestNic,
  withDraWorld,
} from "./world.ts";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function nicInPod(
  w: DraWorld,
  pod: string,
  ifName: string,
  nic: TestNic,
  timeoutMs = 30_000,
): Promise<string[]> {
  let addrs: string[] = [];
  const ok = await poll(
    async () => {
      const link = (await w.addrs(await w.podNetns(pod))).find((l) => l.ifname === ifName);
      addrs = globalAddrs(link);
      return link?.address === nic.mac && addrs.length > 0;
    },
    timeoutMs,
    200,
  );
  assert.ok(ok, `${nic.name} in pod ${pod} as ${ifName}`);
  return addrs;
}

async function logged(
  p: HydraProc,
  msg: string,
  match: (l: Record<string, unknown>) => boolean = () => true,
): Promise<void> {
  assert.ok(
    await poll(() => p.logLines().some((l) => l.msg === msg && match(l)), 60_000, 100),
    `log line "${msg}"`,
  );
}

function claimFor(w: DraWorld, name: string, nic: TestNic, address: string) {
  return w.createClaim(name, [{
    name: "nic",
    deviceClassName: "hydra-nic",
    selector: `device.attributes["hydra.clusternet.io"].ifName == "${nic.name}"`,
  }], { interface: "data0", addresses: [address] });
}

/** Every hydra process killed between prepare and sandbox setup; the pod still gets its NIC. */
async function killedBetweenPrepareAndSandbox(w: DraWorld): Promise<void> {
  const nic = await w.nic();
  const dra1 = await w.startDra();
  const nri1 = await w.startNri();
  await claimFor(w, "c1", nic, "198.51.100.21/24");
  await nri1.kill();
  await w.createPod("p1", [{ name: "nic", claim: "c1" }]);
  await logged(dra1, "claim prepared", (l) => l.claim === `${w.ns}/c1`);
  // containerd started the sandbox without the plugin that was gone.
  await w.waitRunning("p1");
  const before = (await w.addrs(await w.podNetns("p1"))).map((l) => l.ifname);
  assert.ok(!before.includes("data0"), "nothing set the NIC up while hydra was down");
  // The device is not set up yet and now the driver dies too: only the disk knows the claim.
  await dra1.kill();

  const nri2 = await w.startNri();
  await w.startDra();
  assert.deepEqual(await nicInPod(w, "p1", "data0", nic), ["198.51.100.21/24"]);
  await logged(nri2, "devices attached to a pod that started without them");
  assert.ok(
    await poll(
      async () => {
        const c = await w.getClaim("c1");
        return c.status?.devices?.some((d) =>
          d.device === nic.device && d.networkData?.interfaceName === "data0"
        ) ?? false;
      },
      30_000,
      200,
    ),
    "claim status written by the restarted driver",
  );
  await w.deletePod("p1");
  assert.ok(
    await poll(
      async () =>
        (await w.nodeIp<{ ifname: string }[]>("link", "show")).some((l) => l.ifname === nic.name),
      30_000,
      200,
    ),
    "NIC back on the host",
  );
}

/** A pod created while the driver is down waits, and starts with its NIC when it is back. */
async function driverDownWhenPodComes(w: DraWorld): Promise<void> {
  const nic = await w.nic();
  const dra1 = await w.startDra();
  await w.startNri();
  // Stopped, not crashed: the kubelet sees the plugin go and says so at once.
  assert.equal(await dra1.terminate(), 0);
  await claimFor(w, "c2", nic, "198.51.100.22/24");
  await w.createPod("p2", [{ name: "nic", claim: "c2" }]);
  assert.ok(
    await poll(
      async () => (await w.events("p2")).some((e) => e.reason === "FailedPrepareDynamicResources"),
      60_000,
      200,
    ),
    "the kubelet tells why the pod waits",
  );
  const phase = ((await w.getPod("p2"))?.status as { phase?: string }).phase;
  assert.equal(phase, "Pending", "the pod did not start without its NIC");
  await w.startDra();
  await w.waitRunning("p2", 90_000);
  assert.deepEqual(await nicInPod(w, "p2", "data0", nic), ["198.51.100.22/24"]);
}

/** The kubelet killed in the middle of a prepare asks again; the claim is prepared once. */
async function kubeletKilledMidPrepare(w: DraWorld): Promise<void> {
  const nic = await w.nic();
  // IPAM that takes its time, so the kubelet can be killed while the prepare call is running.
  const bin = join(w.tmp, "slowbin");
  const marks = join(w.tmp, "ipam-adds");
  await Deno.mkdir(bin);
  await Deno.writeTextFile(
    join(bin, "slow-ipam"),
    `#!/bin/sh\nif [ "$CNI_COMMAND" = ADD ]; then echo add >> ${marks}; sleep 3; fi\n` +
      `exec ${join(referencePluginDir(), "host-local")}\n`,
    { mode: 0o755 },
  );
  await w.cp.api.must("POST", "/apis/resource.k8s.io/v1/deviceclasses", {
    apiVersion: "resource.k8s.io/v1",
    kind: "DeviceClass",
    metadata: { name: `slow-${w.ns}` },
    spec: {
      selectors: [{
        cel: {
          expression:
            'device.driver == "hydra.clusternet.io" && device.attributes["hydra.clusternet.io"].kind == "nic"',
        },
      }],
      config: [{
        opaque: {
          driver: "hydra.clusternet.io",
          parameters: {
            ipamName: `slow-${w.ns}`,
            ipam: {
              type: "slow-ipam",
              subnet: "198.51.100.0/24",
              dataDir: join(w.tmp, "slow-store"),
            },
          },
        },
      }],
    },
  });
  const dra = await w.startDra([`--cni-bin-dir=${bin}`]);
  await w.startNri();
  await w.createClaim("c3", [{
    name: "nic",
    deviceClassName: `slow-${w.ns}`,
    selector: `device.attributes["hydra.clusternet.io"].ifName == "${nic.name}"`,
  }], { interface: "data0" });
  await w.createPod("p3", [{ name: "nic", claim: "c3" }]);
  assert.ok(await poll(() => exists(marks), 60_000, 20), "prepare reached IPAM");
  await w.kubelet.restart();
  await w.waitRunning("p3", 90_000);
  const addrs = await nicInPod(w, "p3", "data0", nic);
  assert.equal(addrs.length, 1);
  assert.match(addrs[0], /^198\.51\.100\.\d+\/24$/);
  assert.equal((await Deno.readTextFile(marks)).trim().split("\n").length, 1, "one reservation");
  const prepared = dra.logLines().filter((l) =>
    l.msg === "claim prepared" && l.claim === `${w.ns}/c3`
  );
  assert.equal(prepared.length, 1, "prepared once; the repeated call answers from the record");
}

Deno.test("dra: hydra and the kubelet dying around a pod's start", (t) =>
  withDraWorld((w) =>
    runSteps(t, w, [
      [
        "every hydra process killed between prepare and sandbox setup; the pod still gets its NIC",
        killedBetweenPrepareAndSandbox,
      ],
      [
        "a pod created while the driver is down waits, and starts with its NIC when it is back",
        driverDownWhenPodComes,
      ],
      [
        "the kubelet killed in the middle of a prepare asks again; the claim is prepared once",
        kubeletKilledMidPrepare,
      ],
    ])
  ));
