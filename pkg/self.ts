/**
 * How hydra starts itself again (the demo execs its own roles, the engine
 * its host-exec helper): the compiled executable, or the source launcher
 * `bin/hydra` of the tree this module was loaded from (directly, or from the
 * CNI build in `.cache/bundle/`).
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** The source launcher of the tree holding this module (or the bundle built from it). */
function treeLauncher(): string {
  let dir = new URL(".", import.meta.url);
  for (let up = 0; up < 4; up++) {
    const parent = new URL("..", dir);
    const launcher = fileURLToPath(new URL("bin/hydra", parent));
    try {
      if (Deno.statSync(launcher).isFile) return launcher;
    } catch {
      // not this level
    }
    dir = parent;
  }
  return fileURLToPath(new URL("../bin/hydra", import.meta.url));
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
