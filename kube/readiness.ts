/**
 * The readiness indicator file (`readinessindicatorfile` in a Multus conf):
 * a file the default network's agent writes once it can serve pods. ADD,
 * STATUS and GC wait for it (Multus polls every second for up to 45 s);
 * without it the meta-CNI fails with "try again later" rather than attach
 * pods to a network that is not there yet.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { delay } from "../pkg/async.ts";

/** True when the file exists now. */
export async function readinessIndicatorExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new CniError(ErrorCode.IoFailure, `readiness indicator ${path}: ${err}`);
  }
}

/**
 * Waits until the readiness indicator file exists, checking every `pollMs`
 * (1 s) for at most `timeoutMs` (45 s); then throws CNI code 11.
 */
export async function waitForReadinessIndicator(
  path: string,
  opts: { timeoutMs?: number; pollMs?: number } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 45_000;
  const pollMs = opts.pollMs ?? 1_000;
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await readinessIndicatorExists(path)) return;
    const left = end - Date.now();
    if (left <= 0) {
      throw new CniError(
        ErrorCode.TryAgainLater,
        `the default network is not ready: readiness indicator ${path} did not appear within ${timeoutMs} ms`,
      );
    }
    await delay(Math.min(pollMs, left));
  }
}
