/**
 * Reading the plugin-specific fields of a built-in plugin's config, with the
 * error codes hydra uses everywhere: a field of the wrong JSON type is a
 * decoding failure (6), a value that cannot be used is an invalid config (7).
 *
 * Absent, `null` and (for strings) `""` all mean "not set", as the zero
 * values do for the reference plugins' Go structs.
 *
 * @module
 */

import { loadCniArgs } from "../cni/args.ts";
import { toInternal } from "../cni/convert.ts";
import { parseResult } from "../cni/convert.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { type FieldProblem, type Fields, fields, isJsonObject } from "../pkg/fields.ts";
import { enforceShape, type Shape } from "../pkg/schema.ts";
import type { CmdArgs, Command, NetConf, Result } from "../cni/types.ts";

/** A JSON object. */
export type Json = Record<string, unknown>;

/** A CniError 7 (invalid network config). */
export function invalidConfig(msg: string, details?: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
}

/** The error of a config field of the wrong type: a decoding failure naming the field. */
function wrongType(p: FieldProblem): CniError {
  return new CniError(
    ErrorCode.DecodingFailure,
    `config field "${p.path}" must be ${p.expected}, got ${p.got}`,
  );
}

/** A plugin config's fields: a wrong type is a decoding failure naming the field. */
export function confFields(conf: Json): Fields {
  return fields(conf, { emptyStringUnset: true, fail: wrongType });
}

/**
 * Checks the invocation's config against the plugin's shape before it is
 * read: a key of the wrong type anywhere in it is the decoding failure
 * {@link confFields} gives, an unknown or unsupported key goes to the
 * invocation's warnings. On DEL types are left to the reads DEL makes: a
 * DEL must be able to undo an attachment whose config has since changed.
 */
export function enforcePluginShape(args: CmdArgs, shape: Shape): void {
  enforceShape(args.config, shape, {
    fail: wrongType,
    types: args.command !== "DEL",
    warn: (p) => args.warn?.(p.message),
  });
}

/** True for a non-null, non-array object. */
export const isObject: (v: unknown) => v is Json = isJsonObject;

/** A boolean field; undefined when absent. */
export function optBool(conf: Json, key: string): boolean | undefined {
  return confFields(conf).boolean(key);
}

/** A string field; undefined when absent or empty. */
export function optString(conf: Json, key: string): string | undefined {
  return confFields(conf).string(key);
}

/** An integer field; undefined when absent. */
export function optInt(conf: Json, key: string): number | undefined {
  return confFields(conf).integer(key);
}

/** An object field; undefined when absent. */
export function optObject(conf: Json, key: string): Json | undefined {
  return confFields(conf).object(key);
}

/** An array field; undefined when absent. */
export function optArray(conf: Json, key: string): unknown[] | undefined {
  return confFields(conf).list(key);
}

/** The `runtimeConfig` object (capability arguments), {} when absent. */
export function runtimeConfig(conf: NetConf): Json {
  return optObject(conf, "runtimeConfig") ?? {};
}

/** The `args.cni` object, {} when absent. */
export function argsCni(conf: NetConf): Json {
  const args = optObject(conf, "args");
  return (args && optObject(args, "cni")) ?? {};
}

/**
 * The `MAC` key of CNI_ARGS. As with the reference plugins, any other key is
 * an error unless CNI_ARGS sets IgnoreUnknown.
 */
export function cniArgsMac(args: CmdArgs): string | undefined {
  if (args.args === "") return undefined;
  const v = loadCniArgs(args.args, ["MAC"]).MAC;
  return v === undefined || v === "" ? undefined : v;
}

/**
 * The IPAM plugin type of a config, undefined when the config has no IPAM.
 * An `ipam` block that says anything but names no `type` is CniError 7
 * (it would silently give the interface no address), except on DEL, which
 * must not fail on what ADD refused.
 */
export function ipamType(conf: NetConf, command?: Command): string | undefined {
  const ipam = optObject(conf, "ipam");
  const type = ipam ? optString(ipam, "type") : undefined;
  if (ipam && type === undefined && command !== "DEL" && Object.keys(ipam).length > 0) {
    throw invalidConfig(
      `"ipam" has no "type": name the IPAM plugin (e.g. "hydra-ipam"), or remove the block ` +
        `for an interface without addresses`,
    );
  }
  return type;
}

/** The config's cniVersion ("" means 0.1.0). */
export function configVersion(conf: NetConf): string {
  return typeof conf.cniVersion === "string" ? conf.cniVersion : "";
}

/**
 * The `prevResult` in hydra's internal (1.1.0) shape, parsed at the config's
 * version; undefined when there is none.
 */
export function prevResultOf(conf: NetConf): Result | undefined {
  const raw = conf.prevResult;
  if (raw === undefined || raw === null) return undefined;
  return toInternal(parseResult(raw, configVersion(conf)));
}

/** The `prevResult`, or CniError 7 "Required prevResult missing". */
export function requirePrevResult(conf: NetConf): Result {
  const prev = prevResultOf(conf);
  if (!prev) throw invalidConfig("Required prevResult missing");
  return prev;
}

/** The config's `dns` when it sets anything, else undefined. */
export function configDns(conf: NetConf): Result["dns"] {
  const dns = optObject(conf, "dns");
  if (!dns) return undefined;
  const out: NonNullable<Result["dns"]> = {};
  for (const key of ["nameservers", "search", "options"] as const) {
    const v = optArray(dns, key);
    if (v) out[key] = v.map(String);
  }
  const domain = optString(dns, "domain");
  if (domain) out.domain = domain;
  return Object.keys(out).length ? out : undefined;
}

/**
 * Turns a synchronous verb into the promise-returning one the Plugin
 * interface asks for; a throw becomes a rejection.
 */
export function syncVerb<T>(fn: (args: CmdArgs) => T): (args: CmdArgs) => Promise<T> {
  return (args) => {
    try {
      return Promise.resolve(fn(args));
    } catch (err) {
      return Promise.reject(err);
    }
  };
}
