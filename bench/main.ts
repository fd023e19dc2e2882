/**
 * `deno task bench`: runs every benchmark module of this folder (each
 * program in it, i.e. each file that reads its command line, but this
 * runner and report.ts), each in its
 * own process (so one module's heap, caches and FFI state cannot colour
 * another's figures), and prints one JSON document gathering their output.
 *
 *   deno task bench [--only plugins,route,…] [--tree head|worktree|REV[,REV…]]
 *                   [--launcher bundle|source] [plugin bench flags, e.g. --pods 300]
 *
 * The modules, and the hydra they measure, run from a private copy of the
 * tree: the committed one (HEAD, default), another committed revision, or
 * the work tree as it is (`--tree worktree`), so edits made while a run
 * goes on change nothing in it. The copy gets the single-file CNI build the
 * launcher prefers, unless `--launcher source` (then bin/hydra runs main.ts).
 *
 * Several trees (`--tree 8ccd884,HEAD`) compare revisions in one run: each
 * module runs from each tree in turn before the next module starts, so a
 * change of load on the machine hits every revision alike; the results are
 * keyed `<module>@<revision>`.
 *
 * Other flags go to bench/plugins.ts (see its help); other modules run with
 * their defaults. A module that fails is reported under `errors` and makes
 * the exit status 1; the others still run.
 *
 * @module
 */

import { machineInfo } from "./machine.ts";
import { denoEnv, snapshotTree, type TreeSnapshot, type TreeSource } from "./snapshot.ts";

/** A benchmark module: its name in the output and its file beside this one. */
interface BenchModule {
  name: string;
  file: string;
  /** Takes the command-line flags given to this program. */
  takesFlags: boolean;
}

/** Files of bench/ that are not benchmark modules: this runner, the renderer, helpers. */
const NOT_MODULES = new Set(["main.ts", "report.ts"]);

/**
 * The benchmark modules in a tree's bench/: every program there (a file
 * that reads its command line) but this one and report.ts, skipping
 * `*_lib.ts` helpers; plugins first, the others by name. Only plugins
 * takes flags.
 */
function findModules(benchDir: string): BenchModule[] {
  const found: BenchModule[] = [];
  for (const e of Deno.readDirSync(benchDir)) {
    const file = e.name;
    if (!e.isFile || !file.endsWith(".ts") || file.endsWith("_test.ts")) continue;
    if (NOT_MODULES.has(file) || file.endsWith("_lib.ts")) continue;
    if (!Deno.readTextFileSync(`${benchDir}/${file}`).includes("Deno.args")) continue;
    const name = file.slice(0, -3);
    found.push({ name, file, takesFlags: name === "plugins" });
  }
  return found.sort((a, b) =>
    a.name === "plugins" ? -1 : b.name === "plugins" ? 1 : a.name.localeCompare(b.name)
  );
}

interface MainOptions {
  only?: Set<string>;
  /** The trees to run from, as named on the command line ("head", "worktree" or a revision). */
  trees: string[];
  bundle: boolean;
  /** Flags for the modules that take them. */
  rest: string[];
}

/** Takes this program's own flags out of `argv`; the rest goes to the modules. */
function parseMainOptions(argv: string[]): MainOptions {
  const opts: MainOptions = { trees: ["head"], bundle: true, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const own = /^--(only|tree|launcher)(?:=(.*))?$/.exec(a);
    if (!own) {
      opts.rest.push(a);
      continue;
    }
    const v = own[2] ?? argv[++i] ?? "";
    if (own[1] === "only") opts.only = new Set(v.split(",").filter(Boolean));
    else if (own[1] === "tree") {
      const trees = v.split(",").filter(Boolean);
      if (trees.length === 0) throw new Error(`--tree needs head, worktree or a revision`);
      opts.trees = trees;
    } else {
      if (v !== "bundle" && v !== "source") throw new Error(`--launcher must be bundle or source`);
      opts.bundle = v === "bundle";
    }
  }
  return opts;
}

