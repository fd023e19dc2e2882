/**
 * How hydra starts itself again (the demo execs its own roles): the compiled
 * executable, or the source launcher beside this tree.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** Path of the `hydra` executable to exec for a role. */
export function selfExecutable(): string {
  if (Deno.build.standalone) return Deno.execPath();
  return fileURLToPath(new URL("../bin/hydra", import.meta.url));
}

/** The folder holding hydra and its role symlinks (first on CNI_PATH). */
export function selfBinDir(): string {
  const exe = selfExecutable();
  return exe.slice(0, exe.lastIndexOf("/"));
}
