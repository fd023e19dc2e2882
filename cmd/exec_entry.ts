/**
 * The first thing a CNI exec of hydra runs, from main.ts and as the entry
 * of the single-file build the source launcher prefers (tools/bundle.ts).
 *
 * A meta-CNI ADD, DEL or CHECK whose conf asks for `daemonExec` is handed
 * to the node daemon by the small shim in daemonclient/forward.ts, and so are
 * a `daemonExec` ADD or DEL of a built-in interface plugin exec'd on its own
 * (hydra-bridge, hydra-macvlan, …) and a `hydra-pool` ADD, DEL or CHECK
 * (ipam/pool/exec_shim.ts), so the exec'd process loads a few small
 * modules and nothing of the plugin path.
 * Everything else, and a `daemonExec` invocation no daemon answers, goes to
 * cmd/plugin_main.ts, imported only then (in the build: a second file,
 * loaded only then).
 *
 * @module
 */

import { execViaDaemon, isForwardedCommand, standaloneViaDaemon } from "../daemonclient/forward.ts";
import { STANDALONE_PLUGINS } from "../daemonclient/protocol.ts";
import { POOL_ROLE, poolViaDaemon } from "../ipam/pool/exec_shim.ts";
import { invokedName, isMetaCniName } from "./invoked_name.ts";
import { readStdin, writeStdout } from "../cni/stdio.ts";

/**
 * Runs hydra as the CNI plugin `name` and returns the exit status, or
 * undefined when this invocation is not a plugin run (the caller goes on to
 * the command line); see {@link runPluginRole} in cmd/plugin_main.ts.
 */
export async function runCniRole(
  name: string,
  args: readonly string[],
): Promise<number | undefined> {
  let stdin: Uint8Array | undefined;
  const pool = name === POOL_ROLE;
  const standalone = STANDALONE_PLUGINS.has(name);
  if (
    (pool || standalone || isMetaCniName(name)) && args.length === 0 &&
    isForwardedCommand(Deno.env.get("CNI_COMMAND"))
  ) {
    stdin = readStdin();
    const env = (n: string) => Deno.env.get(n);
    const out = pool
      ? await poolViaDaemon(env, stdin)
      : standalone
      ? await standaloneViaDaemon(env, stdin, name)
      : await execViaDaemon(env, stdin);
    if (out) {
      writeStdout(out.stdout);
      return out.code;
    }
  }
  const { runPluginRole } = await import("./plugin_main.ts");
  return await runPluginRole(name, args, stdin);
}

if (import.meta.main) {
  const code = await runCniRole(invokedName(), Deno.args);
  if (code === undefined) {
    console.error("hydra: this entry serves CNI invocations only; run main.ts");
    Deno.exit(2);
  }
  Deno.exit(code);
}
