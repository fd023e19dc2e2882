/**
 * One check of `hydra doctor`: what was looked at, how it went, and the one
 * next step when it is not ok.
 *
 * @module
 */

/** The outcome of one check. */
export interface Check {
  name: string;
  status: "ok" | "warn" | "fail";
  detail: string;
  /** One concrete next step (shown when the status is not ok). */
  hint?: string;
}
