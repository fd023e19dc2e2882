/**
 * A hydra network by ResourceClaim instead of the annotation (a step of
 * claims_test.ts): a pod claiming the NAD "blue" (its claim allocated a
 * network slot by kube-scheduler) gets the same interface, the same kind of
 * network-status entry and result annotation as a pod asking for it with
 * `k8s.v1.cni.cncf.io/networks`; the claim's status carries the attachment
 * (networkData); deleting the pod frees the address.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { poll } from "../infra/process.ts";
import { uniqueName } from "../helpers/netns.ts";
import { type DraWorld, globalAddrs } from "./world.ts";
import { NETWORK_STATUS_ANNOTATION, resultAnnotationKey } from "../../kube/status.ts";
import type { Pod } from "../../kube/objects.ts";

type Entry = {
  name: string;
  interface?: string;
  ips?: string[];
  mac?: string;
  dns?: unknown;
  default?: boolean;
};

async function statusOf(
  w: DraWorld,
  name: string,
  ifName: string,
): Promise<{ pod: Pod; entry: Entry }> {
  let pod: Pod | undefined;
  let entry: Entry | undefined;
  const ok = await poll(
    async () => {
      pod = await w.getPod(name);
      const all = JSON.parse(
        pod?.metadata.annotations?.[NETWORK_STATUS_ANNOTATION] ?? "[]",
      ) as Entry[];
      entry = all.find((e) => e.interface === ifName);
      return entry !== undefined;
    },
    30_000,
    200,
  );
  assert.ok(ok, `${name}: network-status names ${ifName}`);
  return { pod: pod!, entry: entry! };
}

function reserved(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
      /^\d+\.\d+\.\d+\.\d+$/.test(n)
    );
  } catch {
    return [];
  }
}

/** A network by claim gets what the annotation gives. */
export async function networkByClaim(w: DraWorld): Promise<void> {
  await w.startDra();
  await w.startNri();
  const octet = 1 + (crypto.getRandomValues(new Uint8Array(1))[0] % 200);
  const subnet = `10.77.${octet}`;
  await w.nad("blue", {
    cniVersion: "1.1.0",
    name: "blue",
    plugins: [{
      type: "hydra-bridge",
      bridge: uniqueName("hbl"),
      ipam: { type: "hydra-ipam", subnet: `${subnet}.0/24`, dataDir: w.ipamDir },
    }],
  });

  // The annotation path.
  await w.createPod("anno", [], {
    annotations: { "k8s.v1.cni.cncf.io/networks": "blue@blue0" },
  });
  // The claim path.
  await w.createClaim("blue-claim", [{ name: "blue0", deviceClassName: "hydra-network" }], {
    network: "blue",
  });
  await w.createPod("claimed", [{ name: "net", claim: "blue-claim" }]);
  await w.waitRunning("anno");
  await w.waitRunning("claimed");

  const a = await statusOf(w, "anno", "blue0");
  const c = await statusOf(w, "claimed", "blue0");
  for (const [what, s] of [["annotation", a], ["claim", c]] as const) {
    assert.equal(s.entry.name, `${w.ns}/blue`, `${what}: named after the NAD`);
    assert.ok(!s.entry.default, `${what}: not the default network`);
    assert.match(s.entry.ips?.[0] ?? "", new RegExp(`^${subnet.replaceAll(".", "\\.")}\\.\\d+$`));
    const netns = await w.podNetns(what === "annotation" ? "anno" : "claimed");
    const link = (await w.addrs(netns)).find((l) => l.ifname === "blue0");
    assert.equal(link?.address, s.entry.mac, `${what}: MAC as in the kernel`);
    assert.deepEqual(
      globalAddrs(link).map((x) => x.split("/")[0]),
      s.entry.ips,
      `${what}: addresses as in the kernel`,
    );
    assert.ok(
      s.pod.metadata.annotations?.[resultAnnotationKey(`${w.ns}/blue`)],
      `${what}: result annotation`,
    );
  }
  // Same shape of entry either way.
  assert.deepEqual(Object.keys(c.entry).sort(), Object.keys(a.entry).sort());

  const claim = await w.getClaim("blue-claim");
  const results = claim.status?.allocation?.devices?.results ?? [];
  assert.equal(results.length, 1, "the scheduler allocated one network slot");
  assert.match(results[0].device, /^net-\d+$/);
  const dev = claim.status?.devices?.find((d) => d.device === results[0].device);
  assert.deepEqual(dev?.networkData, {
    interfaceName: "blue0",
    ips: [`${c.entry.ips![0]}/24`],
    hardwareAddress: c.entry.mac,
  });
  assert.equal(reserved(join(w.ipamDir, "blue")).length, 2);

  await w.deletePod("claimed");
  await w.deletePod("anno");
  assert.ok(
    await poll(() => reserved(join(w.ipamDir, "blue")).length === 0, 30_000, 200),
    "addresses freed",
  );
}
