/**
 * IP masquerade through nftables, programmed by hydra itself through
 * libnftables (nft/): no `iptables` or `nft` program is needed, so it works
 * inside hydra's image, where the node daemon (`daemonExec`) and the NRI
 * plugin run delegates and no host tool exists.
 *
 * The rules are the reference bridge's masquerade (its iptables layout: a
 * per-attachment chain accepting the subnet, masquerading all but
 * multicast, jumped to from POSTROUTING for the container's address) as one
 * rule per address in a table hydra owns:
 *
 * ```
 * table inet hydra_masquerade {
 *   chain postrouting {
 *     type nat hook postrouting priority 100;
 *     ip saddr 10.1.0.5 ip daddr != 10.1.0.0/24 ip daddr != 224.0.0.0/4 masquerade comment "<owner>"
 *     ip6 saddr fd00::5 ip6 daddr != fd00::/64 ip6 daddr != ff00::/8 masquerade comment "<owner>"
 *   }
 * }
 * ```
 *
 * `<owner>` begins with a hash of network, interface and container, so DEL
 * removes exactly this attachment's rules, and an ADD repeated for it
 * replaces them (in the same transaction). Nothing else in the ruleset is
 * touched; the table and chain stay when empty (deleting them could race
 * another attachment's ADD). DEL also removes rules of the same owner from
 * the reference plugins' nftables table (`inet cni_plugins_masquerade`),
 * which earlier hydra versions wrote.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { networkCidr, parseCidr } from "../ipaddr/ip.ts";
import { NftUnavailableError } from "../nft/libnftables.ts";
import { NftError, runNft } from "../nft/run.ts";
import { commentString } from "../nft/syntax.ts";

/** The attachment whose addresses are masqueraded. */
export interface NftMasqOwner {
  network: string;
  ifName: string;
  containerId: string;
}

/** hydra's table and its chain. */
export const HYDRA_MASQ_TABLE = "hydra_masquerade";
const CHAIN = "postrouting";
/** The reference plugins' table and rule chain (removed from on DEL only). */
const REFERENCE_TABLE = "cni_plugins_masquerade";
const REFERENCE_CHAIN = "masq_checks";
/** Tries of a transaction that deletes rules another process may delete first. */
const ATTEMPTS = 3;

async function sha512Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-512", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The owner's tag: 16 hex of the network, "-", 16 hex of interface and container (the reference's). */
export async function nftOwnerTag(o: NftMasqOwner): Promise<string> {
  const net = (await sha512Hex(o.network)).slice(0, 16);
  const inst = (await sha512Hex(`${o.ifName}:${o.containerId}`)).slice(0, 16);
  return `${net}-${inst}`;
}

/**
 * The rule comment of an attachment, as the reference plugins write it in
 * their table: the owner tag, then who it is (at most 128 characters).
 */
export async function nftComment(o: NftMasqOwner): Promise<string> {
  const clean = (s: string) => s.replaceAll('"', "");
  const text = `${await nftOwnerTag(o)}, net: ${clean(o.network)}, if: ${clean(o.ifName)}, id: ${
    clean(o.containerId)
  }`;
  return text.slice(0, 128);
}

interface ListedRule {
  handle: number;
  comment?: string;
}

/** The rules of a chain with their handles; [] when the table or chain is not there. */
async function listRules(table: string, chain: string): Promise<ListedRule[]> {
  let out: string;
  try {
    out = await runNft(`list chain inet ${table} ${chain}`, { json: true });
  } catch (err) {
    if (err instanceof NftError) return []; // no such table or chain
    throw err;
  }
  const parsed = JSON.parse(out) as { nftables?: { rule?: ListedRule }[] };
  return (parsed.nftables ?? []).flatMap((e) => (e.rule ? [e.rule] : []));
}

/** The rule that masquerades traffic from `cidr`'s address leaving its subnet. */
function masqRule(cidr: string, comment: string): string {
  const c = parseCidr(cidr);
  const fam = c.family === 4 ? "ip" : "ip6";
  const multicast = c.family === 4 ? "224.0.0.0/4" : "ff00::/8";
  return `add rule inet ${HYDRA_MASQ_TABLE} ${CHAIN} ${fam} saddr ${c.ip} ` +
    `${fam} daddr != ${networkCidr(cidr)} ${fam} daddr != ${multicast} masquerade ` +
    `comment ${comment}`;
}

/** Runs a transaction built from the current rules; again when a rule it deletes went first. */
async function withFreshRules(
  table: string,
  chain: string,
  build: (rules: ListedRule[]) => string[] | undefined,
): Promise<void> {
  for (let attempt = 1;; attempt++) {
    const lines = build(await listRules(table, chain));
    if (!lines || lines.length === 0) return;
    try {
      await runNft(lines.join("\n") + "\n");
      return;
    } catch (err) {
      if (!(err instanceof NftError) || attempt >= ATTEMPTS) throw err;
    }
  }
}

function asCniError(err: unknown, what: string): CniError {
  if (err instanceof CniError) return err;
  const detail = err instanceof NftError && err.detail ? err.detail : undefined;
  const msg = err instanceof NftUnavailableError
    ? err.message
    : `${what}: ${err instanceof Error ? err.message : String(err)}`;
  return new CniError(ErrorCode.Internal, msg, detail);
}

/** Masquerades traffic from each of `cidrs` (addresses with their prefix) leaving its subnet. */
export async function setupNftMasq(cidrs: readonly string[], o: NftMasqOwner): Promise<void> {
  const tag = await nftOwnerTag(o);
  const comment = commentString(await nftComment(o));
  const t = `inet ${HYDRA_MASQ_TABLE}`;
  try {
    await withFreshRules(HYDRA_MASQ_TABLE, CHAIN, (rules) => [
      `add table ${t}`,
      `add chain ${t} ${CHAIN} { type nat hook postrouting priority 100 ; }`,
      ...rules.filter((r) => r.comment?.startsWith(tag))
        .map((r) => `delete rule ${t} ${CHAIN} handle ${r.handle}`),
      ...cidrs.map((cidr) => masqRule(cidr, comment)),
    ]);
  } catch (err) {
    throw asCniError(err, "cannot program the masquerade rules through libnftables");
  }
}

/** Removes `o`'s rules from hydra's table and from the reference plugins'; gone ones are fine. */
export async function teardownNftMasq(o: NftMasqOwner): Promise<void> {
  const tag = await nftOwnerTag(o);
  try {
    for (const [table, chain] of [[HYDRA_MASQ_TABLE, CHAIN], [REFERENCE_TABLE, REFERENCE_CHAIN]]) {
      await withFreshRules(table, chain, (rules) =>
        rules.filter((r) => r.comment?.startsWith(tag))
          .map((r) => `delete rule inet ${table} ${chain} handle ${r.handle}`));
    }
  } catch (err) {
    // Without the library nothing of ours can be in the ruleset.
    if (err instanceof NftUnavailableError) return;
    throw asCniError(err, "cannot remove the masquerade rules through libnftables");
  }
}
