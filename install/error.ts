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
