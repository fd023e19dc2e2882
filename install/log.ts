/**
 * Structured log lines for the installer: one JSON object per line on
 * stderr, so a DaemonSet's logs can be filtered by field.
 *
 * @module
 */

/** Severity of a log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Extra fields carried by a log line. */
export type LogFields = Record<string, unknown>;

/** Writes one log line. */
export type Logger = (level: LogLevel, msg: string, fields?: LogFields) => void;

const encoder = new TextEncoder();

/**
 * A logger writing JSON lines (`time`, `level`, `component`, `msg`, then the
 * fields) to stderr, or to `sink` when given (tests).
 */
export function jsonLogger(
  component: string,
  sink: (line: string) => void = (line) => Deno.stderr.writeSync(encoder.encode(line)),
): Logger {
  return (level, msg, fields = {}) => {
    const line = { time: new Date().toISOString(), level, component, msg, ...fields };
    sink(JSON.stringify(line, errorReplacer) + "\n");
  };
}

/** Errors serialise as their message; everything else as is. */
function errorReplacer(_key: string, value: unknown): unknown {
  return value instanceof Error ? value.message : value;
}
