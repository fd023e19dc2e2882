/**
 * Reads a resolv.conf-style file into the DNS block of a result, as
 * host-local's `resolvConf` option does.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Dns } from "../cni/types.ts";

/**
 * Parses resolv.conf text: `nameserver`, `domain`, `search` and `options`
 * lines; `#` and `;` start comment lines; other keywords are ignored.
 */
export function parseResolvConf(text: string): Dns {
  const dns: Dns = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line[0] === "#" || line[0] === ";") continue;
    const fields = line.split(/\s+/);
    if (fields.length < 2) continue;
    const [keyword, ...rest] = fields;
    if (keyword === "nameserver") (dns.nameservers ??= []).push(rest[0]);
    else if (keyword === "domain") dns.domain = rest[0];
    else if (keyword === "search") (dns.search ??= []).push(...rest);
    else if (keyword === "options") (dns.options ??= []).push(...rest);
  }
  return dns;
}

/** Reads and parses the file at `path`; CniError 5 (I/O failure) if it cannot be read. */
export async function readResolvConf(path: string): Promise<Dns> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new CniError(
      ErrorCode.IoFailure,
      `cannot read resolvConf ${path}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return parseResolvConf(text);
}
