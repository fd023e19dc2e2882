/**
 * Reading a CNI invocation: the CNI_* environment and the stdin config,
 * validated into {@link CmdArgs} with the spec's error codes.
 *
 * The rules are libcni's skel:
 * - required variables: CNI_COMMAND always; CNI_CONTAINERID, CNI_IFNAME for
 *   ADD/CHECK/DEL; CNI_NETNS for ADD/CHECK; CNI_PATH for every command but
 *   VERSION. An unset or empty required variable is "missing": code 4 with
 *   every missing name listed. So an empty CNI_CONTAINERID is code 4 here,
 *   as in the skel; code 3 (unknown container) is left to plugins that look a
 *   container up and do not find it.
 * - CNI_CONTAINERID must match `^[a-zA-Z0-9][a-zA-Z0-9_.-]*$` (4).
 * - CNI_IFNAME: 1-15 bytes, not "." or "..", no "/", ":" or whitespace (4).
 * - stdin not JSON: 6; `name` missing or not a valid network name: 7; a
 *   known field of the wrong JSON type: 6 (a decoding failure, as libcni's
 *   decoder reports it); `type` containing a path separator: 7.
 *
 * hydra adds checks the skel leaves to plugins: for ADD and CHECK, CNI_NETNS
 * must be an absolute path that exists (4); CNI_NETNS naming the plugin's
 * own network namespace is code 8 unless CNI_NETNS_OVERRIDE is 1/true.
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";
import type { CmdArgs, Command, NetConf } from "./types.ts";

/** Where CNI_* variables come from: a map or a lookup function. */
export type EnvSource =
  | Readonly<Record<string, string | undefined>>
  | ((name: string) => string | undefined);

/** The validated CNI_* environment of one invocation. */
export interface CniEnv {
  command: Command;
  containerId: string;
  netns: string;
  ifName: string;
  args: string;
  path: string[];
  /** CNI_NETNS_OVERRIDE: skip the "own network namespace" check. */
  netnsOverride: boolean;
}

/** Every CNI_COMMAND value the spec defines. */
export const COMMANDS: readonly Command[] = ["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC"];

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
const MAX_IFNAME_BYTES = 15;

type Required = Partial<Record<Command, true>>;

const VARS: { name: string; requiredFor: Required }[] = [
  { name: "CNI_COMMAND", requiredFor: {} },
  { name: "CNI_CONTAINERID", requiredFor: { ADD: true, CHECK: true, DEL: true } },
  { name: "CNI_NETNS", requiredFor: { ADD: true, CHECK: true } },
  { name: "CNI_IFNAME", requiredFor: { ADD: true, CHECK: true, DEL: true } },
  { name: "CNI_ARGS", requiredFor: {} },
  { name: "CNI_PATH", requiredFor: { ADD: true, CHECK: true, DEL: true, GC: true, STATUS: true } },
];

function lookup(env: EnvSource, name: string): string {
  const v = typeof env === "function" ? env(name) : env[name];
  return v ?? "";
}

/** True for a CNI_COMMAND value the spec defines. */
export function isCommand(value: string): value is Command {
  return (COMMANDS as readonly string[]).includes(value);
}

/** Validates a container ID (libcni's rule). Throws CniError 3 when empty, 4 when malformed. */
export function validateContainerId(id: string): void {
  if (id === "") throw new CniError(ErrorCode.UnknownContainer, "missing containerID");
  if (!NAME_RE.test(id)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `CNI_CONTAINERID: invalid characters in containerID "${id}"`,
      "a container ID starts with a letter or digit, followed by letters, digits, '_', '.' or '-'",
    );
  }
}

/**
 * Validates an interface name as the kernel and libcni do. `field` names the
 * source in the message. Throws CniError `code` (default 4).
 */
export function validateInterfaceName(
  name: string,
  field = "CNI_IFNAME",
  code: number = ErrorCode.InvalidEnvironmentVariables,
): void {
  const fail = (why: string) => new CniError(code, `${field}: interface name "${name}" ${why}`);
  if (name === "") throw new CniError(code, `${field}: interface name is empty`);
  if (new TextEncoder().encode(name).length > MAX_IFNAME_BYTES) {
    throw fail(`is too long: at most ${MAX_IFNAME_BYTES} bytes`);
  }
  if (name === "." || name === "..") throw fail(`is not allowed`);
  if (/[\/:\s]/u.test(name)) throw fail(`contains "/", ":" or whitespace`);
}

/** Validates a network name. Throws CniError 7. */
export function validateNetworkName(name: string, field = "name"): void {
  if (name === "") {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `missing network name ("${field}")`);
  }
  if (!NAME_RE.test(name)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `invalid characters found in network name "${name}" ("${field}")`,
      "a network name starts with a letter or digit, followed by letters, digits, '_', '.' or '-'",
    );
  }
}

/** Validates a plugin `type`: non-empty, no path separator. Throws CniError 7. */
export function validatePluginType(type: string, field = "type"): void {
  if (type === "") throw new CniError(ErrorCode.InvalidNetworkConfig, `"${field}" is empty`);
  if (/[\/\\]/.test(type)) {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `"${field}": invalid plugin type "${type}": must not contain a path separator`,
    );
  }
}

