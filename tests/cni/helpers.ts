/**
 * Small helpers shared by the CNI core's tests.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CniError } from "../../cni/errors.ts";

/** Runs `fn`, asserting it throws a CniError; returns that error. */
export function catchCni(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CniError, `expected a CniError, got ${err}`);
    return err;
  }
  assert.fail("expected a CniError, nothing was thrown");
}

/** Awaits `fn`, asserting it rejects with a CniError; returns that error. */
export async function rejectsCni(fn: () => Promise<unknown>): Promise<CniError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof CniError, `expected a CniError, got ${err}`);
    return err;
  }
  assert.fail("expected a CniError, nothing was thrown");
}

/** The repository root, found from this file's location. */
export const REPO_ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Writes an executable shell script. */
export async function writeScript(path: string, body: string): Promise<void> {
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
}
