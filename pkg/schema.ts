/**
 * Config schemas as data: which keys a kind of config object has, the JSON
 * type of each, the values a key may take, and the spellings of other
 * projects (Multus, whereabouts) hydra accepts with their meaning or names
 * as unsupported. One {@link Shape} per kind serves every reader of it:
 *
 * - the exec path ({@link enforceShape}): a key of the wrong type throws the
 *   caller's error (the same one its parser would throw, built from the
 *   {@link FieldProblem}), an unknown or unsupported key is handed to a
 *   warning callback (logged), nothing else; no library, no allocation
 *   beyond the walk, so a plugin exec pays microseconds;
 * - `hydra doctor --conf` and the installer ({@link checkShape}): every
 *   problem of the whole object, with its key path, unknown keys included
 *   (with the closest known key when one is near: `isGatway` → `isGateway`).
 *
 * Types are read through pkg/fields, the one field reader, so a key's type
 * is judged exactly as the parsers judge it (absent or `null` is "not set").
 *
 * ```ts
 * const RANGE: Shape = { name: "range", keys: { subnet: { type: "string" } } };
 * checkShape({ subnet: 1 }, RANGE, "ipam").problems; // [{kind: "type", path: "ipam.subnet", …}]
 * ```
 *
 * @module
 */

import { type FieldProblem, fields, isJsonObject, type JsonObject, jsonType } from "./fields.ts";

/** The JSON type a key holds ("strings": a list of strings; "any": not checked). */
export type FieldType =
  | "string"
  | "boolean"
  | "integer"
  | "number"
  | "object"
  | "list"
  | "strings"
  | "any";

/** What one key of a shape is. */
export interface KeySpec {
  /** Its type, or the types it may have (e.g. a boolean or "true"/"false"). */
  type: FieldType | readonly FieldType[];
  /** For a string: the values it may take. */
  values?: readonly string[];
  /** For an object: its keys. */
  shape?: Shape;
  /** For a list: what each item is. */
  items?: KeySpec;
  /** `null` is a wrong type, not "not set". */
  nullIsWrong?: boolean;
  /**
   * Another project's spelling hydra reads, with what it means here
   * ("Multus: …"). Accepted; doctor shows the meaning.
   */
  foreign?: string;
  /**
   * Known but not honoured: why, and what to write instead. A warning on
   * the exec path, an error in doctor and the installer.
   */
  unsupported?: string;
}

/** The keys of one kind of config object. */
export interface Shape {
  /** The kind, for messages: "hydra-bridge config". */
  name: string;
  keys: Readonly<Record<string, KeySpec>>;
  /** Keys beyond {@link keys} are fine here (free-form objects such as `args`). */
  open?: boolean;
}

/** What can be wrong with a key. */
export type ProblemKind = "type" | "value" | "unknown" | "unsupported";

/** One problem, with the key's path from the object checked. */
export interface SchemaProblem {
  kind: ProblemKind;
  /** "ipam.ranges[0][1].rangeStart" style. */
  path: string;
  message: string;
  /** For a type problem: what pkg/fields reported (callers build their own error from it). */
  field?: FieldProblem;
}

/** A foreign spelling that was accepted, with what it means in hydra. */
export interface SchemaNote {
  path: string;
  message: string;
}

/** Everything {@link checkShape} found. */
export interface CheckResult {
  problems: SchemaProblem[];
  notes: SchemaNote[];
}

/** The key path of `key` under `where`. */
export function keyPath(where: string, key: string): string {
  return where ? `${where}.${key}` : key;
}

/** Carries a field problem out of pkg/fields' reader. */
class WrongType extends Error {
  constructor(readonly problem: FieldProblem) {
    super(problem.path);
  }
}

type Reader = ReturnType<typeof fields>;

const READ: Record<Exclude<FieldType, "any">, (f: Reader, key: string) => unknown> = {
  string: (f, k) => f.string(k),
  boolean: (f, k) => f.boolean(k),
  integer: (f, k) => f.integer(k),
  number: (f, k) => f.number(k),
  object: (f, k) => f.object(k),
  list: (f, k) => f.list(k),
  strings: (f, k) => f.strings(k),
};

/**
 * The key's value when it has one of the spec's types (undefined when not
 * set), else the problem pkg/fields reported for the first type.
 */
function readTyped(
  obj: JsonObject,
  key: string,
  spec: KeySpec,
  where: string,
): { value?: unknown; problem?: FieldProblem } {
  const types = typeof spec.type === "string" ? [spec.type] : spec.type;
  const f = fields(obj, {
    where,
    nullIsWrong: spec.nullIsWrong,
    fail: (p) => new WrongType(p),
  });
  let first: FieldProblem | undefined;
  for (const t of types) {
    if (t === "any") return { value: obj[key] };
    try {
      return { value: READ[t](f, key) };
    } catch (err) {
      if (!(err instanceof WrongType)) throw err;
      first ??= err.problem;
    }
  }
  if (first && types.length > 1) {
    first = { ...first, expected: types.map((t) => READ_NAME[t]).join(" or ") };
  }
  return { problem: first };
}

