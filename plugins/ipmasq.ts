/**
 * IP masquerade for a container's addresses, as the reference bridge's
 * `ipMasq`:
 *
 * - iptables (the `iptables`/`ip6tables` programs, laid out as the reference
 *   plugins lay them out, so either can tear down what the other set up): a
 *   nat chain `CNI-<hash>` (28 characters; the hash is SHA-512 of network
 *   name + container ID) holding `-d <subnet> -j ACCEPT` and
 *   `! -d <multicast> -j MASQUERADE`, and a POSTROUTING rule
 *   `-s <address> -j <chain>`, all commented `name: "<net>" id: "<id>"`.
 * - nftables: the same rules in hydra's own table, programmed through
 *   libnftables without any program (ipmasq_nft.ts).
 *
 * `ipMasqBackend` picks one; unset, iptables when the program is there (as
 * the reference bridge does), else nftables: in hydra's image, where the
 * node daemon and the NRI plugin run delegates, there is no iptables.
 * Teardown removes the attachment's rules of every layout.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { ipFamily, networkCidr, parseCidr } from "../ipaddr/ip.ts";
import { setupNftMasq, teardownNftMasq } from "./ipmasq_nft.ts";

export { nftComment } from "./ipmasq_nft.ts";

/** Which netfilter front end to use. */
export type MasqBackend = "iptables" | "nftables";

/** The attachment whose addresses are masqueraded. */
export interface MasqOwner {
  network: string;
  ifName: string;
  containerId: string;
}

const TOOL_DIRS = ["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"];

async function sha512Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-512", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The iptables nat chain of an attachment: "CNI-" + SHA-512 hex, 28 characters. */
export async function masqChainName(network: string, containerId: string): Promise<string> {
  return ("CNI-" + await sha512Hex(network + containerId)).slice(0, 28);
}

/** The iptables rule comment: `name: "<net>" id: "<id>"`. */
export function masqComment(network: string, containerId: string): string {
  return `name: ${JSON.stringify(network)} id: ${JSON.stringify(containerId)}`;
}

function findTool(name: string): string {
  const path = Deno.env.get("PATH") ?? "";
  for (const dir of [...path.split(":").filter(Boolean), ...TOOL_DIRS]) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch {
      // keep looking
    }
  }
  throw new CniError(
    ErrorCode.Internal,
    `failed to locate ${name}: not found in PATH`,
    name.includes("tables") ? 'ipMasqBackend "nftables" needs no program' : undefined,
  );
}

interface ToolOutput {
  ok: boolean;
  stdout: string;
  stderr: string;
}

async function tool(name: string, args: string[], stdin?: string): Promise<ToolOutput> {
  const child = new Deno.Command(findTool(name), {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { ok: out.success, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr).trim() };
}

async function mustTool(name: string, args: string[], stdin?: string): Promise<string> {
  const out = await tool(name, args, stdin);
  if (!out.ok) {
    throw new CniError(
      ErrorCode.Internal,
      `${name} ${args.join(" ")} failed: ${out.stderr || "no error message"}`,
    );
  }
  return out.stdout;
}

function isNotExist(stderr: string): boolean {
  return /No chain\/target\/match|does a matching rule exist|Bad rule|doesn't exist|No such file/i
    .test(stderr);
}

/** iptables binary for a family. */
function ipt(family: 4 | 6): string {
  return family === 4 ? "iptables" : "ip6tables";
}

/** Picks the backend when the config names none: iptables when present, else nftables. */
function defaultBackend(): MasqBackend {
  try {
    findTool("iptables");
    return "iptables";
  } catch {
    return "nftables";
  }
}

/** Validates a config's `ipMasqBackend` value. */
export function parseMasqBackend(value: string | undefined): MasqBackend | undefined {
  if (value === undefined) return undefined;
  if (value === "iptables" || value === "nftables") return value;
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `unknown ipMasqBackend "${value}": use "iptables" or "nftables"`,
  );
}

