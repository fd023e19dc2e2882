/**
 * Reading fields of a JSON config object, the one way hydra does it: each
 * read says which JSON type it wants, a field that is not set reads as
 * undefined, and a field of another type is reported with its key path,
 * what was expected and what was found. The error itself is the caller's
 * (a CNI error with its code, a kubeconfig error naming the file, …): the
 * reader hands it a {@link FieldProblem} and throws what it returns.
 *
 * ```ts
 * const f = fields(conf, { fail: (p) => new CniError(6, `"${p.path}" must be ${p.expected}`) });
 * const mtu = f.integer("mtu");
 * const ipam = f.object("ipam"); // a reader of conf.ipam, paths "ipam.…"
 * ```
 *
 * Not set means absent or `null`, as for the zero values of the Go structs
 * the reference plugins decode into; a reader made with
 * `emptyStringUnset` also reads `""` as not set. A schema validator can
 * later take this reader's place behind the same {@link FieldProblem}s.
 *
 * @module
 */

/** A JSON object. */
export type JsonObject = Record<string, unknown>;

/** What is wrong with one field. */
export interface FieldProblem {
  /** The field's key in its object. */
  key: string;
  /** The key path from the reader's root ("ipam.ranges[0]" style), or the key. */
  path: string;
  /** What it should be: "a string", "an integer", "a list of strings", … */
  expected: string;
  /** The JSON type found: "number", "array", "null", … */
  got: string;
  value: unknown;
}

/** How a reader treats unset values and reports problems. */
export interface FieldsOptions {
  /** The error to throw for a field of the wrong type. */
  fail: (problem: FieldProblem) => Error;
  /** Path of the object read, prefixed to every key ("" or absent: keys alone). */
  where?: string;
  /** `null` is a wrong type rather than "not set". */
  nullIsWrong?: boolean;
  /** `""` reads as not set (strings). */
  emptyStringUnset?: boolean;
}

/** Typed reads of one object's fields; each returns undefined when the field is not set. */
export interface Fields {
  readonly value: JsonObject;
  /** The key path of `key` in this reader. */
  path(key: string): string;
  string(key: string): string | undefined;
  boolean(key: string): boolean | undefined;
  /** A number without a fraction. */
  integer(key: string): number | undefined;
  number(key: string): number | undefined;
  /** A JSON object (not a list, not null). */
  object(key: string): JsonObject | undefined;
  /** A reader of the object under `key`, paths continuing from this one. */
  nested(key: string): Fields | undefined;
  list(key: string): unknown[] | undefined;
  /** A list whose every item is a string. */
  strings(key: string): string[] | undefined;
}

/** The JSON type of a value, as problems report it. */
export function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** True for a JSON object: not null, not a list. */
export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

type Check<T> = { expected: string; test: (v: unknown) => v is T };

const STRING: Check<string> = { expected: "a string", test: (v) => typeof v === "string" };
const BOOLEAN: Check<boolean> = { expected: "a boolean", test: (v) => typeof v === "boolean" };
const INTEGER: Check<number> = {
  expected: "an integer",
  test: (v): v is number => typeof v === "number" && Number.isInteger(v),
};
const NUMBER: Check<number> = {
  expected: "a number",
  test: (v): v is number => typeof v === "number" && Number.isFinite(v),
};
const OBJECT: Check<JsonObject> = { expected: "an object", test: isJsonObject };
const LIST: Check<unknown[]> = { expected: "a list", test: Array.isArray };
const STRINGS: Check<string[]> = {
  expected: "a list of strings",
  test: (v): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string"),
};

/** A reader of `value`'s fields. */
export function fields(value: JsonObject, opts: FieldsOptions): Fields {
  const path = (key: string) => opts.where ? `${opts.where}.${key}` : key;
  const unset = (v: unknown) => v === undefined || (v === null && !opts.nullIsWrong);
  function read<T>(key: string, check: Check<T>): T | undefined {
    const v = value[key];
    if (unset(v) || (v === "" && check === STRING && opts.emptyStringUnset)) return undefined;
    if (!check.test(v)) {
      throw opts.fail({
        key,
        path: path(key),
        expected: check.expected,
        got: jsonType(v),
        value: v,
      });
    }
    return v;
  }
  return {
    value,
    path,
    string: (key) => read<string>(key, STRING),
    boolean: (key) => read(key, BOOLEAN),
    integer: (key) => read(key, INTEGER),
    number: (key) => read(key, NUMBER),
    object: (key) => read(key, OBJECT),
    nested(key) {
      const inner = read(key, OBJECT);
      return inner && fields(inner, { ...opts, where: path(key) });
    },
    list: (key) => read(key, LIST),
    strings: (key) => read(key, STRINGS),
  };
}
