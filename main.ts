/**
 * hydra's entry point: picks the role from the name it was started under
 * (argv[0]) and from its arguments. Dispatch only; every role lives in its
 * own module and is imported on demand.
 *
 * @module
 */

/** The last path component (node:path costs tens of ms to load on the exec path). */
function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** The name hydra was invoked by: the launcher's, or the real argv[0]. */
function invokedName(): string {
  const fromLauncher = Deno.env.get("HYDRA_ARGV0");
  if (fromLauncher) {
    // Children (delegates exec'd by the meta-CNI) must see their own name.
    Deno.env.delete("HYDRA_ARGV0");
    return fromLauncher;
  }
  try {
    const cmdline = Deno.readTextFileSync("/proc/self/cmdline");
    return basename(cmdline.split("\0")[0]);
  } catch {
    return basename(Deno.execPath());
  }
}

async function main(): Promise<number> {
  const name = invokedName();
  const args = Deno.args;
  const { loadBuiltin } = await import("./plugins/registry.ts");

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
    const { runSkel } = await import("./cni/skel.ts");
    return runSkel(await plugin);
  }
  if (Deno.env.get("CNI_COMMAND") !== undefined && args.length === 0) {
    const { runSkel } = await import("./cni/skel.ts");
    return runSkel(await loadBuiltin("hydra")!);
  }
  const { runCli } = await import("./cmd/cli.ts");
  return runCli(args);
}

if (import.meta.main) {
  Deno.exit(await main());
}
