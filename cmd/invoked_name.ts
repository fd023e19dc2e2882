/**
 * The name hydra was started under, which picks its role (argv[0]
 * dispatch): `hydra` is the meta-CNI or the command line, `hydra-bridge`
 * and the other role symlinks are built-in plugins.
 *
 * @module
 */

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
 * True when `name` is the meta-CNI's (and the command line's) own:
 * `hydra`, or a `deno…` name when started by `deno run` without the
 * launcher.
 */
export function isMetaCniName(name: string): boolean {
  return name === "hydra" || name.startsWith("deno");
}
