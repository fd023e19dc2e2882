/**
 * A private copy of the source tree for one benchmark run, so that every
 * measured invocation runs the same code even while the tree is being
 * edited: hydra is exec'd from `<copy>/bin`, through the same launcher and
 * role symlinks a user has, with its own Deno cache (filled by the warm-up
 * pods). Deno itself (tools/node_modules) is linked, not copied.
 *
 * With `bundle`, the copy gets the single-file CNI build (tools/bundle.ts)
 * that the launcher prefers; without it the launcher runs main.ts.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Top-level entries a copy leaves out: history, caches, tests, build output. */
const SKIP = new Set([".git", ".cache", ".ci", "tests", "dist", "tools", "node_modules", "docs"]);

/** A copy of the tree. */
export interface TreeSnapshot {
  root: string;
  /** `<root>/bin`: the launcher and its role symlinks. */
  bin: string;
  /** Whether the launcher there will run the bundle. */
  bundle: boolean;
}

async function copy(from: string, to: string): Promise<void> {
  // cp -a keeps symlinks (the role links) and mtimes (bundle freshness).
  const out = await new Deno.Command("cp", { args: ["-a", from, to], stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`cp -a ${from} ${to}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Copies the tree into `dir`/tree and, with `bundle`, builds the bundle there. */
export async function snapshotTree(dir: string, bundle: boolean): Promise<TreeSnapshot> {
  const root = `${dir}/tree`;
  await Deno.mkdir(`${root}/tools`, { recursive: true });
  for await (const e of Deno.readDir(ROOT)) {
    if (SKIP.has(e.name)) continue;
    await copy(`${ROOT}/${e.name}`, `${root}/${e.name}`);
  }
  await Deno.symlink(`${ROOT}/tools/node_modules`, `${root}/tools/node_modules`);
  await copy(`${ROOT}/tools/bundle.ts`, `${root}/tools/bundle.ts`);
  if (bundle) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-prompt", `${root}/tools/bundle.ts`, "--force"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`building the bundle failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
  }
  return { root, bin: `${root}/bin`, bundle };
}
