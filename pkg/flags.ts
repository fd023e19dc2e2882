/**
 * Command-line flags, read strictly: `--name value`, `--name=value`,
 * boolean `--name`, one-letter `-h` (grouped `-hv`, or `-nVALUE` for a
 * string), repeated flags gathered when `multiple`, defaults for the absent
 * ones, and no positional arguments. It reads a command line the way
 * `node:util`'s `parseArgs` does with `strict: true` and no positionals,
 * and refuses what it refuses, with the same first words in its messages;
 * flags_test.ts compares the two on random command lines.
 *
 * Why not `node:util`: importing any `node:` module brings up Deno's Node
 * layer, 9 ms of CPU and 5–6 MiB more at a process's start, most of it
 * given back by the first collections (bench/README.md, "Memory:
 * collections").
 *
 * @module
 */

/** One flag: its kind, whether it repeats, its one-letter form and default. */
export interface FlagSpec {
  type: "string" | "boolean";
  multiple?: boolean;
  short?: string;
  default?: string | boolean | string[] | boolean[];
}

/** The flags a command takes, by long name. */
export type FlagSpecs = Record<string, FlagSpec>;

type ValueOf<S extends FlagSpec> = S["type"] extends "string"
  ? (S["multiple"] extends true ? string[] : string)
  : (S["multiple"] extends true ? boolean[] : boolean);

type Flat<T> = { [K in keyof T]: T[K] };

/** The values read: a flag with a default is always there, the others when given. */
export type FlagValues<O extends FlagSpecs> = Flat<
  & { -readonly [K in keyof O as O[K] extends { default: unknown } ? K : never]: ValueOf<O[K]> }
  & { -readonly [K in keyof O as O[K] extends { default: unknown } ? never : K]?: ValueOf<O[K]> }
>;

/** A command line the flags refuse. */
export class FlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

type Values = Record<string, string | boolean | (string | boolean)[]>;

/** Reads `args` against `specs`; throws {@link FlagError} for anything it refuses. */
export function parseFlags<const O extends FlagSpecs>(
  args: readonly string[],
  specs: O,
): FlagValues<O> {
  const values: Values = Object.create(null);
  const rest = expandShortGroups(args, specs);
  while (rest.length) {
    const arg = rest.shift()!;
    if (arg === "--") {
      if (rest.length) throw unexpected(rest[0]);
      break;
    }
    if (arg.length < 2 || arg[0] !== "-") throw unexpected(arg);
    const { name, written, inline } = splitFlag(arg, specs);
    const spec = specs[name];
    if (!Object.hasOwn(specs, name)) throw new FlagError(`Unknown option '${written}'`);
    const value = spec.type === "string"
      ? stringValue(written, name, inline, rest)
      : booleanValue(written, inline);
    store(values, name, spec, value);
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (!Object.hasOwn(values, name) && spec.default !== undefined) values[name] = spec.default;
  }
  return values as FlagValues<O>;
}

function unexpected(arg: string): FlagError {
  return new FlagError(
    `Unexpected argument '${arg}'. This command does not take positional arguments`,
  );
}

/** `-abc` of one-letter booleans as `-a -b -c`; a string letter takes the group's rest. */
function expandShortGroups(args: readonly string[], specs: FlagSpecs): string[] {
  const out: string[] = [];
  for (const [at, arg] of args.entries()) {
    if (arg === "--") return [...out, ...args.slice(at)];
    if (arg.length <= 2 || arg[0] !== "-" || arg[1] === "-") {
      out.push(arg);
      continue;
    }
    for (let i = 1; i < arg.length; i++) {
      const spec = specs[longNameOf(arg[i], specs) ?? ""];
      if (spec?.type === "string" && i < arg.length - 1) {
        out.push(`-${arg[i]}=${arg.slice(i + 1)}`);
        break;
      }
      out.push(`-${arg[i]}`);
    }
  }
  return out;
}

function longNameOf(letter: string, specs: FlagSpecs): string | undefined {
  return Object.keys(specs).find((k) => specs[k].short === letter);
}

/** The long name of `--name[=v]` or `-x[=v]`, how it was written, and an inline value. */
function splitFlag(
  arg: string,
  specs: FlagSpecs,
): { name: string; written: string; inline?: string } {
  const eq = arg.indexOf("=");
  const head = eq < 0 ? arg : arg.slice(0, eq);
  const inline = eq < 0 ? undefined : arg.slice(eq + 1);
  if (head.startsWith("--")) return { name: head.slice(2), written: head, inline };
  return { name: longNameOf(head.slice(1), specs) ?? head, written: head, inline };
}

function stringValue(
  written: string,
  name: string,
  inline: string | undefined,
  rest: string[],
): string {
  if (inline !== undefined) return inline;
  if (!rest.length) throw new FlagError(`Option '${written} <value>' argument missing`);
  const next = rest.shift()!;
  if (next.length > 1 && next[0] === "-") {
    throw new FlagError(
      `Option '${written}' argument is ambiguous: '${next}' looks like a flag; ` +
        `write --${name}=${next} if it is the value`,
    );
  }
  return next;
}

function booleanValue(written: string, inline: string | undefined): boolean {
  if (inline !== undefined) throw new FlagError(`Option '${written}' does not take an argument`);
  return true;
}

function store(values: Values, name: string, spec: FlagSpec, value: string | boolean): void {
  if (!spec.multiple) {
    values[name] = value;
    return;
  }
  const list = values[name];
  if (Array.isArray(list)) list.push(value);
  else values[name] = [value];
}