async function appendUnique(bin: string, chain: string, rule: string[]): Promise<void> {
  const exists = await tool(bin, ["-w", "-t", "nat", "-C", chain, ...rule]);
  if (exists.ok) return;
  await mustTool(bin, ["-w", "-t", "nat", "-A", chain, ...rule]);
}

async function setupIptables(cidrs: readonly string[], o: MasqOwner): Promise<void> {
  const chain = await masqChainName(o.network, o.containerId);
  const comment = masqComment(o.network, o.containerId);
  const tag = ["-m", "comment", "--comment", comment];
  for (const cidr of cidrs) {
    const family = ipFamily(cidr.split("/")[0]);
    const bin = ipt(family);
    const created = await tool(bin, ["-w", "-t", "nat", "-N", chain]);
    if (!created.ok && !/exists/i.test(created.stderr)) {
      throw new CniError(
        ErrorCode.Internal,
        `${bin}: cannot create chain ${chain}: ${created.stderr}`,
      );
    }
    const multicast = family === 4 ? "224.0.0.0/4" : "ff00::/8";
    await appendUnique(bin, chain, ["-d", networkCidr(cidr), "-j", "ACCEPT", ...tag]);
    await appendUnique(bin, chain, ["!", "-d", multicast, "-j", "MASQUERADE", ...tag]);
    await appendUnique(bin, "POSTROUTING", ["-s", parseCidr(cidr).ip, "-j", chain, ...tag]);
  }
}

/** Splits one `iptables -S` line into words, honouring double quotes and backslashes. */
export function splitRuleLine(line: string): string[] {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === "\\" && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === " " || c === "\t") {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

async function teardownIptablesFamily(bin: string, chain: string): Promise<void> {
  let listing: ToolOutput;
  try {
    listing = await tool(bin, ["-w", "-t", "nat", "-S", "POSTROUTING"]);
  } catch {
    return; // this front end is not installed: nothing of ours can be there
  }
  if (!listing.ok) return;
  for (const line of listing.stdout.split("\n")) {
    const words = splitRuleLine(line);
    const j = words.indexOf("-j");
    if (words[0] !== "-A" || j < 0 || words[j + 1] !== chain) continue;
    const del = await tool(bin, ["-w", "-t", "nat", "-D", ...words.slice(1)]);
    if (!del.ok && !isNotExist(del.stderr)) {
      throw new CniError(ErrorCode.Internal, `${bin}: cannot delete rule "${line}": ${del.stderr}`);
    }
  }
  for (const op of ["-F", "-X"]) {
    const r = await tool(bin, ["-w", "-t", "nat", op, chain]);
    if (!r.ok && !isNotExist(r.stderr)) {
      throw new CniError(ErrorCode.Internal, `${bin} ${op} ${chain}: ${r.stderr}`);
    }
  }
}

/**
 * Masquerades traffic from each of `cidrs` (container addresses with their
 * prefix) to anything outside its subnet, except multicast.
 */
export async function setupIpMasq(
  backend: MasqBackend | undefined,
  cidrs: readonly string[],
  owner: MasqOwner,
): Promise<void> {
  if ((backend ?? defaultBackend()) === "iptables") await setupIptables(cidrs, owner);
  else await setupNftMasq(cidrs, owner);
}

/**
 * Removes what {@link setupIpMasq} installed for `owner`, with either
 * backend (the attachment may have been set up by another version or
 * config). Rules already gone are fine. `families` limits the iptables
 * families looked at (both when unknown).
 */
export async function teardownIpMasq(
  owner: MasqOwner,
  families: readonly (4 | 6)[] = [4, 6],
): Promise<void> {
  const chain = await masqChainName(owner.network, owner.containerId);
  const errors: string[] = [];
  for (const f of families) {
    await teardownIptablesFamily(ipt(f), chain).catch((e) => errors.push((e as Error).message));
  }
  await teardownNftMasq(owner).catch((e) => errors.push((e as Error).message));
  if (errors.length) throw new CniError(ErrorCode.Internal, errors.join("; "));
}
