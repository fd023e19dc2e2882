/**
 * The meta-CNI runs hydra's built-in plugins in its own process; a runtime
 * can also exec each plugin through its symlink. Both ways must give the
 * same results and the same kernel state.
 *
 * The meta-CNI is given a CNI_PATH without hydra's symlinks: it can only
 * have run the built-ins in-process.
 */

import assert from "node:assert/strict";
import type { TestNetns } from "../helpers/netns.ts";
import {
  containerId,
  hydraBin,
  inNs,
  kernelState,
  mustInvoke,
  normalizeResult,
  randomSubnet24,
  reference,
  withWorld,
  type World,
} from "./helpers.ts";

const ref = reference();

async function uplink(w: World): Promise<void> {
  await inNs(w.host, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1");
  await inNs(w.host, "ip", "link", "set", "up0", "up");
  await inNs(w.host, "ip", "link", "set", "up1", "up");
}

function networks(w: World, subnets: string[]) {
  const bridge = {
    cniVersion: "1.1.0",
    name: "pods",
    type: "hydra-bridge",
    bridge: "cni0",
    isGateway: true,
    isDefaultGateway: true,
    ipam: { type: "hydra-ipam", subnet: subnets[0], dataDir: `${w.dir}/ipam` },
  };
  const lan = {
    cniVersion: "1.1.0",
    name: "lan",
    plugins: [
      {
        type: "hydra-macvlan",
        master: "up0",
        ipam: { type: "hydra-ipam", subnet: subnets[1], dataDir: `${w.dir}/ipam` },
      },
      { type: "hydra-tuning", mtu: 1400, sysctl: { "net.ipv4.conf.IFNAME.arp_filter": "1" } },
    ],
  };
  return { bridge, lan };
}

async function snapshot(host: TestNetns, pod: TestNetns) {
  return {
    host: await kernelState(host),
    pod: await kernelState(pod, { sysctls: ["net/ipv4/conf/net1/arp_filter"] }),
  };
}

Deno.test("meta-CNI: built-ins run in-process give the results and state of exec'd plugins", async () => {
  const subnets = [randomSubnet24(), randomSubnet24()];
  const id = containerId();

  const viaMeta = await withWorld(1, async (w) => {
    await uplink(w);
    const { bridge, lan } = networks(w, subnets);
    const meta = {
      cniVersion: "1.1.0",
      name: "hydra",
      type: "hydra",
      cacheDir: `${w.dir}/cache`,
      delegates: [bridge, { ...lan, ifname: "net1" }],
    };
    const inv = { containerId: id, netns: w.pods[0].path, ifName: "eth0", path: [ref.dir] };
    const result = await mustInvoke(w.host, `${hydraBin}/hydra`, { ...inv, command: "ADD" }, meta);
    const afterAdd = await snapshot(w.host, w.pods[0]);
    await mustInvoke(w.host, `${hydraBin}/hydra`, { ...inv, command: "CHECK" }, meta);
    await mustInvoke(w.host, `${hydraBin}/hydra`, { ...inv, command: "DEL" }, meta);
    return {
      result: normalizeResult(result),
      afterAdd,
      afterDel: await snapshot(w.host, w.pods[0]),
    };
  });

  const viaExec = await withWorld(1, async (w) => {
    await uplink(w);
    const { bridge, lan } = networks(w, subnets);
    const pod = w.pods[0].path;
    const eth0 = { containerId: id, netns: pod, ifName: "eth0", path: [hydraBin, ref.dir] };
    const net1 = { ...eth0, ifName: "net1" };
    const result = await mustInvoke(
      w.host,
      `${hydraBin}/hydra-bridge`,
      { ...eth0, command: "ADD" },
      bridge,
    );
    const macvlanConf = { cniVersion: lan.cniVersion, name: lan.name, ...lan.plugins[0] };
    const tuningConf = { cniVersion: lan.cniVersion, name: lan.name, ...lan.plugins[1] };
    const mv = await mustInvoke(
      w.host,
      `${hydraBin}/hydra-macvlan`,
      { ...net1, command: "ADD" },
      macvlanConf,
    );
    const tuned = await mustInvoke(
      w.host,
      `${hydraBin}/hydra-tuning`,
      { ...net1, command: "ADD" },
      {
        ...tuningConf,
        prevResult: mv,
      },
    );
    const afterAdd = await snapshot(w.host, w.pods[0]);
    await mustInvoke(w.host, `${hydraBin}/hydra-tuning`, { ...net1, command: "DEL" }, {
      ...tuningConf,
      prevResult: tuned,
    });
    await mustInvoke(w.host, `${hydraBin}/hydra-macvlan`, { ...net1, command: "DEL" }, {
      ...macvlanConf,
      prevResult: tuned,
    });
    await mustInvoke(w.host, `${hydraBin}/hydra-bridge`, { ...eth0, command: "DEL" }, {
      ...bridge,
      prevResult: result,
    });
    return {
      result: normalizeResult(result),
      afterAdd,
      afterDel: await snapshot(w.host, w.pods[0]),
    };
  });

  assert.deepEqual(viaMeta, viaExec);
  const podLinks = (viaMeta.afterAdd.pod.links as { name: string; mtu: number }[])
    .map((l) => `${l.name}/${l.mtu}`);
  assert.deepEqual(podLinks.sort(), ["eth0/1500", "lo/65536", "net1/1400"]);
});
