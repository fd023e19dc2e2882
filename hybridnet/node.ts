/**
 * A node as a hybrid network sees it: its fabric address and its address
 * blocks, read from its annotations and addresses. Shared by the router
 * (which routes the blocks) and the attachment (which takes a pod's
 * address from the node's block).
 *
 * @module
 */

import { isCidr, isIp, networkCidr } from "../ipaddr/ip.ts";
import {
  HYBRID_ANNOTATION_PREFIX,
  type HybridNetwork,
  type SubnetKind,
  subnetOf,
} from "./model.ts";

/** What a hybrid network reads of a Node object. */
export interface NodeFacts {
  name: string;
  /** status.addresses of type InternalIP. */
  internalIPs: string[];
  annotations: Record<string, string>;
}

/** A node as a hybrid network sees it. */
export interface HybridNode {
  name: string;
  /** Its address on the fabric: the vxlan endpoint and the underlay pods' way to the overlay. */
  address?: string;
  /** Its address blocks, each inside one subnet of the network. */
  blocks: { cidr: string; kind: SubnetKind; subnet: string }[];
}

/** Something wrong with one node's data, or with this node. */
export interface HybridProblem {
  kind: "no_address" | "bad_block" | "overlapping_block" | "duplicate_address";
  node: string;
  message: string;
}

/** The annotation holding a node's blocks on network `net` (comma-separated CIDRs). */
export function blocksAnnotation(net: string): string {
  return `${HYBRID_ANNOTATION_PREFIX}${net}.cidr`;
}

/** The annotation holding a node's fabric address for network `net`. */
export function addressAnnotation(net: string): string {
  return `${HYBRID_ANNOTATION_PREFIX}${net}.address`;
}

/** Reads a node's part of the network from its annotations and addresses. */
export function hybridNode(
  node: NodeFacts,
  net: HybridNetwork,
  problems: HybridProblem[],
): HybridNode {
  const out: HybridNode = { name: node.name, blocks: [] };
  const addr = node.annotations[addressAnnotation(net.name)]?.trim() ??
    node.internalIPs.find((a) => isIp(a) && !a.includes(":"));
  if (addr && isIp(addr) && !addr.includes(":")) out.address = addr;
  else {
    problems.push({
      kind: "no_address",
      node: node.name,
      message: `network ${net.name}: node ${node.name} has no IPv4 fabric address; left out`,
    });
  }
  const text = node.annotations[blocksAnnotation(net.name)] ?? "";
  for (const raw of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const subnet = isCidr(raw) && !raw.includes(":") ? subnetOf(net, raw) : undefined;
    if (!subnet) {
      problems.push({
        kind: "bad_block",
        node: node.name,
        message: `network ${net.name}: block ${raw} of node ${node.name} is not inside a ` +
          `subnet of the network; not routed`,
      });
      continue;
    }
    const len = Number(raw.split("/")[1]);
    if (len !== subnet.blockSize) {
      // A node may only claim blocks of its subnet's size: never a span covering others' blocks.
      problems.push({
        kind: "bad_block",
        node: node.name,
        message:
          `network ${net.name}: block ${raw} of node ${node.name} is not a /${subnet.blockSize} ` +
          `of subnet ${subnet.name}; not routed`,
      });
      continue;
    }
    out.blocks.push({ cidr: networkCidr(raw), kind: subnet.kind, subnet: subnet.name });
  }
  return out;
}
