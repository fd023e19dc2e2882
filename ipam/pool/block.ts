/**
 * An AddressBlock as the allocator and the controller read it: validated
 * once when it arrives from the API, then worked on as a copy whose
 * changes go back with the resourceVersion it was read at (see
 * `store.ts`). A block that does not make sense — edited by hand so that
 * its name, CIDR or allocations disagree — is refused as a whole
 * ({@link BlockNonsenseError}): nobody allocates from it or frees anything
 * in it until a person repairs it, so a bad edit can neither hand out an
 * address twice nor lose one.
 *
 * @module
 */

import {
  formatIpAddr,
  hasHostBits,
  type IpAddr,
  type IpNet,
  ipNetContains,
  parseIpAddr,
  parseIpNet,
} from "../../ipaddr/ip.ts";
import {
  type AddressBlock,
  type Allocation,
  API_VERSION,
  BLOCK_ADDRESSES,
  blockOf,
  blockPrefix,
  NETWORK_LABEL,
  NODE_LABEL,
  nodeKey,
} from "./objects.ts";

/** A block whose object cannot be trusted; the message says what is wrong. */
export class BlockNonsenseError extends Error {
  readonly block: string;
  constructor(block: string, reason: string) {
    super(`address block ${block} is malformed (${reason}); repair or delete it by hand`);
    this.name = "BlockNonsenseError";
    this.block = block;
  }
}

/** A validated block. `allocations` is keyed by the address's offset in the block (0-15). */
export interface Block {
  readonly name: string;
  readonly network: string;
  readonly cidr: IpNet;
  /** The affine node ("" when none). */
  node: string;
  /** resourceVersion it was read at; undefined for a block not created yet. */
  readonly resourceVersion?: string;
  readonly allocations: Map<number, Allocation>;
  /** The object as read (labels and annotations are kept on write). */
  readonly object?: AddressBlock;
}

const STRING_FIELDS = [
  "pool",
  "pod",
  "podUID",
  "containerID",
  "interface",
  "node",
  "time",
  "handle",
  "statefulSet",
  "releasedAt",
  "unwantedSince",
] as const;

function checkAllocation(name: string, cidr: IpNet, raw: unknown, i: number): [number, Allocation] {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new BlockNonsenseError(name, `allocations[${i}] is not an object`);
  }
  const a = raw as Record<string, unknown>;
  const ip = typeof a.ip === "string" ? parseIpAddr(a.ip) : undefined;
  if (!ip || !ipNetContains(cidr, ip)) {
    throw new BlockNonsenseError(
      name,
      `allocations[${i}].ip ${JSON.stringify(a.ip)} is not in ${
        formatIpAddr(cidr.ip)
      }/${cidr.prefix}`,
    );
  }
  for (const key of STRING_FIELDS) {
    if (a[key] !== undefined && typeof a[key] !== "string") {
      throw new BlockNonsenseError(name, `allocations[${i}].${key} is not a string`);
    }
  }
  if (a.source !== undefined && a.source !== "pod" && a.source !== "whereabouts") {
    throw new BlockNonsenseError(
      name,
      `allocations[${i}].source ${JSON.stringify(a.source)} is unknown`,
    );
  }
  return [Number(ip.value - cidr.ip.value), {
    ...(a as unknown as Allocation),
    ip: formatIpAddr(ip),
  }];
}

/** Validates a block object; throws {@link BlockNonsenseError}. */
export function parseBlock(obj: AddressBlock): Block {
  const name = obj?.metadata?.name ?? "(unnamed)";
  const spec = obj?.spec;
  if (!spec || typeof spec !== "object") throw new BlockNonsenseError(name, "no spec");
  if (typeof spec.network !== "string") {
    throw new BlockNonsenseError(name, "spec.network is not a string");
  }
  const net = typeof spec.cidr === "string" ? parseIpNet(spec.cidr) : undefined;
  if (
    !net || net.mappedV6 || net.prefix !== blockPrefix(net.ip.family) ||
    hasHostBits(net.ip, net.prefix)
  ) {
    throw new BlockNonsenseError(
      name,
      `spec.cidr ${
        JSON.stringify(spec.cidr)
      } is not an aligned block of ${BLOCK_ADDRESSES} addresses`,
    );
  }
  const cidr: IpNet = { ip: net.ip, prefix: net.prefix };
  const expected = blockOf(spec.network, cidr.ip).name;
  if (expected !== name) {
    throw new BlockNonsenseError(
      name,
      `spec says network "${spec.network}" and ${spec.cidr}, which is block ${expected}`,
    );
  }
  if (spec.node !== undefined && typeof spec.node !== "string") {
    throw new BlockNonsenseError(name, "spec.node is not a string");
  }
  const list = spec.allocations ?? [];
  if (!Array.isArray(list)) throw new BlockNonsenseError(name, "spec.allocations is not a list");
  const allocations = new Map<number, Allocation>();
  list.forEach((raw, i) => {
    const [offset, a] = checkAllocation(name, cidr, raw, i);
    if (allocations.has(offset)) {
      throw new BlockNonsenseError(name, `address ${a.ip} is listed twice`);
    }
    allocations.set(offset, a);
  });
  return {
    name,
    network: spec.network,
    cidr,
    node: spec.node ?? "",
    resourceVersion: obj.metadata.resourceVersion,
    allocations,
    object: obj,
  };
}

/** An empty block, not yet created, affine to `node`. */
export function newBlock(network: string, ip: IpAddr, node: string): Block {
  const { name, cidr } = blockOf(network, ip);
  return { name, network, cidr, node, allocations: new Map() };
}

/** A copy to change (allocations are copied too). */
export function copyBlock(b: Block): Block {
  return {
    ...b,
    allocations: new Map([...b.allocations].map(([k, v]) => [k, { ...v }])),
  };
}

/** The address at `offset` in the block. */
export function addressAt(b: Pick<Block, "cidr">, offset: number): IpAddr {
  return { family: b.cidr.ip.family, value: b.cidr.ip.value + BigInt(offset) };
}

/** The offset of `ip` in the block, or -1 when it is not in it. */
export function offsetOf(b: Pick<Block, "cidr">, ip: IpAddr): number {
  return ipNetContains(b.cidr, ip) ? Number(ip.value - b.cidr.ip.value) : -1;
}

/** Offsets of the block's unallocated addresses that `allowed` accepts, lowest first. */
export function freeOffsets(b: Block, allowed: (ip: IpAddr) => boolean): number[] {
  const out: number[] = [];
  for (let i = 0; i < BLOCK_ADDRESSES; i++) {
    if (!b.allocations.has(i) && allowed(addressAt(b, i))) out.push(i);
  }
  return out;
}

/** The object to write for a block: its spec, labels, and the resourceVersion it was read at. */
export function blockObject(b: Block): AddressBlock {
  const old = b.object?.metadata;
  const allocations = [...b.allocations.entries()].sort((x, y) => x[0] - y[0]).map(([, a]) => a);
  return {
    apiVersion: API_VERSION,
    kind: "AddressBlock",
    metadata: {
      ...(old ?? {}),
      name: b.name,
      labels: { ...(old?.labels ?? {}), [NETWORK_LABEL]: b.network, [NODE_LABEL]: nodeKey(b.node) },
      ...(b.resourceVersion ? { resourceVersion: b.resourceVersion } : {}),
    },
    spec: {
      network: b.network,
      cidr: `${formatIpAddr(b.cidr.ip)}/${b.cidr.prefix}`,
      node: b.node,
      allocations,
    },
  };
}
