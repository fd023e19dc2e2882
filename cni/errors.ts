/**
 * CNI error codes and the error type every hydra role throws for a failure
 * that must reach the runtime as a CNI error JSON.
 *
 * @module
 */

/** Error codes defined by the CNI spec (0-99 reserved) plus libcni's extras. */
export const ErrorCode = {
  /** libcni: unknown error. */
  Unknown: 0,
  IncompatibleCniVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironmentVariables: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  /** libcni: CNI_NETNS names the plugin's own network namespace. */
  InvalidNetNs: 8,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  PluginNotAvailableLimitedConnectivity: 51,
  /** libcni: internal error with no more specific code. */
  Internal: 999,
} as const;

/** A CNI error code: one of {@link ErrorCode} or a plugin-specific code >= 100. */
export type ErrorCodeValue = number;

/** The JSON shape of a CNI error as printed on stdout. */
export interface ErrorJson {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

/** A failure carrying a CNI error code; printed as the spec's error JSON. */
export class CniError extends Error {
  readonly code: ErrorCodeValue;
  readonly details?: string;

  constructor(code: ErrorCodeValue, msg: string, details?: string) {
    super(msg);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }

  /** The error as the spec's JSON object, tagged with `cniVersion`. */
  toJson(cniVersion?: string): ErrorJson {
    // cniVersion first: the order the spec's examples print.
    const out: ErrorJson = cniVersion
      ? { cniVersion, code: this.code, msg: this.message }
      : { code: this.code, msg: this.message };
    if (this.details) out.details = this.details;
    return out;
  }
}

/** Wraps any thrown value as a CniError, keeping an existing code. */
export function asCniError(err: unknown, fallbackCode: number = ErrorCode.Internal): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof Error) return new CniError(fallbackCode, err.message);
  return new CniError(fallbackCode, String(err));
}

/**
 * The failure of an invocation cancelled because whoever asked for it gave
 * up (see CmdArgs.signal): code 11, the runtime may try again.
 */
export function cancelledError(signal: AbortSignal): CniError {
  const reason = signal.reason;
  const why = reason instanceof Error ? reason.message : String(reason ?? "aborted");
  return new CniError(ErrorCode.TryAgainLater, `cancelled: ${why}`);
}

/** Throws {@link cancelledError} when `signal` is aborted; does nothing without one. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancelledError(signal);
}

/**
 * Starts `work` unless `signal` is already aborted, and waits for it or
 * gives up with {@link cancelledError} when `signal` aborts first. Work that
 * is given up keeps running, its rejection ignored: a flock granted after
 * that goes with the file its caller closes.
 */
export async function untilCancelled<T>(
  work: () => Promise<T>,
  signal: AbortSignal | undefined,
): Promise<T> {
  if (!signal) return await work();
  throwIfCancelled(signal);
  const running = work();
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(cancelledError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([running, aborted]);
  } catch (err) {
    running.catch(() => {});
    throw err;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
