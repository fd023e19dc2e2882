import assert from "node:assert/strict";
import type { Pod } from "../kube/objects.ts";
import { NETWORK_STATUS_ANNOTATION, resultAnnotationKey } from "../kube/status.ts";
import { type AttachmentRecord, RECORD_KIND } from "../engine/record.ts";
import { statusDrift } from "./status.ts";

function record(nets: [string, string, boolean?][]): AttachmentRecord {
  return {
    kind: RECORD_KIND,
    containerId: "c1",
    ifName: "eth0",
    netns: "/x",
    delegates: nets.map(([network, ifName, pending]) => ({
      ifName,
      network,
      config: { name: network },
      ...(pending ? { pending } : {}),
    })),
  };
}

function pod(entries: [string, string][], ours: string[]): Pod {
  const annotations: Record<string, string> = {
    [NETWORK_STATUS_ANNOTATION]: JSON.stringify(
      entries.map(([name, iface]) => ({ name, interface: iface, dns: {} })),
    ),
  };
  for (const n of ours) annotations[resultAnnotationKey(n)] = "{}";
  return { metadata: { name: "p", namespace: "ns", annotations } };
}

const names = (d: ReturnType<typeof statusDrift>) => ({
  missing: d.missing.map((m) => `${m.network}@${m.ifName}`),
  remove: d.remove,
  redo: d.redo,
});

Deno.test("status: what the pod's network-status lacks or holds too much of", () => {
  const r = record([["cluster", "eth0"], ["ns/blue", "net1"], ["ns/green", "net2", true]]);
  // In line: the default network is the runtime's business, a pending plug not shown yet.
  assert.deepEqual(
    names(statusDrift(pod([["cluster", "eth0"], ["ns/blue", "net1"]], ["ns/blue"]), r, "meta")),
    { missing: [], remove: [], redo: [] },
  );
  // A detached network of hydra's goes; entries of other writers stay.
  assert.deepEqual(
    names(statusDrift(
      pod([["cluster", "eth0"], ["ns/blue", "net1"], ["ns/red", "net3"], ["sriov", "net9"]], [
        "ns/blue",
        "ns/red",
      ]),
      r,
      "meta",
    )),
    { missing: [], remove: ["ns/red"], redo: [] },
  );
  // An entry of a network still attached, but on another interface, is redone.
  assert.deepEqual(
    names(statusDrift(pod([["ns/blue", "net7"]], ["ns/blue"]), r, "meta")),
    { missing: ["ns/blue@net1"], remove: [], redo: ["ns/blue"] },
  );
  // Under NRI every recorded network is an extra one.
  assert.deepEqual(
    names(statusDrift(pod([["default-cni", "eth0"]], []), record([["ns/blue", "net1"]]), "nri")),
    { missing: ["ns/blue@net1"], remove: [], redo: [] },
  );
});
