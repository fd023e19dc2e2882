/**
 * Running a whole meta-CNI invocation inside the node daemon (conf key
 * `"daemonExec": true`): the exec'd process hands its CNI_* variables and
 * stdin to `hydra daemon`, which runs the very same meta-CNI in its own,
 * already warm process (modules loaded, FFI bound, caches next door) and
 * answers with what the exec would have printed. When no daemon answers,
 * the exec'd process runs the invocation itself, so the daemon is never
 * required. A daemon that dies or stalls mid-invocation gives CNI code 11;
 * the record written before anything was attached lets the runtime's DEL
 * clean up.
 *
 * @module
 */

import { parseResult } from "../cni/convert.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import type { AnyResult, CmdArgs } from "../cni/types.ts";
import { connectNodeDaemon, DaemonUnavailableError } from "../daemon/node_client.ts";
import { DEFAULT_DAEMON_SOCKET } from "../daemon/node_protocol.ts";

/** Longest wait for the daemon to finish an invocation, unless `daemonExecTimeout` says. */
const DEFAULT_EXEC_TIMEOUT_S = 240;

let inDaemon = false;

/** Called by the daemon before it runs invocations, so they never forward again. */
export function markRunningInDaemon(): void {
  inDaemon = true;
}

/** True when this invocation should be handed to the daemon. */
export function wantsDaemonExec(args: CmdArgs): boolean {
  const c = args.config as Record<string, unknown>;
  return !inDaemon && c.daemonExec === true && c.daemonSocket !== "";
}

/** What an exec of the meta-CNI printed and how it exited. */
export interface ExecOutput {
  stdout: string;
  code: number;
}

/**
 * Hands the invocation to the daemon; undefined when no daemon listens
 * (the caller runs it here).
 */
export async function execInDaemon(args: CmdArgs): Promise<ExecOutput | undefined> {
  const c = args.config as Record<string, unknown>;
  const socket = typeof c.daemonSocket === "string" ? c.daemonSocket : DEFAULT_DAEMON_SOCKET;
  const conn = await connectNodeDaemon(socket).catch(() => undefined);
  if (!conn) return undefined;
  const seconds = typeof c.daemonExecTimeout === "number" && c.daemonExecTimeout > 0
    ? c.daemonExecTimeout
    : DEFAULT_EXEC_TIMEOUT_S;
  try {
    const res = await conn.call({
      op: "cni",
      env: {
        CNI_COMMAND: args.command,
        CNI_CONTAINERID: args.containerId,
        CNI_NETNS: args.netns,
        CNI_IFNAME: args.ifName,
        CNI_ARGS: args.args,
        CNI_PATH: args.path.join(":"),
      },
      stdin: new TextDecoder().decode(args.stdinData),
    }, seconds * 1000);
    if (!res.ok) {
      throw new CniError(ErrorCode.TryAgainLater, `node daemon at ${socket}: ${res.message}`);
    }
    return res.body as ExecOutput;
  } catch (err) {
    if (err instanceof DaemonUnavailableError) {
      throw new CniError(
        ErrorCode.TryAgainLater,
        `node daemon did not finish the ${args.command}: ${err.message}`,
      );
    }
    throw err;
  } finally {
    conn.close();
  }
}

/** The daemon's answer as this plugin's outcome: the result, or the error it printed. */
export function outcomeOf(out: ExecOutput, args: CmdArgs): AnyResult | undefined {
  let doc: Record<string, unknown> | undefined;
  try {
    doc = out.stdout.trim() ? JSON.parse(out.stdout) : undefined;
  } catch {
    throw new CniError(
      ErrorCode.Internal,
      `node daemon printed no JSON: ${out.stdout.slice(0, 200)}`,
    );
  }
  if (out.code !== 0) {
    const code = typeof doc?.code === "number" ? doc.code : ErrorCode.Internal;
    const msg = typeof doc?.msg === "string" ? doc.msg : `node daemon failed the ${args.command}`;
    throw new CniError(code, msg, typeof doc?.details === "string" ? doc.details : undefined);
  }
  return args.command === "ADD" ? parseResult(doc ?? {}) : undefined;
}
