/**
 * How hydra starts itself again (the demo execs its own roles, the engine
 * its host-exec helper): the compiled executable, or the source launcher
 * `bin/hydra` of the tree this module was loaded from (directly, or from the
 * CNI build in `.cache/bundle/`).
 *
 * @module
 */

/**
 * A file: URL as a path. Not node:url's fileURLToPath: this module is on the
 * CNI exec path, and loading Node's URL support costs an exec about 10 ms.
 */
function pathOf(url: URL): string {
  return decodeURIComponent(url.pathname);
}

/** The source launcher of the tree holding this module (or the bundle built from it). */
function treeLauncher(): string {
  let dir = new URL(".", import.meta.url);
  for (let up = 0; up < 4; up++) {
    const parent = new URL("..", dir);
    const launcher = pathOf(new URL("bin/hydra", parent));
    try {
      if (Deno.statSync(launcher).isFile) return launcher;
    } catch {
      // not this level
    }
    dir = parent;
  }
  return pathOf(new URL("../bin/hydra", import.meta.url));
}

/** Path of the `hydra` executable to exec for a role. */
export function selfExecutable(): string {
  if (Deno.build.standalone) return Deno.execPath();
  return treeLauncher();
}

/** The folder holding hydra and its role symlinks (first on CNI_PATH). */
export function selfBinDir(): string {
  const exe = selfExecutable();
  return exe.slice(0, exe.lastIndexOf("/"));
}
