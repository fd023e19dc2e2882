/**
 * Policy routing rules (`ip rule`): add, delete and list the FIB rules that
 * send traffic matching a source and/or destination prefix to a routing
 * table. Only the "lookup table" action is made; every rule is listed.
 *
 * Rules carry a protocol number (kernel ≥ 4.17) so an owner can find its
 * own among everyone else's, as with routes.
 *
 * @module
 */

import { AF, afOf } from "./constants.ts";
import { NetlinkError } from "./errors.ts";
import { formatIp, type IpFamily, parseCidr } from "../ipaddr/ip.ts";
import { attr, parseAttrs, type Writer } from "./message.ts";
import { beginDump, beginRequest, execute, executeDump, type Handle } from "./socket.ts";

const RTM_NEWRULE = 32;
const RTM_DELRULE = 33;
const RTM_GETRULE = 34;
const FRA_DST = 1;
const FRA_SRC = 2;
const FRA_PRIORITY = 6;
const FRA_TABLE = 15;
const FRA_PROTOCOL = 21;
const FR_ACT_TO_TBL = 1;
const NLM_F_CREATE_EXCL = 0x400 | 0x200;

/** A rule as the kernel reports it, or one to add or delete. */
export interface Rule {
  family: IpFamily;
  /** Source prefix matched ("from"); absent: any. */
  src?: string;
  /** Destination prefix matched ("to"); absent: any. */
  dst?: string;
  /** Table looked up. */
  table: number;
  /** Order among rules (lower first). */
  priority: number;
  /** Who made it (RTPROT_*; 0 when the kernel does not record it). */
  protocol: number;
  /** FR_ACT_* (1: lookup table); listed rules only. */
  action?: number;
}

function prefix(cidr: string | undefined): { bytes: Uint8Array; len: number } | undefined {
  if (cidr === undefined) return undefined;
  const c = parseCidr(cidr);
  return { bytes: c.bytes, len: c.prefixLen };
}

function writeRule(w: Writer, rule: Rule): void {
  const src = prefix(rule.src);
  const dst = prefix(rule.dst);
  w.u8(afOf(rule.family));
  w.u8(dst?.len ?? 0);
  w.u8(src?.len ?? 0);
  w.u8(0); // tos
  w.u8(rule.table < 256 ? rule.table : 0);
  w.u8(0);
  w.u8(0);
  w.u8(FR_ACT_TO_TBL);
  w.u32(0); // flags
  if (dst && dst.len) w.attrBytes(FRA_DST, dst.bytes);
  if (src && src.len) w.attrBytes(FRA_SRC, src.bytes);
  w.attrU32(FRA_PRIORITY, rule.priority);
  w.attrU32(FRA_TABLE, rule.table);
  if (rule.protocol) w.attrU8(FRA_PROTOCOL, rule.protocol);
}

function describe(verb: string, r: Rule): string {
  return `${verb} rule ${r.priority}: from ${r.src ?? "all"} to ${
    r.dst ?? "all"
  } lookup ${r.table}`;
}

/** Adds a rule; EEXIST when an equal one is there. */
export function addRule(h: Handle, rule: Rule): void {
  writeRule(beginRequest(h, RTM_NEWRULE, NLM_F_CREATE_EXCL), rule);
  execute(h, describe("add", rule));
}

/** Deletes the rule equal to `rule`; ENOENT when there is none. */
export function delRule(h: Handle, rule: Rule): void {
  writeRule(beginRequest(h, RTM_DELRULE), rule);
  execute(h, describe("delete", rule));
}

/** Parses an RTM_NEWRULE payload; undefined for families other than IPv4/IPv6. */
export function parseRule(payload: Uint8Array): Rule | undefined {
  const fam = payload[0];
  if (fam !== AF.INET && fam !== AF.INET6) return undefined;
  const family: IpFamily = fam === AF.INET ? 4 : 6;
  const a = parseAttrs(payload, 12);
  const rule: Rule = {
    family,
    table: attr.u32(a, FRA_TABLE) ?? payload[4],
    priority: attr.u32(a, FRA_PRIORITY) ?? 0,
    protocol: a.get(FRA_PROTOCOL)?.[0] ?? 0,
    action: payload[7],
  };
  const dst = a.get(FRA_DST);
  if (dst) rule.dst = `${formatIp(dst)}/${payload[1]}`;
  const src = a.get(FRA_SRC);
  if (src) rule.src = `${formatIp(src)}/${payload[2]}`;
  return rule;
}

/** The rules of one family (both when absent), optionally only those of one protocol. */
export function listRules(
  h: Handle,
  filter: { family?: IpFamily; protocol?: number } = {},
): Rule[] {
  const w = beginDump(h, RTM_GETRULE);
  w.u8(filter.family ? afOf(filter.family) : AF.UNSPEC);
  for (let i = 0; i < 7; i++) w.u8(0);
  w.u32(0);
  try {
    return executeDump(h, "list rules", (type, payload) => {
      if (type !== RTM_NEWRULE) return undefined;
      const r = parseRule(payload);
      if (!r) return undefined;
      if (filter.protocol !== undefined && r.protocol !== filter.protocol) return undefined;
      return r;
    });
  } catch (e) {
    if (e instanceof NetlinkError && e.code === "EAFNOSUPPORT") return [];
    throw e;
  }
}