const READ_NAME: Record<FieldType, string> = {
  string: "a string",
  boolean: "a boolean",
  integer: "an integer",
  number: "a number",
  object: "an object",
  list: "a list",
  strings: "a list of strings",
  any: "anything",
};

/** Damerau-Levenshtein distance (adjacent swaps count once), capped at 3. */
function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return Math.min(d[a.length][b.length], 3);
}

/** The known key `key` most likely misspells, if one is close enough. */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const same = known.find((k) => k.toLowerCase() === lower);
  if (same) return same;
  let best: string | undefined;
  let bestDistance = key.length <= 4 ? 2 : 3;
  for (const k of known) {
    const d = distance(lower, k.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best;
}

function unknownKey(shape: Shape, key: string, where: string): SchemaProblem {
  const near = closestKey(key, Object.keys(shape.keys));
  const hint = near ? `; did you mean "${near}"?` : "";
  return {
    kind: "unknown",
    path: keyPath(where, key),
    message: `"${keyPath(where, key)}" is not a key of a ${shape.name}${hint}`,
  };
}

/** Walks `value`; calls `visit` for each problem and note, depth first, in key order. */
function walk(
  value: JsonObject,
  shape: Shape,
  where: string,
  visit: (p: SchemaProblem | undefined, n?: SchemaNote) => void,
): void {
  for (const key of Object.keys(value)) {
    const spec = Object.hasOwn(shape.keys, key) ? shape.keys[key] : undefined;
    if (!spec) {
      if (!shape.open) visit(unknownKey(shape, key, where));
      continue;
    }
    const path = keyPath(where, key);
    if (spec.unsupported) {
      visit({
        kind: "unsupported",
        path,
        message: `"${path}" is not supported: ${spec.unsupported}`,
      });
      continue;
    }
    if (spec.foreign) visit(undefined, { path, message: `"${path}": ${spec.foreign}` });
    const read = readTyped(value, key, spec, where);
    if (read.problem) {
      const p = read.problem;
      visit({
        kind: "type",
        path,
        message: `"${path}" must be ${p.expected}, got ${p.got}`,
        field: p,
      });
      continue;
    }
    checkValue(read.value, spec, path, visit);
  }
}

/** Checks a value of the right type: allowed strings, nested objects, list items. */
function checkValue(
  v: unknown,
  spec: KeySpec,
  path: string,
  visit: (p: SchemaProblem | undefined, n?: SchemaNote) => void,
): void {
  if (v === undefined) return;
  if (spec.values && typeof v === "string" && !spec.values.includes(v)) {
    visit({
      kind: "value",
      path,
      message: `"${path}" is ${JSON.stringify(v)}; expected one of ${spec.values.join(", ")}`,
    });
  }
  if (spec.shape && isJsonObject(v)) walk(v, spec.shape, path, visit);
  if (spec.items && Array.isArray(v)) {
    v.forEach((item, i) => checkItem(item, spec.items!, `${path}[${i}]`, visit));
  }
}

/** One list item against its spec (an item has no key: its type is checked here). */
function checkItem(
  item: unknown,
  spec: KeySpec,
  path: string,
  visit: (p: SchemaProblem | undefined, n?: SchemaNote) => void,
): void {
  const holder = { item };
  const read = readTyped(holder, "item", spec, "");
  if (read.problem) {
    const p = { ...read.problem, key: path, path };
    visit({
      kind: "type",
      path,
      message: `"${path}" must be ${p.expected}, got ${p.got}`,
      field: p,
    });
    return;
  }
  checkValue(read.value, spec, path, visit);
}

/**
 * Every problem of `value` against `shape`, and the foreign spellings it
 * uses. `where` prefixes every path.
 */
export function checkShape(value: JsonObject, shape: Shape, where = ""): CheckResult {
  const out: CheckResult = { problems: [], notes: [] };
  walk(value, shape, where, (p, n) => {
    if (p) out.problems.push(p);
    if (n) out.notes.push(n);
  });
  return out;
}

/** How {@link enforceShape} reports. */
export interface EnforceOptions {
  /** Path of the object checked ("" for the top). */
  where?: string;
  /** The error for a key of the wrong type (the parser's own, from the same problem). */
  fail: (problem: FieldProblem) => Error;
  /** Unknown and unsupported keys; default: ignored. */
  warn?: (problem: SchemaProblem) => void;
  /** false: keys of the wrong type are not reported (left to the reader). Default true. */
  types?: boolean;
}

/**
 * The exec path's check: throws `fail(…)` for the first key of the wrong
 * type (in key order, nested objects included) and hands unknown and
 * unsupported keys to `warn`. Values are left to the parser.
 */
export function enforceShape(value: JsonObject, shape: Shape, opts: EnforceOptions): void {
  walk(value, shape, opts.where ?? "", (p) => {
    if (!p) return;
    if (p.kind === "type") {
      if (opts.types !== false) throw opts.fail(p.field!);
      return;
    }
    if (p.kind !== "value") opts.warn?.(p);
  });
}

/** The JSON type of a value as problems name it (re-exported for callers' messages). */
export { jsonType };
