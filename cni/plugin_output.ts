/**
 * Reading what a plugin printed, the one way hydra does it: libcni's
 * `pluginErr` for a failure, a JSON document for a success. Every place
 * that gets a plugin's output second hand uses it: the invocation layer
 * after an exec or an in-process run, the exec'd side of `daemonExec`
 * when the node daemon answers with what its run printed, and the
 * meta-CNI when it hands an invocation to the daemon.
 *
 * A failure (exit status other than 0) is read as follows:
 *
 * | stdout                                  | error                                                            |
 * | --------------------------------------- | ---------------------------------------------------------------- |
 * | empty, stderr empty                     | 999 "netplugin failed with no error message: exit status N"      |
 * | empty, stderr not                       | 999 "netplugin failed: "<stderr>": exit status N"                |
 * | a JSON object with a string `msg`       | its `code` (999 unless a non-negative integer), `msg`, `details` |
 * | anything else                           | 999 "netplugin failed but error parsing its diagnostic message …" |
 *
 * Loads nothing but the error type: the exec'd side of `daemonExec` uses it
 * before anything of the plugin path is loaded.
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";

/** What a plugin printed and how it exited. */
export interface PluginOutput {
  stdout: Uint8Array | string;
  stderr?: Uint8Array | string;
  code: number;
}

const decoder = new TextDecoder();

function text(bytes: Uint8Array | string | undefined): string {
  if (bytes === undefined) return "";
  return typeof bytes === "string" ? bytes : decoder.decode(bytes);
}

/** The error a failed plugin reported (libcni's `pluginErr`), its code kept. */
export function pluginError(out: PluginOutput): CniError {
  const stdout = text(out.stdout).trim();
  if (stdout === "") {
    const stderr = text(out.stderr).trim();
    return new CniError(
      ErrorCode.Internal,
      stderr
        ? `netplugin failed: ${JSON.stringify(stderr)}: exit status ${out.code}`
        : `netplugin failed with no error message: exit status ${out.code}`,
    );
  }
  try {
    const e = JSON.parse(stdout);
    if (typeof e === "object" && e !== null && typeof e.msg === "string") {
      const code = Number.isInteger(e.code) && e.code >= 0 ? e.code : ErrorCode.Internal;
      const details = typeof e.details === "string" && e.details ? e.details : undefined;
      return new CniError(code, e.msg, details);
    }
  } catch {
    // fall through
  }
  return new CniError(
    ErrorCode.Internal,
    `netplugin failed but error parsing its diagnostic message ${JSON.stringify(stdout)}`,
  );
}

/**
 * The JSON document a plugin printed on success (an ADD result, a VERSION
 * answer). Throws the plugin's error when it failed, and CniError 6
 * (naming `what`) when what it printed is not a JSON object.
 */
export function outputDocument(out: PluginOutput, what: string): Record<string, unknown> {
  if (out.code !== 0) throw pluginError(out);
  let doc: unknown;
  try {
    doc = JSON.parse(text(out.stdout));
  } catch (err) {
    throw new CniError(
      ErrorCode.DecodingFailure,
      `${what} printed a result that is not JSON: ${(err as Error).message}`,
    );
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new CniError(ErrorCode.DecodingFailure, `${what} printed a result that is not an object`);
  }
  return doc as Record<string, unknown>;
}
