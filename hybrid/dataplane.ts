/**
 * Makes a node's kernel match a {@link HybridDesired}: the vxlan device,
 * the macvlan shim when underlay pods are macvlan devices (`shim.ts`),
 * its FDB and neighbour entries, the routes of the network's table, the
 * policy rules and the firewall table. Every pass reads what is there and
 * repairs what differs, so a restart adopts what an earlier run left.
 *
 * Ownership: routes and rules carrying the network's protocol number, the
 * FDB and permanent neighbour entries of its own vxlan device, its shim
 * (see `shim.ts`), and its own nftables tables. Nothing else is touched. A failed change is reported and
 * the rest still applied.
 *
 * @module
 */

import {
  addFdb,
  delFdb,
  delNeigh,
  delRoute,
  type Handle,
  isNotFound,
  listFdb,
  listNeighs,
  listRoutes,
  NUD,
  replaceNeigh,
} from "../netlink/mod.ts";
import { queueRoute } from "../netlink/route.ts";
import { createBatch } from "../netlink/socket.ts";
import { addRule, delRule, listRules, type Rule } from "../netlink/rule.ts";
import { runNftSync } from "../nft/run.ts";
import { ensureVxlanDevice } from "../route/vxlan_device.ts";
import { firewallText } from "./firewall.ts";
import type { HybridDesired } from "./plan.ts";
import { ensureShim } from "./shim.ts";

/** What one pass changed and what failed. */
export interface HybridApplied {
  changes: number;
  routes: number;
  errors: string[];
}

function attempt(out: HybridApplied, what: string, fn: () => void): void {
  try {
    fn();
    out.changes++;
  } catch (err) {
    out.errors.push(`${what}: ${(err as Error).message}`);
  }
}

function syncEntries(h: Handle, d: HybridDesired, link: number, out: HybridApplied): void {
  for (const e of listFdb(h, { link })) {
    if (!(e.state & NUD.PERMANENT) || !e.dst || e.mac === "00:00:00:00:00:00") continue;
    if (d.fdb.get(e.mac) === e.dst) d.fdb.delete(e.mac);
    else attempt(out, `fdb ${e.mac}`, () => delFdb(h, { link, mac: e.mac, dst: e.dst }));
  }
  for (const [mac, dst] of d.fdb) attempt(out, `fdb ${mac}`, () => addFdb(h, { link, mac, dst }));
  const neighs = new Map(d.neighs);
  for (const n of listNeighs(h, { link, family: 4 })) {
    if (!(n.state & NUD.PERMANENT)) continue;
    if (n.mac && neighs.get(n.ip) === n.mac) neighs.delete(n.ip);
    else if (!neighs.has(n.ip)) {
      attempt(out, `neighbour ${n.ip}`, () => delNeigh(h, { link, ip: n.ip }));
    }
  }
  for (const [ip, mac] of neighs) {
    attempt(out, `neighbour ${ip}`, () => replaceNeigh(h, { link, ip, mac }));
  }
}

function syncRoutes(h: Handle, d: HybridDesired, link: number, out: HybridApplied): void {
  const { table, protocol } = d.net;
  const want = new Map(d.routes);
  for (const r of listRoutes(h, { family: 4, table, protocol })) {
    if (want.get(r.dst) === r.gateway && r.oif === link && r.onlink) {
      want.delete(r.dst);
      continue;
    }
    if (want.has(r.dst)) continue; // replaced below
    attempt(out, `route ${r.dst}`, () => {
      try {
        delRoute(h, { dst: r.dst, table, protocol });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    });
  }
  // New and changed routes go many to a system call (a first sync adds thousands).
  const batch = createBatch(h);
  const queued = [...want].map(([dst, via]) => {
    queueRoute(
      h,
      batch,
      { dst, gateway: via, oif: link, onlink: true, table, protocol },
      "replace",
    );
    return dst;
  });
  batch.flush().forEach((err, i) => {
    if (err) out.errors.push(`route ${queued[i]}: ${err.message}`);
    else out.changes++;
  });
  out.routes = d.routes.size;
}

function syncRules(h: Handle, d: HybridDesired, out: HybridApplied): void {
  const { table, protocol, rulePriority } = d.net;
  const key = (r: { src?: string; dst?: string }) => `${r.src ?? ""}>${r.dst ?? ""}`;
  const want = new Map(d.rules.map((r) => [key(r), r]));
  for (const r of listRules(h, { family: 4, protocol })) {
    if (r.table === table && r.priority === rulePriority && want.delete(key(r))) continue;
    attempt(out, `rule ${key(r)}`, () => delRule(h, r));
  }
  for (const r of want.values()) {
    const rule: Rule = { family: 4, ...r, table, priority: rulePriority, protocol };
    attempt(out, `rule ${key(r)}`, () => addRule(h, rule));
  }
}

/**
 * Applies `d` in the handle's namespace (`netns`: the same namespace for
 * nftables; undefined = the calling thread's). Throws only when the device
 * cannot be had; every other failure is listed in the result.
 */
export function applyHybrid(h: Handle, d: HybridDesired, netns?: string): HybridApplied {
  const out: HybridApplied = { changes: 0, routes: 0, errors: [] };
  if (!d.local || !d.mac) {
    out.errors.push(`network ${d.net.name}: this node has no fabric address; left as it is`);
    return out;
  }
  const dev = ensureVxlanDevice(h, {
    owner: "router",
    device: d.net.device,
    vni: d.net.vni,
    port: d.net.port,
    underlayDevice: d.net.uplink,
    local: d.local,
    mac: d.mac,
    mtu: d.net.mtu,
    addresses: [],
    fdb: d.fdb,
    neighs: d.neighs,
  });
  out.changes += dev.changes.length;
  if (d.net.underlayAttachment === "macvlan") {
    const { local } = d;
    try {
      out.changes += ensureShim(h, { net: d.net, address: local, blocks: d.localBlocks.underlay })
        .length;
    } catch (err) {
      out.errors.push(`shim ${d.net.shim}: ${(err as Error).message}`);
    }
  }
  syncEntries(h, { ...d, fdb: new Map(d.fdb) }, dev.index, out);
  syncRoutes(h, d, dev.index, out);
  syncRules(h, d, out);
  attempt(out, "firewall", () => runNftSync(firewallText(d), netns ? { netns } : {}));
  return out;
}