/** Splits CNI_PATH on ":" dropping empty entries. */
export function splitPath(path: string): string[] {
  return path.split(":").filter((p) => p !== "");
}

function sameFile(a: string, b: string): boolean {
  try {
    const sa = Deno.statSync(a);
    const sb = Deno.statSync(b);
    return sa.dev === sb.dev && sa.ino !== null && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

function checkNetns(command: Command, netns: string, override: boolean): void {
  if (command !== "ADD" && command !== "CHECK") {
    if (netns !== "" && !override && sameFile(netns, "/proc/self/ns/net")) {
      throw new CniError(
        ErrorCode.InvalidNetNs,
        "plugin's netns and netns from CNI_NETNS should not be the same",
      );
    }
    return;
  }
  if (!netns.startsWith("/")) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `CNI_NETNS: "${netns}" is not an absolute path`,
    );
  }
  try {
    Deno.statSync(netns);
  } catch (err) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `CNI_NETNS: network namespace "${netns}" cannot be opened: ${(err as Error).message}`,
    );
  }
  if (!override && sameFile(netns, "/proc/self/ns/net")) {
    throw new CniError(
      ErrorCode.InvalidNetNs,
      "plugin's netns and netns from CNI_NETNS should not be the same",
    );
  }
}

/**
 * Reads and validates the CNI_* variables. Throws CniError 4 for missing or
 * invalid variables and an unknown command, 8 for a netns that is the
 * plugin's own.
 */
export function readCniEnv(env: EnvSource): CniEnv {
  const command = lookup(env, "CNI_COMMAND");
  const missing: string[] = [];
  for (const v of VARS) {
    const value = lookup(env, v.name);
    const required = v.name === "CNI_COMMAND" || (isCommand(command) && v.requiredFor[command]);
    if (value === "" && required) missing.push(v.name);
  }
  if (missing.length) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `required env variables [${missing.join(",")}] missing`,
    );
  }
  if (!isCommand(command)) {
    throw new CniError(
      ErrorCode.InvalidEnvironmentVariables,
      `unknown CNI_COMMAND: ${command}`,
      `CNI_COMMAND must be one of ${COMMANDS.join(", ")}`,
    );
  }
  const containerId = lookup(env, "CNI_CONTAINERID");
  const ifName = lookup(env, "CNI_IFNAME");
  const netns = lookup(env, "CNI_NETNS");
  const attachment = command === "ADD" || command === "CHECK" || command === "DEL";
  if (attachment) {
    validateContainerId(containerId);
    validateInterfaceName(ifName);
  }
  const overrideValue = lookup(env, "CNI_NETNS_OVERRIDE").toLowerCase();
  const netnsOverride = overrideValue === "1" || overrideValue === "true";
  if (command !== "VERSION") checkNetns(command, netns, netnsOverride);
  return {
    command,
    containerId,
    netns,
    ifName,
    args: lookup(env, "CNI_ARGS"),
    path: splitPath(lookup(env, "CNI_PATH")),
    netnsOverride,
  };
}

function decodeFailure(msg: string): CniError {
  return new CniError(ErrorCode.DecodingFailure, msg);
}

/**
 * Decodes a stdin config and checks what every plugin needs: a JSON object,
 * a valid `name`, a string `cniVersion`, a `type` without path separators.
 */
export function parseStdinConfig(stdin: Uint8Array): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(stdin));
  } catch (err) {
    throw decodeFailure(`error parsing network config from stdin: ${(err as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw decodeFailure("error parsing network config from stdin: not a JSON object");
  }
  const conf = raw as Record<string, unknown>;
  for (const key of ["name", "cniVersion", "type"]) {
    const v = conf[key];
    if (v !== undefined && v !== null && typeof v !== "string") {
      throw decodeFailure(`network config: "${key}" must be a string, got ${typeof v}`);
    }
  }
  validateNetworkName((conf.name as string | undefined) ?? "");
  if (typeof conf.type === "string") validatePluginType(conf.type);
  return conf as NetConf;
}

/**
 * Reads a whole invocation: env then stdin, as the skel does. For VERSION
 * the stdin config is decoded leniently (only its cniVersion matters).
 */
export function parseInvocation(env: EnvSource, stdin: Uint8Array): CmdArgs {
  const e = readCniEnv(env);
  let config: NetConf;
  if (e.command === "VERSION") {
    config = { type: "" };
    try {
      const raw = JSON.parse(new TextDecoder().decode(stdin));
      if (raw && typeof raw === "object" && typeof raw.cniVersion === "string") {
        config.cniVersion = raw.cniVersion;
      }
    } catch {
      // VERSION ignores a config it cannot read, as libcni's skel does.
    }
  } else {
    config = parseStdinConfig(stdin);
  }
  return {
    command: e.command,
    containerId: e.containerId,
    netns: e.netns,
    ifName: e.ifName,
    args: e.args,
    path: e.path,
    stdinData: stdin,
    config,
    ...(e.netnsOverride ? { netnsOverride: true } : {}),
  };
}
