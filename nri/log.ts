/**
 * Logging seam of the NRI stub: a plain function, so the protocol layers
 * stay free of any logger type. Lines are written by hydra's structured
 * logger (`pkg/log.ts`); {@link nriLogger} routes the seam into one.
 *
 * @module
 */

import { createLogger, type Logger as StructuredLogger } from "../pkg/log.ts";

/** Severity of a log record. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Receives one log record. */
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** The seam writing into a structured logger. */
export function nriLogger(logger: StructuredLogger): Logger {
  return (level, msg, fields) => logger[level](msg, fields);
}

/** A logger writing one JSON object per line to stderr, from `minLevel` up. */
export function jsonStderrLogger(minLevel: LogLevel = "info"): Logger {
  return nriLogger(createLogger({ level: minLevel, fields: { component: "nri" } }));
}

/** A logger that drops everything. */
export const silentLogger: Logger = () => {};
