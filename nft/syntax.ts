/**
 * Pieces of nftables' command syntax built from values, so that nothing a
 * caller passes can change the meaning of the text around it: strings are
 * checked against what they may hold and then quoted; numbers are checked
 * to be integers in range.
 *
 * @module
 */

/** A value that cannot be written into nftables syntax safely. */
export class NftSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NftSyntaxError";
  }
}

/** Interface names as the kernel allows them and nft can quote: no quote, space or slash. */
const IFNAME = /^[A-Za-z0-9_.:@+-]{1,15}$/;
/** Comments: printable ASCII without quotes or backslashes. */
const COMMENT_CHARS = /[^ -!#-[\]-~]/g;
/** Longest comment kept (the kernel stores at most 128 bytes of it). */
const COMMENT_MAX = 120;
/** Table, chain and set names. */
const IDENTIFIER = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;

/** True when `name` is an interface name this module can quote. */
export function isQuotableIfName(name: string): boolean {
  return IFNAME.test(name);
}

/** `"name"`, for iifname/oifname; throws for names it cannot quote. */
export function ifNameString(name: string): string {
  if (!IFNAME.test(name)) throw new NftSyntaxError(`interface name ${JSON.stringify(name)}`);
  return `"${name}"`;
}

/** A quoted comment; characters that need escaping become "?", long text is cut. */
export function commentString(text: string): string {
  return `"${text.replace(COMMENT_CHARS, "?").slice(0, COMMENT_MAX)}"`;
}

/** A table, chain or set name; throws for anything but letters, digits and "_". */
export function identifier(name: string): string {
  if (!IDENTIFIER.test(name)) throw new NftSyntaxError(`identifier ${JSON.stringify(name)}`);
  return name;
}

/** A port or port range ("80", "8000-8080"); throws outside 0–65535 or for lo > hi. */
export function portText(lo: number, hi = lo): string {
  for (const p of [lo, hi]) {
    if (!Number.isInteger(p) || p < 0 || p > 65535) throw new NftSyntaxError(`port ${p}`);
  }
  if (lo > hi) throw new NftSyntaxError(`port range ${lo}-${hi}`);
  return lo === hi ? `${lo}` : `${lo}-${hi}`;
}

/** An anonymous set `{ a, b }`, or the one element alone; throws when empty. */
export function setText(elements: readonly string[]): string {
  if (elements.length === 0) throw new NftSyntaxError("empty set");
  return elements.length === 1 ? elements[0] : `{ ${elements.join(", ")} }`;
}
