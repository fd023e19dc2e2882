/**
 * The demo's world: "nodes" joined by an underlay, each with a few "pods",
 * all of them network namespaces made through hydra's own netlink layer.
 *
 * The underlay bridge lives in a namespace of its own, so nothing of the
 * demo touches the host's links, addresses or routes.
 *
 * @module
 */

import {
  addAddr,
  addLink,
  closeHandle,
  createNamedNetns,
  deleteNamedNetns,
  type Handle,
  namedNetnsPath,
  openHandle,
  setLinkUp,
  sysctlWrite,
} from "../netlink/mod.ts";

/** A pod: a namespace on a node. */
export interface DemoPod {
  name: string;
  netns: string;
  netnsPath: string;
  node: DemoNode;
  containerId: string;
}

/** A node: a namespace with an underlay address, hosting pods. */
export interface DemoNode {
  name: string;
  index: number;
  netns: string;
  netnsPath: string;
  underlayIp: string;
  pods: DemoPod[];
}

/** The whole demo world. */
export interface DemoWorld {
  id: string;
  underlayNetns: string;
  underlayCidr: string;
  nodes: DemoNode[];
  /** More namespaces of the demo (the hybrid network's outside host), removed with the rest. */
  extraNetns: string[];
  /** The outside host's namespace, once the fabric is built. */
  outsideNetnsPath?: string;
}

/** The underlay subnet: private to the demo's own underlay namespace. */
const UNDERLAY_PREFIX = "192.168.77";

function withNs<T>(path: string, fn: (h: Handle) => T): T {
  const h = openHandle({ netnsPath: path });
  try {
    return fn(h);
  } finally {
    closeHandle(h);
  }
}

function nsName(id: string, suffix: string): string {
  return `hydra-demo-${id}-${suffix}`;
}

/**
 * Builds the world: an underlay namespace with bridge `ul0`, `nodes` node
 * namespaces each wired to it by a veth (`eth0` in the node), and `pods`
 * empty pod namespaces per node with loopback up.
 */
export function buildWorld(id: string, nodes: number, pods: number): DemoWorld {
  const world: DemoWorld = {
    id,
    underlayNetns: nsName(id, "ul"),
    underlayCidr: `${UNDERLAY_PREFIX}.0/24`,
    nodes: [],
    extraNetns: [],
  };
  try {
    const ulPath = createNamedNetns(world.underlayNetns);
    withNs(ulPath, (h) => {
      setLinkUp(h, "lo");
      addLink(h, { kind: "bridge", name: "ul0", up: true });
    });
    for (let n = 1; n <= nodes; n++) {
      const node: DemoNode = {
        name: `node${n}`,
        index: n,
        netns: nsName(id, `n${n}`),
        netnsPath: "",
        underlayIp: `${UNDERLAY_PREFIX}.${10 + n}`,
        pods: [],
      };
      node.netnsPath = createNamedNetns(node.netns);
      world.nodes.push(node);
      withNs(ulPath, (h) => {
        addLink(h, {
          kind: "veth",
          name: `n${n}`,
          master: "ul0",
          up: true,
          peer: { name: "eth0", netns: node.netnsPath },
        });
      });
      withNs(node.netnsPath, (h) => {
        setLinkUp(h, "lo");
        addAddr(h, "eth0", `${node.underlayIp}/24`);
        setLinkUp(h, "eth0");
      });
      sysctlWrite(node.netnsPath, "net.ipv4.ip_forward", "1");
      for (let p = 1; p <= pods; p++) {
        const name = `n${n}-pod${p}`;
        const netns = nsName(id, `n${n}p${p}`);
        const pod: DemoPod = {
          name,
          netns,
          netnsPath: createNamedNetns(netns),
          node,
          containerId: `hydra-demo-${id}-${name}`,
        };
        withNs(pod.netnsPath, (h) => setLinkUp(h, "lo"));
        node.pods.push(pod);
      }
    }
    return world;
  } catch (err) {
    destroyWorld(world);
    throw err;
  }
}

/** Removes every namespace of the world; tolerates ones already gone. */
export function destroyWorld(world: DemoWorld): void {
  const names = [
    ...world.nodes.flatMap((n) => n.pods.map((p) => p.netns)),
    ...world.nodes.map((n) => n.netns),
    ...world.extraNetns,
    world.underlayNetns,
  ];
  for (const name of names) {
    try {
      deleteNamedNetns(name);
    } catch {
      // already gone
    }
  }
}

/** Path of a named namespace, for callers that only know the name. */
export { namedNetnsPath };
