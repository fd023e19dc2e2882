/**
 * The AddressPool object of each range a config names: created on first
 * use (that is also when a range's overlap with the network's other pools
 * is checked), and compared with the config on every later use so that a
 * pool edited by hand into something else stops allocation with a clear
 * error instead of handing out addresses it no longer means.
 *
 * Overlapping pools of one network share blocks (a block's name follows
 * from its addresses), so they can never hand out one address twice; what
 * `enable_overlapping_ranges: false` adds is the promise that the range
 * shares no address with another pool at all, and a pool that does is
 * refused.
 *
 * @module
 */

import { CniError, ErrorCode } from "../../cni/errors.ts";
import type { KubeClient } from "../../kube/client.ts";
import { type IpAddr, parseIpAddr } from "../../ipaddr/ip.ts";
import { type PoolConfig, type PoolRange, windowsOverlap } from "./config.ts";
import { type AddressPool, API_VERSION, NETWORK_LABEL, type PoolSpec } from "./objects.ts";
import { createPool, type Deadline, getPool, listPools } from "./store.ts";

/** How long a checked pool is trusted in a long-lived process. */
const TRUST_MS = 30_000;

const checked = new Map<string, number>();

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg);
}

function sameSpec(a: PoolSpec, b: PoolSpec): boolean {
  const ex = (s: PoolSpec) => JSON.stringify([...(s.exclude ?? [])].sort());
  return a.network === b.network && a.cidr === b.cidr && a.rangeStart === b.rangeStart &&
    a.rangeEnd === b.rangeEnd && ex(a) === ex(b);
}

/** The window of a pool object, or undefined when its spec cannot be read. */
function windowOf(p: AddressPool): { start: IpAddr; end: IpAddr } | undefined {
  const start = typeof p.spec?.rangeStart === "string" ? parseIpAddr(p.spec.rangeStart) : undefined;
  const end = typeof p.spec?.rangeEnd === "string" ? parseIpAddr(p.spec.rangeEnd) : undefined;
  return start && end ? { start, end } : undefined;
}

/** Refuses `range` when it overlaps another pool of its network and either forbids sharing. */
function checkOverlaps(range: PoolRange, overlapping: boolean, pools: AddressPool[]): void {
  for (const p of pools) {
    if (p.metadata.name === range.name) continue;
    const w = windowOf(p);
    if (!w) {
      throw invalid(
        `address pool ${p.metadata.name} is malformed (no readable rangeStart/rangeEnd)`,
      );
    }
    if (!windowsOverlap(range, w)) continue;
    if (!overlapping || p.spec.overlapping === false) {
      throw invalid(
        `range ${range.spec.cidr} (${range.spec.rangeStart}-${range.spec.rangeEnd}) overlaps address pool ` +
          `${p.metadata.name} (${p.spec.rangeStart}-${p.spec.rangeEnd}) of the same network: set ` +
          `"enable_overlapping_ranges": true on both to let them share addresses (never the same one ` +
          `twice), or give them distinct network_name values to allocate independently`,
      );
    }
  }
}

function verify(range: PoolRange, found: AddressPool): void {
  if (!found.spec || !sameSpec(found.spec, range.spec)) {
    throw invalid(
      `address pool ${range.name} says ${JSON.stringify(found.spec ?? null)}, but this network's ` +
        `range is ${
          JSON.stringify(range.spec)
        }: the pool was edited by hand; restore it or delete it`,
    );
  }
}

/** Checks in flight, by pool name: concurrent ADDs of one range share one. */
const inflight = new Map<string, Promise<void>>();

async function ensurePool(client: KubeClient, range: PoolRange, overlapping: boolean, d: Deadline) {
  let found = await getPool(client, range.name, d);
  if (!found || !overlapping) {
    checkOverlaps(range, overlapping, await listPools(client, d, range.spec.network));
  }
  if (!found) {
    const obj: AddressPool = {
      apiVersion: API_VERSION,
      kind: "AddressPool",
      metadata: { name: range.name, labels: { [NETWORK_LABEL]: range.spec.network } },
      spec: range.spec,
    };
    const created = await createPool(client, obj, d);
    found = created === "exists" ? await getPool(client, range.name, d) : created;
    if (!found) throw invalid(`address pool ${range.name} was deleted while it was being created`);
  }
  verify(range, found);
  checked.set(range.name, Date.now());
}

/** Makes sure every range of `cfg` has its pool (see the module text); throws CniError 7. */
export async function ensurePools(client: KubeClient, cfg: PoolConfig, d: Deadline): Promise<void> {
  for (const range of cfg.ranges) {
    const at = checked.get(range.name);
    if (at !== undefined && Date.now() - at < TRUST_MS) continue;
    const key = `${range.name}|${cfg.overlapping}`;
    let p = inflight.get(key);
    if (!p) {
      p = ensurePool(client, range, cfg.overlapping, d).finally(() => inflight.delete(key));
      inflight.set(key, p);
    }
    await p;
  }
}
