/**
 * Running a program inside a network namespace: it is forked from this
 * thread while the thread is in that namespace (the child inherits it, as a
 * CNI plugin started by a runtime on a node inherits the node's), fed
 * `stdin` and waited for.
 *
 * @module
 */

import { type NetnsRef, withNetnsSync } from "./netns.ts";

/** What to run. */
export interface NetnsCommand {
  args?: string[];
  env?: Record<string, string>;
  /** Start from `env` alone rather than this process's environment. */
  clearEnv?: boolean;
  /** Bytes written to its standard input, which is then closed. */
  stdin?: Uint8Array;
}

/**
 * Runs `command` inside the namespace `netns` (undefined: where this thread
 * is) and returns its exit status and output (stdout and stderr captured).
 */
export async function outputInNetns(
  netns: NetnsRef | undefined,
  command: string,
  opts: NetnsCommand = {},
): Promise<Deno.CommandOutput> {
  const child = withNetnsSync(netns, () =>
    new Deno.Command(command, {
      args: opts.args ?? [],
      env: opts.env,
      clearEnv: opts.clearEnv,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn());
  const output = child.output();
  const writer = child.stdin.getWriter();
  // A child that exits without reading its input is not an error here.
  if (opts.stdin) await writer.write(opts.stdin).catch(() => {});
  await writer.close().catch(() => {});
  return await output;
}
