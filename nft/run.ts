/**
 * Running nftables commands in a network namespace through libnftables:
 * the text is what `nft -f` reads, and a whole buffer is one transaction
 * (the kernel applies all of it or none of it).
 *
 * ```ts
 * await runNft("add table inet demo", { netns: "/var/run/netns/pod1" });
 * const json = await runNft("list table inet demo", { netns, json: true });
 * ```
 *
 * The library's context is made inside the namespace (its netlink socket
 * belongs there) on the calling thread; the commands then run on a thread
 * of Deno's blocking pool ({@link runNft}) or on the calling thread
 * ({@link runNftSync}). Only names, never interface indexes, may be used in
 * the commands (`iifname`, not `iif`): resolving an index would look at the
 * namespace of whichever thread runs them.
 *
 * @module
 */

import { libc } from "../netlink/ffi.ts";
import { type NetnsRef, withNetnsSync } from "../netlink/netns.ts";
import {
  cText,
  NFT_CTX_DEFAULT,
  NFT_CTX_OUTPUT_JSON,
  nftSymbols,
  readCString,
} from "./libnftables.ts";

/** Options of one run. */
export interface NftRunOptions {
  /** The namespace acted on; the calling thread's when undefined. */
  netns?: NetnsRef;
  /** Parse and check only; nothing reaches the kernel's ruleset. */
  dryRun?: boolean;
  /** Output (of `list` commands) as JSON. */
  json?: boolean;
}

/** nftables refused the commands (or could not be reached); nothing of them was applied. */
export class NftError extends Error {
  /** libnftables' full error text: each error with the input line and a caret under it. */
  readonly detail: string;

  constructor(message: string, detail = "") {
    super(message);
    this.name = "NftError";
    this.detail = detail;
  }
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_NETFILTER = 12;

/**
 * Opens and closes a netfilter netlink socket on the calling thread.
 * libnftables ends the whole process when it cannot open its socket; this
 * finds out first and throws instead.
 */
function probeNetfilterSocket(): void {
  const fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) throw new NftError("cannot open a netfilter netlink socket in the namespace");
  libc.close(fd);
}

/** The error lines of libnftables' error text, for a one-line message. */
function summary(detail: string): string {
  const lines = detail.split("\n").filter((l) => l.startsWith("Error:"));
  const text = (lines.length ? lines : detail.split("\n").filter((l) => l.trim()))
    .map((l) => l.replace(/^Error:\s*/, "")).slice(0, 3).join("; ");
  return text || "nftables refused the commands";
}

function openContext(opts: NftRunOptions): Deno.PointerObject {
  const lib = nftSymbols();
  const ctx = withNetnsSync(opts.netns, () => {
    probeNetfilterSocket();
    return lib.nft_ctx_new(NFT_CTX_DEFAULT);
  });
  if (!ctx) throw new NftError("libnftables could not make a context");
  lib.nft_ctx_buffer_output(ctx);
  lib.nft_ctx_buffer_error(ctx);
  if (opts.json) lib.nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
  if (opts.dryRun) lib.nft_ctx_set_dry_run(ctx, true);
  return ctx;
}

function finish(ctx: Deno.PointerObject, rc: number): string {
  const lib = nftSymbols();
  try {
    const output = readCString(lib.nft_ctx_get_output_buffer(ctx));
    if (rc !== 0) {
      const detail = readCString(lib.nft_ctx_get_error_buffer(ctx));
      throw new NftError(summary(detail), detail);
    }
    return output;
  } finally {
    lib.nft_ctx_free(ctx);
  }
}

/**
 * Runs `commands` as one transaction on a thread of the blocking pool and
 * returns their output; throws {@link NftError} when nftables refuses them
 * (nothing is then applied) and `NftUnavailableError` without the library.
 */
export async function runNft(commands: string, opts: NftRunOptions = {}): Promise<string> {
  const text = cText(commands);
  const ctx = openContext(opts);
  let rc: number;
  try {
    rc = await nftSymbols().nft_run_cmd_from_buffer_off_thread(ctx, text);
  } catch (err) {
    nftSymbols().nft_ctx_free(ctx);
    throw err;
  }
  return finish(ctx, rc);
}

/** {@link runNft} on the calling thread (it waits for the kernel). */
export function runNftSync(commands: string, opts: NftRunOptions = {}): string {
  const text = cText(commands);
  const ctx = openContext(opts);
  return finish(ctx, nftSymbols().nft_run_cmd_from_buffer(ctx, text));
}
