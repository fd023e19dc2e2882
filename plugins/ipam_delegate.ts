/**
 * Calling an interface plugin's IPAM delegate, as the reference plugins'
 * `ipam.ExecAdd/ExecDel/ExecCheck/ExecStatus` do: same CNI_* parameters and
 * the plugin's full stdin. The call goes through `cni/invoke.ts` with the
 * built-ins the plugin was handed, so a built-in IPAM (hydra-ipam,
 * hydra-static) runs in this process and any other is exec'd from CNI_PATH.
 *
 * @module
 */

import { toInternal } from "../cni/convert.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { invokePlugin } from "../cni/invoke.ts";
import type { CmdArgs, Command, Result } from "../cni/types.ts";
import type { Undo } from "./links.ts";
import { ipamType } from "./netconf.ts";

function request(args: CmdArgs, type: string, command: Command) {
  return {
    command,
    type,
    config: args.stdinData,
    containerId: args.containerId,
    netns: args.netns,
    ifName: args.ifName,
    args: args.args,
    path: args.path,
    builtins: args.builtins,
    // DEL is undoing: it runs to the end whatever the caller does.
    signal: command === "DEL" ? undefined : args.signal,
  };
}

/**
 * IPAM ADD: the delegate's result in hydra's internal shape. Throws the
 * delegate's error (code kept), or CniError 999 when it gives no address.
 */
export async function ipamAdd(args: CmdArgs, type: string): Promise<Result> {
  const raw = await invokePlugin(request(args, type, "ADD"));
  if (!raw) throw new CniError(ErrorCode.Internal, `IPAM plugin "${type}" returned no result`);
  const result = toInternal(raw);
  if (!result.ips || result.ips.length === 0) {
    throw new CniError(ErrorCode.Internal, "IPAM plugin returned missing IP config");
  }
  return result;
}

/**
 * IPAM ADD inside an interface plugin's ADD: {@link ipamAdd}, with the
 * address released again (quietly) when the ADD fails later and `undo` runs.
 */
export async function ipamAddWithUndo(args: CmdArgs, type: string, undo: Undo): Promise<Result> {
  const result = await ipamAdd(args, type);
  undo.push("release the address", () => ipamDelQuietly(args, type));
  return result;
}

/** IPAM DEL; throws the delegate's error. */
export async function ipamDel(args: CmdArgs, type: string): Promise<void> {
  await invokePlugin(request(args, type, "DEL"));
}

/**
 * IPAM DEL on a failed ADD's way out: a failure here must not hide the
 * error that made the ADD fail, so it is only reported on stderr.
 */
export async function ipamDelQuietly(args: CmdArgs, type: string): Promise<void> {
  try {
    await ipamDel(args, type);
  } catch (err) {
    console.error(JSON.stringify({
      level: "warn",
      msg: "IPAM release after a failed ADD failed",
      ipam: type,
      error: err instanceof Error ? err.message : String(err),
    }));
  }
}

/** IPAM CHECK; throws the delegate's error. */
export async function ipamCheck(args: CmdArgs, type: string): Promise<void> {
  await invokePlugin(request(args, type, "CHECK"));
}

/** IPAM STATUS; throws the delegate's error (50/51 when it cannot serve ADD). */
export async function ipamStatus(args: CmdArgs, type: string): Promise<void> {
  await invokePlugin(request(args, type, "STATUS"));
}

/** IPAM GC; throws the delegate's error. */
export async function ipamGc(args: CmdArgs, type: string): Promise<void> {
  await invokePlugin(request(args, type, "GC"));
}

/**
 * An interface plugin's STATUS, as the reference plugins answer it: its IPAM
 * delegate's, when the config names one; ready otherwise.
 */
export async function statusViaIpam(args: CmdArgs): Promise<void> {
  const type = ipamType(args.config, args.command);
  if (type) await ipamStatus(args, type);
}

/** An interface plugin's GC: its IPAM delegate's, when the config names one. */
export async function gcViaIpam(args: CmdArgs): Promise<void> {
  const type = ipamType(args.config, args.command);
  if (type) await ipamGc(args, type);
}
