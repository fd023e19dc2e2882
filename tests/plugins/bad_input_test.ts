/**
 * Bad input to the interface plugins: each case must end in a clear CNI
 * error with the spec's code, and leave the pod namespace and the host as
 * they were (no link, address, rule or IP reservation left behind).
 */

import assert from "node:assert/strict";
import {
  containerId,
  hydraBin,
  inNs,
  invoke,
  kernelState,
  mustInvoke,
  randomSubnet24,
  reference,
  withWorld,
  type World,
} from "./helpers.ts";

const ref = reference();

/** Host and pod state, reservations included, to compare before and after. */
async function everything(w: World) {
  const reservations: string[] = [];
  const walk = (dir: string) => {
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (e.isDirectory) walk(`${dir}/${e.name}`);
        else if (e.name !== "lock" && !e.name.startsWith("last_reserved_ip")) {
          reservations.push(`${dir}/${e.name}`);
        }
      }
    } catch {
      // no store yet
    }
  };
  walk(w.dir);
  return {
    host: await kernelState(w.host, { nat: true }),
    pod: await kernelState(w.pods[0]),
    reservations: reservations.sort(),
  };
}

function addInv(w: World) {
  return {
    command: "ADD" as const,
    containerId: containerId(),
    netns: w.pods[0].path,
    ifName: "eth0",
    path: [ref.dir],
  };
}

/** Runs a failing ADD and checks its code, message and that nothing changed. */
async function refused(
  w: World,
  binary: string,
  config: Record<string, unknown>,
  code: number,
  msg: RegExp,
  inv = addInv(w),
): Promise<void> {
  const before = await everything(w);
  const out = await invoke(w.host, binary, inv, config);
  assert.notEqual(out.code, 0, `${binary} accepted ${JSON.stringify(config)}`);
  assert.equal(out.json?.code, code, out.stdout);
  assert.match(String(out.json?.msg), msg);
  assert.deepEqual(await everything(w), before);
}

function bridgeConf(w: World, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: "1.1.0",
    name: "bad",
    type: "hydra-bridge",
    bridge: "cni0",
    isGateway: true,
    ipMasq: true,
    ipam: { type: "hydra-ipam", subnet: randomSubnet24(), dataDir: `${w.dir}/ipam` },
    ...extra,
  };
}

const BRIDGE = `${hydraBin}/hydra-bridge`;

Deno.test("bad input: a missing macvlan master is a config error", async () => {
  await withWorld(1, async (w) => {
    const conf = {
      cniVersion: "1.1.0",
      name: "bad",
      type: "hydra-macvlan",
      master: "nosuch0",
      ipam: { type: "hydra-ipam", subnet: randomSubnet24(), dataDir: `${w.dir}/ipam` },
    };
    await refused(w, `${hydraBin}/hydra-macvlan`, conf, 7, /master device "nosuch0" not found/);
    // Without a master and without a default route there is nothing to choose.
    const { master: _, ...noMaster } = conf;
    await refused(w, `${hydraBin}/hydra-macvlan`, noMaster, 7, /no default route interface/);
  });
});

Deno.test("bad input: a bridge name taken by a link that is not a bridge", async () => {
  await withWorld(1, async (w) => {
    await inNs(w.host, "ip", "link", "add", "cni0", "type", "veth", "peer", "name", "cni0p");
    await refused(w, BRIDGE, bridgeConf(w), 7, /"cni0" already exists but is not a bridge/);
  });
});

Deno.test("bad input: CNI_IFNAME already used in the pod, for every interface plugin", async () => {
  await withWorld(1, async (w) => {
    await inNs(w.pods[0], "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p");
    await inNs(w.host, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1");
    await inNs(w.host, "ip", "link", "add", "nic0", "type", "veth", "peer", "name", "nic0p");
    const taken = /interface "eth0" already exists/;
    await refused(w, BRIDGE, bridgeConf(w), 4, taken);
    await refused(
      w,
      `${hydraBin}/hydra-macvlan`,
      {
        cniVersion: "1.1.0",
        name: "bad",
        type: "hydra-macvlan",
        master: "up0",
      },
      4,
      taken,
    );
    await refused(
      w,
      `${hydraBin}/hydra-host-device`,
      {
        cniVersion: "1.1.0",
        name: "bad",
        type: "hydra-host-device",
        device: "nic0",
      },
      4,
      taken,
    );
  });
});

Deno.test("bad input: an exhausted range fails the ADD with 'try again later' and undoes the link", async () => {
  await withWorld(2, async (w) => {
    // A /30 has a gateway and a single address to hand out.
    const conf = bridgeConf(w, {
      ipam: { type: "hydra-ipam", subnet: "100.64.255.0/30", dataDir: `${w.dir}/ipam` },
    });
    const first = { ...addInv(w), netns: w.pods[1].path };
    await mustInvoke(w.host, BRIDGE, first, conf);
    await refused(w, BRIDGE, conf, 11, /no IP addresses available/);
    // The reference host-local runs out the same way; the failure is its own (999).
    const viaHostLocal = bridgeConf(w, {
      ipam: { type: "host-local", subnet: "100.64.255.0/30", dataDir: `${w.dir}/ipam` },
    });
    await refused(w, BRIDGE, viaHostLocal, 999, /no IP addresses available/);
  });
});

Deno.test("bad input: a gateway clashing with the bridge's address undoes everything, address included", async () => {
  await withWorld(1, async (w) => {
    await inNs(w.host, "ip", "link", "add", "cni0", "type", "bridge");
    await inNs(w.host, "ip", "addr", "add", "100.64.0.1/16", "dev", "cni0");
    const conf = bridgeConf(w, {
      ipam: { type: "hydra-ipam", subnet: "100.64.7.0/24", dataDir: `${w.dir}/ipam` },
    });
    await refused(w, BRIDGE, conf, 7, /already has an IP address different from 100\.64\.7\.1\/24/);
  });
});

Deno.test("bad input: a requested address equal to the range's gateway is refused", async () => {
  await withWorld(1, async (w) => {
    const conf = bridgeConf(w, {
      ipam: { type: "hydra-ipam", subnet: "100.64.9.0/24", dataDir: `${w.dir}/ipam` },
    });
    const inv = { ...addInv(w), args: "IgnoreUnknown=1;IP=100.64.9.1" };
    await refused(w, BRIDGE, conf, 7, /100\.64\.9\.1.*gateway/, inv);
  });
});

Deno.test("bad input: malformed plugin fields are decoding or config errors", async () => {
  await withWorld(1, async (w) => {
    await refused(w, BRIDGE, bridgeConf(w, { mtu: "1500" }), 6, /"mtu" must be an integer/);
    await refused(w, BRIDGE, bridgeConf(w, { vlan: 5000 }), 7, /invalid VLAN ID 5000/);
    await refused(w, BRIDGE, bridgeConf(w, { hairpinMode: true, promiscMode: true }), 7, /hairpin/);
    await refused(w, BRIDGE, bridgeConf(w, { macspoofchk: true }), 2, /macspoofchk/);
    await refused(
      w,
      `${hydraBin}/hydra-macvlan`,
      {
        cniVersion: "1.1.0",
        name: "bad",
        type: "hydra-macvlan",
        master: "lo",
        mode: "sideways",
      },
      7,
      /unknown macvlan mode/,
    );
  });
});
