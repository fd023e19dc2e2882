/**
 * A private copy of the source tree for one benchmark run, so that every
 * measured invocation runs the same code even while the tree is being
 * edited: hydra is exec'd from `<copy>/bin`, through the same launcher and
 * role symlinks a user has, with its own Deno cache (filled by the warm-up
 * pods). Deno itself (tools/node_modules) is linked, not copied.
 *
 * The copy is of a committed tree (`git archive <revision>`, HEAD unless
 * another revision is named), so the figures belong to a known revision;
 * `worktree` copies the files as they are now.
 *
 * With `bundle`, the copy gets the single-file CNI build (tools/bundle.ts)
 * that the launcher prefers; without it the launcher runs main.ts.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Top-level entries a work-tree copy leaves out: history, caches, build output, tooling. */
const SKIP = new Set([".git", ".cache", ".ci", "dist", "tools", "node_modules", "docs"]);

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

/** Which tree to copy: the work tree as it is, or a committed revision. */
export type TreeSource = "worktree" | { revision: string };

/** Extracts the committed tree of `revision` into `root`. */
async function archiveRevision(root: string, revision: string): Promise<void> {
  const git = new Deno.Command("git", {
    args: ["archive", "--format=tar", revision],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tar = new Deno.Command("tar", { args: ["-x", "-C", root], stdin: "piped" }).spawn();
  await git.stdout.pipeTo(tar.stdin);
  const [g, t] = await Promise.all([git.output(), tar.output()]);
  if (!g.success || !t.success) {
    throw new Error(
      `git archive ${revision} | tar -x failed: ${new TextDecoder().decode(g.stderr)}`,
    );
  }
}

/**
 * Fills the copy's own Deno cache with the npm packages the launcher's entry
 * (the bundle, or main.ts) may import. The plugins run inside namespaces
 * without a route to the package registry: with an empty cache Deno would
 * try, and fail after about a second, to fetch them at every start.
 */
async function fillDenoCache(root: string, bundle: boolean): Promise<void> {
  // Every file of the build: its entry loads the rest through a computed
  // URL, which Deno (and so `deno cache`) does not follow.
  const bundleFiles = bundle
    ? [...Deno.readDirSync(`${root}/.cache/bundle`)]
      .filter((e) => e.isFile && e.name.endsWith(".js"))
      .map((e) => `${root}/.cache/bundle/${e.name}`)
    : [];
  const args = bundle
    ? ["cache", "--quiet", "--no-config", ...bundleFiles]
    : ["cache", "--quiet", "--config", `${root}/deno.json`, `${root}/main.ts`];
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    env: { DENO_DIR: `${root}/.cache/deno` },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `filling the Deno cache failed: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

/**
 * Copies the tree (`source`: a committed revision, HEAD by default, or the
 * work tree as it is) into `dir`/tree and, with `bundle`, builds the bundle
 * there.
 */
export async function snapshotTree(
  dir: string,
  bundle: boolean,
  source: TreeSource = { revision: "HEAD" },
): Promise<TreeSnapshot> {
  const root = `${dir}/tree`;
  await Deno.mkdir(root, { recursive: true });
  if (source !== "worktree") {
    await archiveRevision(root, source.revision);
  } else {
    for await (const e of Deno.readDir(ROOT)) {
      if (SKIP.has(e.name)) continue;
      await copy(`${ROOT}/${e.name}`, `${root}/${e.name}`);
    }
    await Deno.mkdir(`${root}/tools`, { recursive: true });
    await copy(`${ROOT}/tools/bundle.ts`, `${root}/tools/bundle.ts`);
  }
  await Deno.remove(`${root}/tools/node_modules`, { recursive: true }).catch(() => {});
  await Deno.symlink(`${ROOT}/tools/node_modules`, `${root}/tools/node_modules`);
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
  await fillDenoCache(root, bundle);
  return { root, bin: `${root}/bin`, bundle };
}
