/**
 * Logging seam of the NRI stub: a plain function the daemon can route into
 * its own logger. The default writes JSON lines to stderr.
 *
 * @module
 */

/** Severity of a log record. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Receives one log record. */
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** A logger writing one JSON object per line to stderr, from `minLevel` up. */
export function jsonStderrLogger(minLevel: LogLevel = "info"): Logger {
  const encoder = new TextEncoder();
  return (level, msg, fields) => {
    if (rank[level] < rank[minLevel]) return;
    const record = { time: new Date().toISOString(), level, component: "nri", msg, ...fields };
    const line = encoder.encode(JSON.stringify(record) + "\n");
    for (let at = 0; at < line.length;) at += Deno.stderr.writeSync(line.subarray(at));
  };
}

/** A logger that drops everything. */
export const silentLogger: Logger = () => {};
