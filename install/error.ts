/**
 * The installer's user-facing failure: a message that says what is wrong
 * and which path or flag to look at. Anything else escaping the installer
 * is a bug.
 *
 * @module
 */

/** A failure the user can fix; `message` is shown as is. */
export class InstallError extends Error {
  /** Extra context logged beside the message. */
  readonly details: Record<string, unknown>;

  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = "InstallError";
    this.details = details;
  }
}

/** An error's message, whatever was thrown. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * hydra's conf would be wrong (a bad --meta-json key, a meta-plugin hydra
 * cannot unwrap): nothing is written, and the installer keeps running, not
 * ready, with this message on its health endpoint, so a rollout stops at
 * the first node instead of breaking pod networking on every node.
 */
export class ConfRefused extends InstallError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(message, details);
    this.name = "ConfRefused";
  }
}
