/**
 * Structured logging as JSON lines, to stderr or appended to a file. Never
 * to stdout: a CNI invocation's stdout carries only its result or error.
 *
 * Each line: `{"time":"<RFC 3339>","level":"info","msg":"...", ...fields}`.
 *
 * @module
 */

/** Log levels, least to most severe; "off" logs nothing. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "off";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

/** Extra key/values attached to a line. */
export type LogFields = Record<string, unknown>;

/** A structured logger. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger adding `fields` to every line. */
  with(fields: LogFields): Logger;
}

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Minimum level written; default "warn". */
  level?: LogLevel;
  /** Append to this file instead of stderr. */
  file?: string;
  /**
   * stderr as well as `file` (true), or never stderr (false: with no file
   * nothing is written); unset: stderr only when there is no file.
   */
  stderr?: boolean;
  /** Fields on every line. */
  fields?: LogFields;
  /** Where lines go; default stderr or `file`. For tests. */
  sink?: (line: string) => void;
}

/** True for a level name {@link createLogger} accepts. */
export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === "string" && Object.hasOwn(RANK, value);
}

function fileSink(path: string): (line: string) => void {
  const encoder = new TextEncoder();
  return (line) => {
    try {
      // Append per line: short writes with O_APPEND keep concurrent writers' lines whole.
      Deno.writeFileSync(path, encoder.encode(line), { append: true, create: true, mode: 0o600 });
    } catch {
      stderrSink(line);
    }
  };
}

function stderrSink(line: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(line));
  } catch {
    // Nowhere left to report a logging failure.
  }
}

function defaultSink(options: LoggerOptions): (line: string) => void {
  if (!options.file) return options.stderr === false ? () => {} : stderrSink;
  const toFile = fileSink(options.file);
  if (options.stderr !== true) return toFile;
  return (line) => {
    toFile(line);
    stderrSink(line);
  };
}

function errorText(value: unknown): unknown {
  if (value instanceof Error) return value.message;
  return value;
}

/** Creates a logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = RANK[options.level ?? "warn"];
  const sink = options.sink ?? defaultSink(options);
  const base = options.fields ?? {};
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
    for (const [k, v] of Object.entries({ ...base, ...fields })) entry[k] = errorText(v);
    sink(JSON.stringify(entry) + "\n");
  };
  return {
    debug: (msg, fields) => write("debug", msg, fields),
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    with: (fields) => createLogger({ ...options, sink, fields: { ...base, ...fields } }),
  };
}

/** A logger that writes nothing. */
export const silentLogger: Logger = createLogger({ level: "off" });
