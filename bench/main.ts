/**
 * `deno task bench`: runs every benchmark module of this folder, each in its
 * own process (so one module's heap, caches and FFI state cannot colour
 * another's figures), and prints one JSON document gathering their output.
 *
 *   deno task bench [--only plugins,route] [plugin bench flags, e.g. --pods 300]
 *
 * Flags other than `--only` go to bench/plugins.ts (see its help); other
 * modules run with their defaults. A module that fails is reported under
 * `errors` and makes the exit status 1; the others still run.
 *
 * @module
 */

import { machineInfo } from "./machine.ts";

/** A benchmark module: its name in the output and its file beside this one. */
interface BenchModule {
  name: string;
  file: string;
  /** Takes the command-line flags given to this program. */
  takesFlags: boolean;
}

const MODULES: BenchModule[] = [
  { name: "plugins", file: "plugins.ts", takesFlags: true },
  { name: "route", file: "route.ts", takesFlags: false },
];

function splitOnly(argv: string[]): { only?: Set<string>; rest: string[] } {
  const rest: string[] = [];
  let only: Set<string> | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--only" || a.startsWith("--only=")) {
      const v = a === "--only" ? argv[++i] : a.slice("--only=".length);
      only = new Set((v ?? "").split(",").filter(Boolean));
    } else {
      rest.push(a);
    }
  }
  return { only, rest };
}

function exists(url: URL): boolean {
  try {
    return Deno.statSync(url).isFile;
  } catch {
    return false;
  }
}

async function gitRevision(): Promise<string | null> {
  try {
    const root = new URL("..", import.meta.url);
    const head = await new Deno.Command("git", {
      args: ["rev-parse", "--short", "HEAD"],
      cwd: root,
      stdout: "piped",
      stderr: "null",
    }).output();
    if (!head.success) return null;
    const dirty = await new Deno.Command("git", {
      args: ["status", "--porcelain", "--untracked-files=no"],
      cwd: root,
      stdout: "piped",
      stderr: "null",
    }).output();
    const rev = new TextDecoder().decode(head.stdout).trim();
    return dirty.stdout.length ? `${rev}+modified` : rev;
  } catch {
    return null;
  }
}

/** Runs one module and returns its parsed JSON document. */
async function runModule(m: BenchModule, flags: string[]): Promise<unknown> {
  const url = new URL(m.file, import.meta.url);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", url.pathname, ...(m.takesFlags ? flags : [])],
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

async function main(): Promise<number> {
  const { only, rest } = splitOnly(Deno.args);
  const startedAt = new Date().toISOString();
  const machine = await machineInfo();
  const results: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  const skipped: string[] = [];
  for (const m of MODULES) {
    if (only && !only.has(m.name)) continue;
    if (!exists(new URL(m.file, import.meta.url))) {
      skipped.push(`${m.name} (bench/${m.file} does not exist)`);
      continue;
    }
    console.error(`[bench] running ${m.name}`);
    try {
      results[m.name] = await runModule(m, rest);
    } catch (err) {
      errors[m.name] = (err as Error).message;
    }
  }
  const doc = {
    hydraBench: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    revision: await gitRevision(),
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
