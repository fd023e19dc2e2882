/**
 * Test fixtures shared by the router's kernel tests: two networks, a node
 * namespace with an underlay, Node entries and the desired state of a
 * network for them.
 *
 * @module
 */

import { closeHandle, type Handle, openHandle } from "../netlink/mod.ts";
import { createNetns, deleteNetns, run, type TestNetns } from "../tests/helpers/netns.ts";
import { parseNetwork } from "./config.ts";
import { computeDesired } from "./desired.ts";
import type { NodeInfo } from "./nodes.ts";

/** Allowed ranges that hold every CIDR: for tests of everything but the range check. */
export const ANYWHERE = ["0.0.0.0/0", "::/0"];

/** The default network, routed. */
export const routed = parseNetwork({ allowedCIDRs: ANYWHERE, name: "default" }, 0);

/** A vxlan network, protocol 204, device vx-red, VNI 42. */
export const red = parseNetwork(
  {
    allowedCIDRs: ANYWHERE,
    name: "red",
    mode: "vxlan",
    protocol: 204,
    vxlan: { device: "vx-red", vni: 42 },
  },
  1,
);

/**
 * Runs `fn` in a namespace with an underlay veth `ul0` at 192.168.50.1/24
 * (its peer in a second namespace), then deletes both.
 */
export async function withNode(
  prefix: string,
  fn: (ns: TestNetns, h: Handle) => Promise<void>,
): Promise<void> {
  const ns = await createNetns(`${prefix}n`);
  const peer = await createNetns(`${prefix}p`);
  const h = openHandle({ netnsPath: ns.path });
  try {
    await run(
      "ip",
      "-n",
      ns.name,
      "link",
      "add",
      "ul0",
      "type",
      "veth",
      "peer",
      "ul0p",
      "netns",
      peer.name,
    );
    await run("ip", "-n", ns.name, "addr", "add", "192.168.50.1/24", "dev", "ul0");
    await run("ip", "-n", ns.name, "link", "set", "ul0", "up");
    await run("ip", "-n", peer.name, "link", "set", "ul0p", "up");
    await fn(ns, h);
  } finally {
    closeHandle(h);
    await deleteNetns(ns);
    await deleteNetns(peer);
  }
}

/** A Node with pod CIDRs `cidrs` at `addr`, and the red network's CIDR (10.246 for 10.244) and address. */
export function testNode(name: string, cidrs: string[], addr: string): NodeInfo {
  return {
    name,
    podCIDRs: cidrs,
    internalIPs: [addr],
    annotations: {
      "hydra.clusternet.io/red.cidr": cidrs[0].replace("10.244", "10.246"),
      "hydra.clusternet.io/red.address": addr,
    },
  };
}

/** The desired state of `net` on node n1 (at 192.168.50.1) for `nodes`. */
export function desired(nodes: NodeInfo[], net = routed) {
  return computeDesired({
    networks: [net],
    nodes,
    localName: "n1",
    localAddresses: ["192.168.50.1"],
  })
    .networks[0];
}
