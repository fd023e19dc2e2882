/**
 * CNI_ARGS: the deprecated "K=V;K2=V2" string of per-attachment arguments.
 *
 * Parsing follows libcni: pairs are split on ";" and each pair must split on
 * "=" into exactly two parts (so a value cannot contain "="). A plugin names
 * the keys it understands; any other key is an error unless the string sets
 * `IgnoreUnknown` to 1/true (kubelet and Multus always do).
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";

/** One CNI_ARGS pair, as libcni's RuntimeConf.Args holds it. */
export type ArgPair = [string, string];

/** Splits a CNI_ARGS string into pairs. "" gives none. Throws CniError 4 on a bad pair. */
export function parseCniArgs(args: string): ArgPair[] {
  if (args === "") return [];
  return args.split(";").map((pair) => {
    const kv = pair.split("=");
    if (kv.length !== 2) {
      throw new CniError(
        ErrorCode.InvalidEnvironmentVariables,
        `CNI_ARGS: invalid pair "${pair}": expected KEY=VALUE`,
      );
    }
    return [kv[0], kv[1]];
  });
}

/** Joins pairs into a CNI_ARGS string. */
export function formatCniArgs(pairs: readonly (readonly [string, string])[]): string {
  return pairs.map(([k, v]) => `${k}=${v}`).join(";");
}

/**
 * Parses "1"/"true"/"0"/"false" (any case), as libcni's argument booleans.
 * Returns undefined for anything else.
 */
export function parseArgBool(value: string): boolean | undefined {
  switch (value.toLowerCase()) {
    case "1":
    case "true":
      return true;
    case "0":
    case "false":
      return false;
    default:
      return undefined;
  }
}

/**
 * Parses CNI_ARGS for a plugin that understands the keys in `known`.
 * Returns the known keys' values (last occurrence wins). Unknown keys are an
 * error (CniError 4) unless `IgnoreUnknown` is true.
 */
export function loadCniArgs(args: string, known: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const unknown: string[] = [];
  let ignoreUnknown = false;
  for (const [key, value] of parseCniArgs(args)) {
    if (key === "IgnoreUnknown") {
      const flag = parseArgBool(value);
      if (flag === undefined) {
        throw new CniError(
          ErrorCode.InvalidEnvironmentVariables,
          `CNI_ARGS: IgnoreUnknown must be 1, 0, true or false, got "${value}"`,
        );
      }
      ignoreUnknown = flag;
    } else if (known.includes(key)) {
      out[key] = value;
    } else {
      unknown.push(`${key}=${value}`);
    }
  }
  if (unknown.length && !ignoreUnknown) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `CNI_ARGS: unknown args [${unknown.map((u) => `"${u}"`).join(" ")}]`,
      "set IgnoreUnknown=1 to let the plugin ignore keys it does not know",
    );
  }
  return out;
}
