/**
 * hydra started as a CNI plugin: the meta-CNI (`hydra` with CNI_COMMAND set
 * and no arguments) or a built-in plugin (a role symlink such as
 * `hydra-bridge`). main.ts calls {@link runPluginRole} first and falls back
 * to the command line when it declines.
 *
 * This module is also the entry of the single-file build the source
 * launcher (bin/hydra) prefers for CNI invocations (see tools/bundle.ts):
 * one file to load instead of dozens of modules on every exec. Run
 * directly, it serves only CNI invocations.
 *
 * @module
 */

import { loadBuiltin } from "../plugins/registry.ts";

function baseName(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/**
 * The name hydra was invoked by: the launcher's (HYDRA_ARGV0, then removed
 * so delegates exec'd by the meta-CNI see their own), else the real argv[0].
 */
export function invokedName(): string {
  const fromLauncher = Deno.env.get("HYDRA_ARGV0");
  if (fromLauncher) {
    Deno.env.delete("HYDRA_ARGV0");
    return fromLauncher;
  }
  try {
    const cmdline = Deno.readTextFileSync("/proc/self/cmdline");
    return baseName(cmdline.split("\0")[0]);
  } catch {
    return baseName(Deno.execPath());
  }
}

/**
 * Runs hydra as the CNI plugin `name` and returns the exit status, or
 * undefined when this invocation is not a plugin run (the caller goes on to
 * the command line): `hydra` (or a `deno…` name: started by `deno run`
 * without the launcher) without CNI_COMMAND or with arguments.
 */
export async function runPluginRole(
  name: string,
  args: readonly string[],
): Promise<number | undefined> {
  if (name !== "hydra" && !name.startsWith("deno")) {
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
    const { runSkel } = await import("./skel.ts");
    return runSkel(await plugin);
  }
  if (Deno.env.get("CNI_COMMAND") !== undefined && args.length === 0) {
    const { runSkel } = await import("./skel.ts");
    return runSkel(await loadBuiltin("hydra")!);
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
