/**
 * hydra started as a CNI plugin: the meta-CNI (`hydra` with CNI_COMMAND set
 * and no arguments) or a built-in plugin (a role symlink such as
 * `hydra-bridge`). cmd/exec_entry.ts (run by main.ts and by the launcher's
 * single-file build) calls {@link runPluginRole} unless the node daemon
 * took the invocation; main.ts falls back to the command line when it
 * declines.
 *
 * In the single-file build (tools/bundle.ts) this module and everything it
 * may load are the second file, which the entry imports only when it gets
 * here. Run directly, it serves only CNI invocations.
 *
 * @module
 */

import { BUILTINS, loadBuiltin } from "../engine/builtins.ts";
import { invokedName, isMetaCniName } from "./invoked_name.ts";

/**
 * Runs hydra as the CNI plugin `name` and returns the exit status, or
 * undefined when this invocation is not a plugin run (the caller goes on to
 * the command line): `hydra` (or a `deno…` name: started by `deno run`
 * without the launcher) without CNI_COMMAND or with arguments.
 *
 * @param stdin the config when the caller has already read stdin
 *   (cmd/exec_entry.ts, after offering the invocation to the daemon)
 */
export async function runPluginRole(
  name: string,
  args: readonly string[],
  stdin?: Uint8Array,
): Promise<number | undefined> {
  if (!isMetaCniName(name)) {
    const plugin = loadBuiltin(name);
    if (!plugin) {
      const msg = `hydra has no role named "${name}"; run "hydra --help"`;
      if (Deno.env.get("CNI_COMMAND") !== undefined) {
        // A runtime exec'd us as a plugin: answer in the CNI error format.
        console.log(JSON.stringify({ cniVersion: "1.1.0", code: 999, msg }));
        return 1;
      }
      console.error(`hydra: ${msg}`);
      return 2;
    }
    const { runSkel } = await import("../cni/skel.ts");
    return runSkel(await plugin, stdin, BUILTINS);
  }
  if (Deno.env.get("CNI_COMMAND") !== undefined && args.length === 0) {
    const { runSkel } = await import("../cni/skel.ts");
    return runSkel(await loadBuiltin("hydra")!, stdin, BUILTINS);
  }
  return undefined;
}

if (import.meta.main) {
  const code = await runPluginRole(invokedName(), Deno.args);
  if (code === undefined) {
    console.error("hydra: this entry serves CNI invocations only; run main.ts");
    Deno.exit(2);
  }
  Deno.exit(code);
}
