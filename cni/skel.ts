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
import type { Plugin } from "./plugin.ts";
import type { CmdArgs, Command } from "./types.ts";
import { CURRENT_VERSION } from "./types.ts";
import {
  assertVersionSupported,
  isSupportedVersion,
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
  return { stdout: formatJson(cniErr.toJson(errorVersion(stdin))), code: FAILURE_EXIT };
}

/** The cniVersion to tag an error with: the config's when hydra speaks it. */
function errorVersion(stdin: Uint8Array): string {
  try {
    const raw = JSON.parse(new TextDecoder().decode(stdin));
    const v = raw?.cniVersion;
    if (typeof v === "string" && isSupportedVersion(normalizeVersion(v))) {
      return normalizeVersion(v);
    }
  } catch {
    // not JSON: fall through
  }
  return CURRENT_VERSION;
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

/**
 * Runs one invocation of `plugin` on `env` and `stdin`; never throws.
 * stdout holds the result, the VERSION answer, nothing (DEL/CHECK/STATUS/GC)
 * or the error JSON.
 */
export async function dispatch(
  plugin: Plugin,
  env: EnvSource,
  stdin: Uint8Array,
): Promise<InvocationOutput> {
  try {
    const cmd = parseInvocation(env, stdin);
    return { stdout: await call(plugin, cmd), code: 0 };
  } catch (err) {
    return errorOutput(err, stdin);
  }
}

/**
 * Runs `plugin` in this process exactly as an exec with `env` and `stdin`
 * would run it, without reading or changing the process's env or stdout.
 */
export function invokeInProcess(
  plugin: Plugin,
  env: Readonly<Record<string, string>>,
  stdin: Uint8Array,
): Promise<InvocationOutput> {
  return dispatch(plugin, env, stdin);
}

/**
 * Reads stdin to its end with plain synchronous reads: a plugin process
 * lives for milliseconds, and setting up the streams machinery
 * (`Response(Deno.stdin.readable)`) costs several of them.
 */
function readStdin(): Uint8Array {
  if (Deno.stdin.isTerminal()) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = Deno.stdin.readSync(buf);
    if (n === null || n === 0) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

function writeStdout(text: string): void {
  let data = new TextEncoder().encode(text);
  while (data.length) {
    const n = Deno.stdout.writeSync(data);
    data = data.subarray(n);
  }
}

/**
 * The main of a plugin process: reads the process's env and stdin, runs
 * `plugin`, prints the outcome on stdout and returns the exit status.
 */
export async function runSkel(plugin: Plugin): Promise<number> {
  const command = Deno.env.get("CNI_COMMAND");
  if (!command) {
    const { VERSION } = await import("../cmd/version.ts");
    console.error(
      `CNI plugin ${plugin.kind} (hydra ${VERSION})\n` +
        `CNI protocol versions supported: ${plugin.supportedVersions.join(", ")}`,
    );
    return 0;
  }
  const stdin = readStdin();
  const out = await dispatch(plugin, (name) => Deno.env.get(name), stdin);
  writeStdout(out.stdout);
  return out.code;
}