async function git(args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command("git", {
      args,
      cwd: new URL("..", import.meta.url),
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

/** The short revision of HEAD, "+modified" when the work tree differs. */
async function gitRevision(): Promise<string | null> {
  const rev = await git(["rev-parse", "--short", "HEAD"]);
  if (rev === null) return null;
  const dirty = await git(["status", "--porcelain", "--untracked-files=no"]);
  return dirty ? `${rev}+modified` : rev;
}

/** A tree to run from: where it comes from and how results name it. */
interface TreeChoice {
  source: TreeSource;
  /** The short revision, or "worktree". */
  label: string;
}

/** Resolves a `--tree` word to a source and a label; throws for an unknown revision. */
async function treeChoice(word: string): Promise<TreeChoice> {
  if (word === "worktree") return { source: "worktree", label: "worktree" };
  const revision = word === "head" ? "HEAD" : word;
  const short = await git(["rev-parse", "--short", "--verify", `${revision}^{commit}`]);
  if (short === null) throw new Error(`--tree: ${word} is not a revision of this repository`);
  return { source: { revision }, label: short };
}

/**
 * Runs one module (the copy's `file`) and returns its parsed JSON document.
 * It and everything it starts use the copy's Deno cache, not the caller's.
 */
async function runModule(
  m: BenchModule,
  tree: TreeSnapshot,
  file: string,
  flags: string[],
): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", file, ...(m.takesFlags ? flags : [])],
    env: denoEnv(tree.root),
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) throw new Error(`bench/${m.file} exited ${out.code}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`bench/${m.file} printed no JSON document: ${text.slice(0, 300)}`);
  }
}

const HELP = `Usage: deno task bench [--only plugins,route,…] [--tree head|worktree|REV[,REV…]]
                       [--launcher bundle|source] [plugin bench flags]

Runs every benchmark in bench/ from a private copy of the tree and prints one
JSON document on stdout (progress on stderr).

  --only LIST       run only these modules (by file name without .ts)
  --tree WHICH      copy the committed tree (head, default), the work tree, or
                    another revision; several (REV,REV) run each module from
                    each tree in turn, results keyed <module>@<revision>
  --launcher HOW    bin/hydra runs the single-file CNI build (bundle, default)
                    or main.ts (source)

Other flags go to bench/plugins.ts (deno run -A bench/plugins.ts --help).`;

/** Copies each chosen tree into its own folder under `dir`. */
async function snapshotAll(
  dir: string,
  choices: TreeChoice[],
  bundle: boolean,
): Promise<TreeSnapshot[]> {
  const trees: TreeSnapshot[] = [];
  for (const [i, c] of choices.entries()) {
    console.error(
      `[bench] copying the ${c.label === "worktree" ? "work tree" : `tree of ${c.label}`}`,
    );
    const sub = `${dir}/${i}`;
    await Deno.mkdir(sub);
    trees.push(await snapshotTree(sub, bundle, c.source));
  }
  return trees;
}

async function main(): Promise<number> {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  const opts = parseMainOptions(Deno.args);
  const startedAt = new Date().toISOString();
  const machine = await machineInfo();
  const results: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  const skipped: string[] = [];
  const revision = await gitRevision();
  const choices = await Promise.all(opts.trees.map(treeChoice));
  const several = choices.length > 1;
  const dir = await Deno.makeTempDir({ prefix: "hydra-bench-tree-" });
  try {
    const trees = await snapshotAll(dir, choices, opts.bundle);
    const modules = findModules(`${trees[0].root}/bench`);
    for (const name of opts.only ?? []) {
      if (!modules.some((m) => m.name === name)) {
        skipped.push(`${name} (no bench/${name}.ts in the ${choices[0].label} tree)`);
      }
    }
    for (const m of modules) {
      if (opts.only && !opts.only.has(m.name)) continue;
      for (const [i, tree] of trees.entries()) {
        const key = several ? `${m.name}@${choices[i].label}` : m.name;
        const file = `${tree.root}/bench/${m.file}`;
        console.error(`[bench] running ${key}`);
        try {
          await Deno.stat(file);
          results[key] = await runModule(m, tree, file, opts.rest);
        } catch (err) {
          errors[key] = (err as Error).message;
        }
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const labels = choices.map((c) =>
    c.label === "worktree" ? "work tree" : `${c.label} (committed tree)`
  );
  const doc = {
    hydraBench: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    tree: several ? labels : labels[0],
    revision,
    launcher: opts.bundle ? "single-file CNI build" : "main.ts",
    machine,
    results,
    ...(skipped.length ? { skipped } : {}),
    ...(Object.keys(errors).length ? { errors } : {}),
  };
  console.log(JSON.stringify(doc, null, 2));
  return Object.keys(errors).length ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
