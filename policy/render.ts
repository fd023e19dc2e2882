/**
 * nftables text of a pod's rules: one table of hydra's own in the pod's
 * network namespace (`inet hydra_policy`), rewritten whole in one
 * transaction each time:
 *
 * ```
 * add table inet hydra_policy
 * add chain inet hydra_policy input { type filter hook input priority filter; policy accept; }
 * add chain inet hydra_policy output { type filter hook output priority filter; policy accept; }
 * flush table inet hydra_policy
 * add rule inet hydra_policy input iifname != { "net1" } accept
 * add rule inet hydra_policy input ct state established,related accept
 * add rule inet hydra_policy input ct state invalid drop
 * add rule inet hydra_policy input icmpv6 type { nd-… } accept
 * add rule inet hydra_policy input iifname "net1" ip saddr { … } tcp dport 80 accept comment "ns/p ingress[0]"
 * add rule inet hydra_policy input counter drop comment "hydra: not allowed"
 * ```
 *
 * Only the isolated interfaces are filtered: the first rule lets everything
 * else (the primary network, other networks, loopback) through untouched.
 * Replies and related ICMP pass by connection tracking, so traffic a pod
 * started keeps flowing back, and connections that were established before
 * a change go on. IPv6 neighbour discovery always passes (the network would
 * not work without it). The base chains are kept from one write to the
 * next (`add` of an existing chain changes nothing), so their hooks stay
 * registered while the rules are swapped.
 *
 * @module
 */

import { commentString, identifier, ifNameString, portText, setText } from "../nft/syntax.ts";
import { compareIpAddr, formatIpAddr, type IpNet } from "../ipaddr/ip.ts";
import type { AddrMatch, Allow, L4Match, PodRules } from "./compile.ts";

/** The table hydra owns in each pod namespace. */
export const POLICY_TABLE = "hydra_policy";

const T = `inet ${identifier(POLICY_TABLE)}`;

const ND_TYPES =
  "{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect }";

type Direction = "ingress" | "egress";

const CHAIN: Record<Direction, string> = { ingress: "input", egress: "output" };

function netText(net: IpNet): string {
  const full = net.ip.family === 4 ? 32 : 128;
  return net.prefix === full ? formatIpAddr(net.ip) : `${formatIpAddr(net.ip)}/${net.prefix}`;
}

function netSet(nets: readonly IpNet[]): string {
  const sorted = [...nets].sort((a, b) => compareIpAddr(a.ip, b.ip) || a.prefix - b.prefix);
  return setText([...new Set(sorted.map(netText))]);
}

function addrText(a: AddrMatch, dir: Direction): string {
  const field = `${a.family === 4 ? "ip" : "ip6"} ${dir === "ingress" ? "saddr" : "daddr"}`;
  const parts = [`${field} ${netSet(a.include)}`];
  if (a.exclude.length) parts.push(`${field} != ${netSet(a.exclude)}`);
  return parts.join(" ");
}

function l4Text(l: L4Match): string {
  if (!l.ports?.length) return `meta l4proto ${l.protocol}`;
  const sorted = [...l.ports].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return `${l.protocol} dport ${setText([...new Set(sorted.map(([lo, hi]) => portText(lo, hi)))])}`;
}

function allowText(a: Allow, dir: Direction): string {
  const parts: string[] = [];
  if (a.addrs) parts.push(addrText(a.addrs, dir));
  if (a.l4) parts.push(l4Text(a.l4));
  parts.push("accept", `comment ${commentString(a.comment)}`);
  return parts.join(" ");
}

/** The rules of one direction's chain (none when no interface is isolated that way). */
function chainRules(rules: PodRules, dir: Direction): string[] {
  const isolated = rules.interfaces.filter((i) => i[dir] !== undefined);
  if (isolated.length === 0) return [];
  const dev = dir === "ingress" ? "iifname" : "oifname";
  const add = (text: string) => `add rule ${T} ${CHAIN[dir]} ${text}`;
  const out = [
    add(`${dev} != { ${isolated.map((i) => ifNameString(i.ifName)).join(", ")} } accept`),
    add("ct state established,related accept"),
    add("ct state invalid drop"),
    add(`icmpv6 type ${ND_TYPES} accept`),
  ];
  for (const i of isolated) {
    for (const a of i[dir]!) out.push(add(`${dev} ${ifNameString(i.ifName)} ${allowText(a, dir)}`));
  }
  out.push(add(`counter drop comment ${commentString("hydra: not allowed by policy")}`));
  return out;
}

/** A rendered table: the transaction and how many rules it holds. */
export interface RenderedTable {
  text: string;
  rules: number;
}

/** The transaction that makes the pod's table hold exactly `rules` (or removes it when empty). */
export function renderTable(rules: PodRules): RenderedTable {
  if (rules.interfaces.length === 0) return { text: removeTableText(), rules: 0 };
  const body = [...chainRules(rules, "ingress"), ...chainRules(rules, "egress")];
  const text = [
    `add table ${T}`,
    `add chain ${T} input { type filter hook input priority filter; policy accept; }`,
    `add chain ${T} output { type filter hook output priority filter; policy accept; }`,
    `flush table ${T}`,
    ...body,
  ].join("\n");
  return { text, rules: body.length };
}

/** Removes the table whether or not it exists (adding an existing table changes nothing). */
export function removeTableText(): string {
  return `add table ${T}\ndelete table ${T}`;
}

/**
 * The fail-closed table: the same interfaces isolated in the same
 * directions, admitting only replies and neighbour discovery. Written when
 * the full table cannot be.
 */
export function renderFailClosed(rules: PodRules): RenderedTable {
  return renderTable({
    interfaces: rules.interfaces.map((i) => ({
      ifName: i.ifName,
      network: i.network,
      ...(i.ingress ? { ingress: [] } : {}),
      ...(i.egress ? { egress: [] } : {}),
    })),
  });
}
