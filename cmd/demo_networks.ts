/**
 * The networks the demo attaches to every pod, as delegate configs of the
 * meta-CNI. Each node gets its own slice of each network's address space;
 * between nodes the router carries the traffic.
 *
 * @module
 */

import type { NetConf } from "../cni/types.ts";
import type { DemoNode, DemoPod } from "./demo_world.ts";
import { hybridPodDelegate } from "./demo_hybrid.ts";

/** Which plugin family the demo's delegates use. */
export type PluginSet = "hydra" | "reference";

/** A network of the demo. */
export interface DemoNetwork {
  name: string;
  /** Interface it gets in each pod. */
  ifName: string;
  /** How it is carried between nodes, for the table's legend. */
  mode: "routed" | "vxlan" | "hybrid";
  /** The whole network's address space; each node has a /24 of it. */
  cidr: string;
  /** The node's slice of the network. */
  nodeCidr(node: DemoNode): string;
  /** The delegate config for a node. */
  delegate(node: DemoNode, plugins: PluginSet, dataDir: string): NetConf;
  /** A delegate chosen per pod (the hybrid network: overlay or underlay by the pod's kind). */
  podDelegate?(pod: DemoPod, plugins: PluginSet, dataDir: string): NetConf;
}

function bridgeDelegate(
  net: { name: string; bridge: string; cidr: string; defaultGw: boolean; mtu?: number },
  nodeCidr: string,
  plugins: PluginSet,
  dataDir: string,
): NetConf {
  return {
    cniVersion: "1.0.0",
    name: net.name,
    type: plugins === "hydra" ? "hydra-bridge" : "bridge",
    bridge: net.bridge,
    isGateway: true,
    ...(net.defaultGw ? { isDefaultGateway: true } : {}),
    ...(net.mtu ? { mtu: net.mtu } : {}),
    ipam: {
      type: plugins === "hydra" ? "hydra-ipam" : "host-local",
      ranges: [[{ subnet: nodeCidr }]],
      // A secondary network reaches its other nodes' slices through its own gateway.
      ...(net.defaultGw ? {} : { routes: [{ dst: net.cidr }] }),
      dataDir,
    },
  };
}

function sliceOf(prefix: string) {
  return (node: DemoNode) => `${prefix}.${node.index}.0/24`;
}

/** The default network (eth0) and the secondary networks of the demo. */
export function demoNetworks(): DemoNetwork[] {
  const defaultNet = { name: "default", bridge: "cni0", cidr: "10.244.0.0/16", defaultGw: true };
  const blue = { name: "blue", bridge: "br-blue", cidr: "10.245.0.0/16", defaultGw: false };
  // Carried over vxlan between nodes: room for the 50-byte encapsulation on a 1500 underlay.
  const red = {
    name: "red",
    bridge: "br-red",
    cidr: "10.246.0.0/16",
    defaultGw: false,
    mtu: 1450,
  };
  return [
    {
      ...defaultNet,
      ifName: "eth0",
      mode: "routed",
      nodeCidr: sliceOf("10.244"),
      delegate(node, plugins, dataDir) {
        return bridgeDelegate(defaultNet, this.nodeCidr(node), plugins, dataDir);
      },
    },
    {
      ...blue,
      ifName: "net1",
      mode: "routed",
      nodeCidr: sliceOf("10.245"),
      delegate(node, plugins, dataDir) {
        return bridgeDelegate(blue, this.nodeCidr(node), plugins, dataDir);
      },
    },
    {
      ...red,
      ifName: "net2",
      mode: "vxlan",
      nodeCidr: sliceOf("10.246"),
      delegate(node, plugins, dataDir) {
        return bridgeDelegate(red, this.nodeCidr(node), plugins, dataDir);
      },
    },
    {
      // Overlay and underlay pods side by side: see demo_hybrid.ts.
      name: "hybrid",
      ifName: "net3",
      mode: "hybrid",
      cidr: "10.250.0.0/16,192.168.50.0/24",
      nodeCidr: sliceOf("10.250"),
      delegate(node) {
        throw new Error(`the hybrid network is chosen per pod, not per node (${node.name})`);
      },
      podDelegate: hybridPodDelegate,
    },
  ];
}
