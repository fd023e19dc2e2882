/**
 * The benchmark's sandbox: a "node" network namespace standing in for the
 * host (plugins run inside it, so the real host is never touched), an
 * uplink in it for macvlan, a fresh namespace per pod, a spare device per
 * pod for host-device, and a scratch folder for IPAM and cache state.
 *
 * Every name carries the world's random id, so concurrent runs cannot
 * clash, and {@link destroyWorld} removes everything, also after a failure
 * (the plugins' per-bridge lock files on the host included).
 * Namespaces and links are made through hydra's netlink layer: fast, and no
 * `ip` processes competing with the measured ones.
 *
 * @module
 */

import {
  addAddr,
  addLink,
  closeHandle,
  createNamedNetns,
  deleteNamedNetns,
  delLink,
  findLink,
  type Handle,
  openHandle,
  setLinkUp,
} from "../netlink/mod.ts";
import { LOCK_DIR } from "../plugins/host_lock.ts";

/** The sandbox a benchmark run works in. */
export interface BenchWorld {
  /** Random id in every name (6 base-36 characters). */
  id: string;
  /** Named namespace playing the node. */
  nodeNetns: string;
  /** Its path (/var/run/netns/…). */
  nodePath: string;
  /** Interface in the node namespace that macvlan and vxlan attach to. */
  uplink: string;
  /** Its IPv4 address (a documentation address, alive only in the node namespace). */
  uplinkAddress: string;
  /** Scratch folder (IPAM data, caches, configs). */
  dir: string;
  /** Handle in the node namespace, for host-device spares. */
  node: Handle;
  /** Pod namespaces still to delete (name → path). */
  pods: Map<string, string>;
  /** Host-device spares still to delete in the node namespace. */
  spares: Set<string>;
  seq: number;
}

function randomId(): string {
  const n = crypto.getRandomValues(new Uint32Array(1))[0];
  return n.toString(36).padStart(6, "0").slice(-6);
}

/** Creates the node namespace (lo up), its uplink veth pair and the scratch folder. */
export async function createWorld(): Promise<BenchWorld> {
  const id = randomId();
  const nodeNetns = `hbench-${id}-node`;
  const nodePath = createNamedNetns(nodeNetns);
  let node: Handle | undefined;
  try {
    node = openHandle({ netnsPath: nodePath });
    setLinkUp(node, "lo");
    // macvlan needs a parent; a veth end in the node namespace will do.
    const uplink = `hbu${id}`;
    addLink(node, { kind: "veth", name: uplink, peer: { name: `hbp${id}` }, up: true });
    setLinkUp(node, `hbp${id}`);
    const uplinkAddress = "192.0.2.1";
    addAddr(node, uplink, `${uplinkAddress}/24`);
    const dir = await Deno.makeTempDir({ prefix: `hydra-bench-${id}-` });
    return {
      id,
      nodeNetns,
      nodePath,
      uplink,
      uplinkAddress,
      dir,
      node,
      pods: new Map(),
      spares: new Set(),
      seq: 0,
    };
  } catch (err) {
    if (node) closeHandle(node);
    deleteNamedNetns(nodeNetns);
    throw err;
  }
}

/** A fresh pod namespace: its name and path. */
export interface PodNetns {
  name: string;
  path: string;
}

/** Creates a fresh, uniquely named pod namespace (outside any timed region). */
export function createPod(world: BenchWorld): PodNetns {
  const name = `hbench-${world.id}-p${(world.seq++).toString(36)}`;
  const path = createNamedNetns(name);
  world.pods.set(name, path);
  return { name, path };
}

/** Deletes a pod namespace made by {@link createPod}. */
export function deletePod(world: BenchWorld, pod: PodNetns): void {
  world.pods.delete(pod.name);
  deleteNamedNetns(pod.name);
}

/**
 * Makes a spare device in the node namespace for host-device to move into a
 * pod (one end of a veth pair; its peer stays behind) and returns its name.
 */
export function createSpare(world: BenchWorld): string {
  const tag = (world.seq++).toString(36);
  const name = `hbd${world.id}${tag}`.slice(0, 15);
  const peer = `hbe${world.id}${tag}`.slice(0, 15);
  addLink(world.node, { kind: "veth", name, peer: { name: peer } });
  world.spares.add(name);
  return name;
}

/** Deletes a spare (and its peer) once DEL has given it back to the node. */
export function deleteSpare(world: BenchWorld, name: string): void {
  world.spares.delete(name);
  if (findLink(world.node, name)) delLink(world.node, name);
}

/** Removes every namespace, link and file the world made; never throws. */
export async function destroyWorld(world: BenchWorld): Promise<void> {
  for (const name of world.pods.keys()) {
    try {
      deleteNamedNetns(name);
    } catch {
      // already gone
    }
  }
  world.pods.clear();
  for (const name of world.spares) {
    try {
      if (findLink(world.node, name)) delLink(world.node, name);
    } catch {
      // gone with a pod namespace
    }
  }
  world.spares.clear();
  closeHandle(world.node);
  try {
    // Bridges, the uplink and everything else left in it go with the namespace.
    deleteNamedNetns(world.nodeNetns);
  } catch {
    // already gone
  }
  await Deno.remove(world.dir, { recursive: true }).catch(() => {});
  // hydra-bridge and hydra-vxlan keep a lock file per bridge on the host.
  try {
    for (const e of Deno.readDirSync(LOCK_DIR)) {
      if (e.name.includes(`hb${world.id}`)) Deno.removeSync(`${LOCK_DIR}/${e.name}`);
    }
  } catch {
    // no lock folder: nothing to remove
  }
}
