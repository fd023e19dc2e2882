/**
 * Handing a `hydra-pool` invocation to the node daemon: an exec'd plugin
 * (or a meta-CNI running outside the daemon) sends its CNI_* variables and
 * stdin, and the daemon runs the very same plugin as the node's allocation
 * host, where concurrent ADDs of the node are written together.
 *
 * @module
 */

import { CniError, ErrorCode } from "../../cni/errors.ts";
import type { AnyResult, CmdArgs } from "../../cni/types.ts";

/** The daemon's answer: what its run of the plugin printed and its exit status. */
interface Answer {
  stdout?: unknown;
  code?: unknown;
}

/** The plugin's name in the daemon's registry. */
export const POOL_PLUGIN = "hydra-pool";

function envOf(args: CmdArgs): Record<string, string> {
  return {
    CNI_COMMAND: args.command,
    CNI_CONTAINERID: args.containerId,
    CNI_NETNS: args.netns,
    CNI_IFNAME: args.ifName,
    CNI_ARGS: args.args,
    CNI_PATH: args.path.join(":"),
  };
}

/**
 * Runs the invocation in the daemon listening on `socket`. Undefined when
 * nobody listens there (the caller allocates itself). A daemon that breaks
 * off mid-invocation is CNI code 11: what it did is recorded under this
 * sandbox, so a retry finds it.
 */
export async function forwardToDaemon(
  socket: string,
  args: CmdArgs,
  timeoutMs: number,
): Promise<{ result?: AnyResult } | undefined> {
  const { connectNodeDaemon } = await import("../../daemon/node_client.ts");
  const conn = await connectNodeDaemon(socket).catch(() => undefined);
  if (!conn) return undefined;
  let answer: Answer;
  try {
    const res = await conn.call({
      op: "cni",
      plugin: POOL_PLUGIN,
      env: envOf(args),
      stdin: new TextDecoder().decode(args.stdinData),
    }, timeoutMs + 1_000);
    if (!res.ok) {
      // An older daemon that runs only the meta-CNI: allocate here instead.
      if (res.status === 400 || res.status === 501) return undefined;
      throw new CniError(ErrorCode.TryAgainLater, `node daemon at ${socket}: ${res.message}`);
    }
    answer = (res.body ?? {}) as Answer;
  } catch (err) {
    if (err instanceof CniError) throw err;
    throw new CniError(
      ErrorCode.TryAgainLater,
      `node daemon at ${socket} did not finish the ${args.command}: ${(err as Error).message}`,
    );
  } finally {
    conn.close();
  }
  const stdout = typeof answer.stdout === "string" ? answer.stdout : "";
  let doc: Record<string, unknown> | undefined;
  try {
    doc = stdout.trim() ? JSON.parse(stdout) : undefined;
  } catch {
    throw new CniError(ErrorCode.Internal, `node daemon printed no JSON: ${stdout.slice(0, 200)}`);
  }
  if (answer.code !== 0) {
    throw new CniError(
      typeof doc?.code === "number" ? doc.code : ErrorCode.Internal,
      typeof doc?.msg === "string" ? doc.msg : `node daemon failed the ${args.command}`,
      typeof doc?.details === "string" ? doc.details : undefined,
    );
  }
  return { result: doc as AnyResult | undefined };
}
