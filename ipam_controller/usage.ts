/**
 * Pool usage counted afresh from the API (for `hydra ipam pools` and
 * `hydra doctor`): every AddressPool with its size, allocated and free
 * addresses, and the blocks of its network that cannot be read.
 *
 * @module
 */

import type { KubeClient } from "../kube/client.ts";
import { type Block, BlockNonsenseError, parseBlock } from "../ipam/pool/block.ts";
import { type AddressBlock, type AddressPool, blockPath, poolPath } from "../ipam/pool/objects.ts";
import { countPool } from "./counts.ts";

/** One pool's line. */
export interface PoolUsage {
  pool: string;
  network: string;
  cidr: string;
  range: string;
  size: number;
  allocated: number;
  free: number;
  blocks: number;
}

/** Usage of every pool, plus the names of malformed blocks. */
export interface Usage {
  pools: PoolUsage[];
  malformedBlocks: string[];
}

/** Lists pools and blocks and counts. Throws the API client's errors. */
export async function poolUsage(client: KubeClient, timeoutMs = 10_000): Promise<Usage> {
  const [pools, blocks] = await Promise.all([
    client.list<AddressPool>(poolPath(), { timeoutMs }),
    client.list<AddressBlock>(blockPath(), { timeoutMs }),
  ]);
  const byNetwork = new Map<string, Block[]>();
  const malformedBlocks: string[] = [];
  for (const obj of blocks.items ?? []) {
    try {
      const b = parseBlock(obj);
      byNetwork.set(b.network, [...(byNetwork.get(b.network) ?? []), b]);
    } catch (err) {
      if (!(err instanceof BlockNonsenseError)) throw err;
      malformedBlocks.push(err.block);
    }
  }
  const out: PoolUsage[] = [];
  for (const p of pools.items ?? []) {
    const c = countPool(p, byNetwork.get(p.spec?.network ?? "") ?? []);
    if (!c) continue;
    out.push({
      pool: p.metadata.name,
      network: p.spec.networkName ?? "",
      cidr: p.spec.cidr,
      range: `${p.spec.rangeStart}-${p.spec.rangeEnd}`,
      ...c,
    });
  }
  out.sort((a, b) => a.pool.localeCompare(b.pool));
  return { pools: out, malformedBlocks };
}

/** A table for people. */
export function usageTable(u: Usage): string {
  const head = ["POOL", "NETWORK", "CIDR", "SIZE", "ALLOCATED", "FREE", "BLOCKS"];
  const rows = u.pools.map((p) => [
    p.pool,
    p.network || "-",
    p.cidr,
    String(p.size),
    String(p.allocated),
    String(p.free),
    String(p.blocks),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const lines = [line(head), ...rows.map(line)];
  if (u.pools.length === 0) lines.push("(no address pools)");
  for (const b of u.malformedBlocks) {
    lines.push(`malformed block ${b}: left alone; repair or delete it`);
  }
  return lines.join("\n");
}
