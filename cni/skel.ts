/**
 * The skel: turns one CNI invocation (CNI_* env + stdin) into a call of a
 * {@link Plugin}'s add/del/check/status/gc, and the outcome into what the
 * runtime reads: the result (in the config's cniVersion) or the error JSON
 * on stdout, and an exit status.
 *
 * {@link runSkel} serves a real process; {@link invokeInProcess} runs the
 * very same path on a given env and stdin without touching the process's
 * env or stdout, so the meta-CNI calls built-in plugins in-process and gets
 * exactly what an exec would have printed.
 *
 * Version rules (libcni's skel): the config's cniVersion ("" = 0.1.0) must be
 * one the plugin lists; CHECK needs >= 0.4.0, STATUS and GC >= 1.1.0, else
 * code 1. A plugin without `status`/`gc` succeeds on them. Failure exits 1.
 *
 * @module
 */

import { asCniError, CniError, ErrorCode } from "./errors.ts";
import { convertResult } from "./convert.ts";
import { type EnvSource, parseInvocation } from "./env.ts";
import { readStdin, writeStdout } from "./stdio.ts";
import type { Builtins, CmdArgs, Command, Plugin } from "./types.ts";
import { CURRENT_VERSION } from "./types.ts";
import {
  assertVersionSupported,
  errorVersion,
  normalizeVersion,
  parseVersion,
  versionAnswer,
  versionAtLeast,
} from "./version.ts";

/** What one invocation printed on stdout and the exit status it ended with. */
export interface InvocationOutput {
  stdout: string;
  code: number;
}

/** Exit status of a failed invocation (libcni's skel exits 1). */
export const FAILURE_EXIT = 1;

const MIN_VERSION: Partial<Record<Command, string>> = {
  CHECK: "0.4.0",
  STATUS: "1.1.0",
  GC: "1.1.0",
};

function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 4) + "\n";
}

function errorOutput(err: unknown, stdin: Uint8Array): InvocationOutput {
  const cniErr = asCniError(err, ErrorCode.Internal);
  return { stdout: formatJson(cniErr.toJson(errorVersionOf(stdin))), code: FAILURE_EXIT };
}

/** The cniVersion to tag an error with: the config's when hydra speaks it. */
function errorVersionOf(stdin: Uint8Array): string {
  try {
    return errorVersion(JSON.parse(new TextDecoder().decode(stdin)));
  } catch {
    // not JSON
    return CURRENT_VERSION;
  }
}

/** Checks the command's minimum version and the plugin's support (code 1). */
function checkVersion(cmd: CmdArgs, plugin: Plugin): string {
  const version = normalizeVersion(cmd.config.cniVersion);
  const min = MIN_VERSION[cmd.command];
  if (min) {
    parseVersion(version);
    if (!versionAtLeast(version, min)) {
      throw new CniError(
        ErrorCode.IncompatibleCniVersion,
        `config version does not allow ${cmd.command}`,
        `config is "${version}", ${cmd.command} needs ${min} or newer`,
      );
    }
  }
  assertVersionSupported(version, plugin.supportedVersions);
  return version;
}

async function call(plugin: Plugin, cmd: CmdArgs): Promise<string> {
  if (cmd.command === "VERSION") {
    return formatJson(versionAnswer(cmd.config.cniVersion, plugin.supportedVersions));
  }
  const version = checkVersion(cmd, plugin);
  switch (cmd.command) {
    case "ADD": {
      const result = await plugin.add(cmd);
      return formatJson(convertResult(result, version));
    }
    case "DEL":
      await plugin.del(cmd);
      return "";
    case "CHECK":
      await plugin.check(cmd);
      return "";
    case "STATUS":
      if (plugin.status) await plugin.status(cmd);
      return "";
    case "GC":
      if (plugin.gc) await plugin.gc(cmd);
      return "";
  }
}

/** What an invocation's arguments carry beyond env and stdin (see CmdArgs). */
export interface DispatchExtras {
  /** Aborted when the caller gave up; becomes the arguments' `signal`. */
  signal?: AbortSignal;
  /** Where unused config keys are reported; becomes the arguments' `warn`. */
  warn?: (message: string) => void;
}

/**
 * Runs one invocation of `plugin` on `env` and `stdin`; never throws.
 * stdout holds the result, the VERSION answer, nothing (DEL/CHECK/STATUS/GC)
 * or the error JSON. `builtins` reach the plugin in its arguments, for the
 * plugins it invokes in turn.
 */
export async function dispatch(
  plugin: Plugin,
  env: EnvSource,
  stdin: Uint8Array,
  builtins?: Builtins,
  extras: DispatchExtras = {},
): Promise<InvocationOutput> {
  try {
    const cmd = parseInvocation(env, stdin);
    if (builtins) cmd.builtins = builtins;
    if (extras.signal) cmd.signal = extras.signal;
    if (extras.warn) cmd.warn = extras.warn;
    return { stdout: await call(plugin, cmd), code: 0 };
  } catch (err) {
    return errorOutput(err, stdin);
  }
}

/**
 * Runs `plugin` in this process exactly as an exec with `env` and `stdin`
 * would run it, without reading or changing the process's env or stdout.
 * `signal` reaches the plugin as its arguments' `signal` (see CmdArgs).
 */
export function invokeInProcess(
  plugin: Plugin,
  env: Readonly<Record<string, string>>,
  stdin: Uint8Array,
  builtins?: Builtins,
  signal?: AbortSignal,
): Promise<InvocationOutput> {
  return dispatch(plugin, env, stdin, builtins, { signal });
}

/**
 * The main of a plugin process: reads the process's env and stdin, runs
 * `plugin`, prints the outcome on stdout and returns the exit status.
 *
 * @param stdin the config when the caller has already read stdin
 * @param builtins what the process runs in-process (see {@link dispatch})
 */
export async function runSkel(
  plugin: Plugin,
  stdin?: Uint8Array,
  builtins?: Builtins,
): Promise<number> {
  const command = Deno.env.get("CNI_COMMAND");
  if (!command) {
    const { VERSION } = await import("../pkg/version.ts");
    console.error(
      `CNI plugin ${plugin.kind} (hydra ${VERSION})\n` +
        `CNI protocol versions supported: ${plugin.supportedVersions.join(", ")}`,
    );
    return 0;
  }
  const config = stdin ?? readStdin();
  const warn = (msg: string) => {
    const line = { time: new Date().toISOString(), level: "warn", msg, plugin: plugin.kind };
    console.error(JSON.stringify(line));
  };
  const out = await dispatch(plugin, (name) => Deno.env.get(name), config, builtins, { warn });
  writeStdout(out.stdout);
  return out.code;
}
