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
 * The environment every process of a run gets for Deno: the copy's own
 * cache, whatever the caller's `DENO_DIR` is, so a run needs nothing from
 * the shell it was started from (processes in namespaces without a route to
 * the registry find every package there). The CA stores follow dev.sh:
 * registries may be reached through a TLS proxy only the system trusts.
 */
export function denoEnv(root: string): Record<string, string> {
  return {
    DENO_DIR: `${root}/.cache/deno`,
    DENO_TLS_CA_STORE: Deno.env.get("DENO_TLS_CA_STORE") ?? "mozilla,system",
  };
}

/** Runs deno with the copy's environment; throws with its stderr when it fails. */
async function denoIn(root: string, what: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env: denoEnv(root),
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${what} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/**
 * Fills the copy's own Deno cache with every npm package its lockfile names
 * (what main.ts, the bench modules and the test worlds they use import;
 * Deno reads the whole lockfile's npm snapshot, so a role started from
 * main.ts wants all of them) and with what the single-file build imports.
 * The plugins and roles run inside namespaces without a route to the
 * package registry: with a package missing Deno would try, and fail, to
 * fetch it at every start.
 */
async function fillDenoCache(root: string): Promise<void> {
  await seedNpmCache(root);
  await denoIn(root, "filling the Deno cache", [
    "install",
    "--frozen",
    "--quiet",
    "--entrypoint",
    `${root}/main.ts`,
  ]);
}

/** Caches what the single-file CNI build imports (it runs with `--no-config`). */
async function cacheBundleImports(root: string): Promise<void> {
  // Every file of the build: its entry loads the rest through a computed
  // URL, which Deno (and so `deno cache`) does not follow.
  const bundleFiles = [...Deno.readDirSync(`${root}/.cache/bundle`)]
    .filter((e) => e.isFile && e.name.endsWith(".js"))
    .map((e) => `${root}/.cache/bundle/${e.name}`);
  await denoIn(root, "caching the CNI build's imports", [
    "cache",
    "--quiet",
    "--no-config",
    ...bundleFiles,
  ]);
}

/**
 * Copies (hard links where it can) the npm packages of this checkout's own
 * cache into the copy's, when it has one: the registry is then asked only
 * for what is missing. Packages are immutable per version, so sharing their
 * files is safe.
 */
async function seedNpmCache(root: string): Promise<void> {
  const from = `${ROOT}/.cache/deno/npm`;
  try {
    await Deno.stat(from);
  } catch {
    return;
  }
  await Deno.mkdir(`${root}/.cache/deno`, { recursive: true });
  const out = await new Deno.Command("cp", {
    args: ["-al", from, `${root}/.cache/deno/npm`],
    stderr: "null",
  }).output();
  if (!out.success) await copy(from, `${root}/.cache/deno/npm`).catch(() => {});
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
  await fillDenoCache(root);
  if (bundle) {
    await denoIn(root, "building the bundle", [
      "run",
      "-A",
      "--no-prompt",
      `${root}/tools/bundle.ts`,
      "--force",
    ]);
    await cacheBundleImports(root);
  }
  return { root, bin: `${root}/bin`, bundle };
}
