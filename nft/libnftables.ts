/**
 * libnftables (nftables' own library, the one behind the `nft` command)
 * through Deno FFI, opened on first use.
 *
 * The library is found as `libnftables.so.1` on the loader's search path,
 * or at the path in `$HYDRA_LIBNFTABLES`. Debian and Ubuntu ship it as
 * `libnftables1` (the `nftables` package depends on it).
 *
 * Two facts about the library shape how it is called here:
 * - `nft_ctx_new` opens its netlink socket at once, in the network
 *   namespace of the calling thread; every command run through that context
 *   goes to that namespace, whichever thread runs it.
 * - Running commands that delete anything (a rule, a set element) waits in
 *   the kernel for an RCU grace period, about ten milliseconds, mostly
 *   asleep. So the run call is bound twice: synchronously and on a thread of
 *   Deno's blocking pool, so that many namespaces can be written at once.
 *
 * @module
 */

/** The symbols used. */
const SYMBOLS = {
  nft_ctx_new: { parameters: ["u32"], result: "pointer" },
  nft_ctx_free: { parameters: ["pointer"], result: "void" },
  nft_ctx_buffer_output: { parameters: ["pointer"], result: "i32" },
  nft_ctx_buffer_error: { parameters: ["pointer"], result: "i32" },
  nft_ctx_get_output_buffer: { parameters: ["pointer"], result: "pointer" },
  nft_ctx_get_error_buffer: { parameters: ["pointer"], result: "pointer" },
  nft_ctx_output_set_flags: { parameters: ["pointer", "u32"], result: "void" },
  nft_ctx_set_dry_run: { parameters: ["pointer", "bool"], result: "void" },
  nft_run_cmd_from_buffer: { parameters: ["pointer", "buffer"], result: "i32" },
  nft_run_cmd_from_buffer_off_thread: {
    name: "nft_run_cmd_from_buffer",
    parameters: ["pointer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
} as const;

/** The bound symbols. */
export type NftSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** `nft_ctx_new` flags: the default (a netlink socket of its own). */
export const NFT_CTX_DEFAULT = 0;
/** Output flag: JSON instead of nft syntax. */
export const NFT_CTX_OUTPUT_JSON = 1 << 4;

/** libnftables cannot be loaded on this machine. */
export class NftUnavailableError extends Error {
  constructor(cause: unknown) {
    super(
      `cannot load libnftables (install the libnftables1 package, or set HYDRA_LIBNFTABLES): ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
    this.name = "NftUnavailableError";
  }
}

let lib: NftSymbols | undefined;

/** The library's symbols, loaded on the first call; throws {@link NftUnavailableError}. */
export function nftSymbols(): NftSymbols {
  if (lib) return lib;
  const path = Deno.env.get("HYDRA_LIBNFTABLES") || "libnftables.so.1";
  try {
    lib = Deno.dlopen(path, SYMBOLS).symbols;
  } catch (err) {
    throw new NftUnavailableError(err);
  }
  return lib;
}

/** A NUL-terminated C string of `text`. */
export function cText(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(text);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** The text a `const char *` points at ("" for NULL). */
export function readCString(ptr: Deno.PointerValue): string {
  return ptr ? Deno.UnsafePointerView.getCString(ptr) : "";
}
