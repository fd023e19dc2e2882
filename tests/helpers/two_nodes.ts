/**
 * Two "nodes" for overlay tests: each a namespace with a pod namespace
 * beside it, the nodes joined by a veth underlay `ul0` with one address
 * each. Everything is removed afterwards, also when the body fails.
 *
 * @module
 */

import { createNetns, deleteNetns, run, type TestNetns } from "./netns.ts";

/** One node of the pair. */
export interface TestNode {
  /** `node1` or `node2`. */
  name: string;
  /** The node's namespace (holds `ul0`). */
  ns: TestNetns;
  /** A pod namespace on the node (empty but for lo). */
  pod: TestNetns;
  /** The node's underlay address on `ul0` (/24). */
  underlay: string;
  /** The node's pod range, as given. */
  podRange: string;
}

/** How to lay the two nodes out. */
export interface TwoNodesOptions {
  /** Underlay addresses of node1 and node2 (same /24). */
  underlays: [string, string];
  /** Pod ranges of node1 and node2. */
  podRanges: [string, string];
  /** Prefix of the namespaces' names. */
  prefix: string;
}

/**
 * Runs `fn` with two nodes joined by their underlay and a scratch folder,
 * then deletes the namespaces and the folder.
 */
export async function withTwoNodes(
  opts: TwoNodesOptions,
  fn: (a: TestNode, b: TestNode, dir: string) => Promise<void>,
): Promise<void> {
  const made: TestNetns[] = [];
  const dir = await Deno.makeTempDir({ prefix: `${opts.prefix}-` });
  try {
    const nodes: TestNode[] = [];
    for (const [i, underlay] of opts.underlays.entries()) {
      const ns = await createNetns(`${opts.prefix}n`);
      made.push(ns);
      const pod = await createNetns(`${opts.prefix}p`);
      made.push(pod);
      nodes.push({ name: `node${i + 1}`, ns, pod, underlay, podRange: opts.podRanges[i] });
    }
    const [a, b] = nodes;
    // Made as root would on real nodes: both ends named ul0, one per node.
    await run(
      "ip",
      "link",
      "add",
      "ul0",
      "netns",
      a.ns.name,
      "type",
      "veth",
      "peer",
      "name",
      "ul0",
      "netns",
      b.ns.name,
    );
    for (const n of nodes) {
      await run("ip", "-n", n.ns.name, "addr", "add", `${n.underlay}/24`, "dev", "ul0");
      await run("ip", "-n", n.ns.name, "link", "set", "ul0", "up");
    }
    await fn(a, b, dir);
  } finally {
    for (const ns of made.reverse()) await deleteNetns(ns);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
