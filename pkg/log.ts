/**
 * Structured logging, to stderr or appended to a file. Never to stdout: a
 * CNI invocation's stdout carries only its result or error.
 *
 * Two line formats: `json` (the default, for log collectors), each line
 * `{"time":"<RFC 3339>","level":"info","msg":"...", ...fields}`; and `text`,
 * for people reading a terminal, `<RFC 3339> INFO  msg key=value ...`
 * (values with spaces, quotes or `=` JSON-quoted).
 *
 * @module
 */

/** Log levels, least to most severe; "off" logs nothing. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "off";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

/** Line formats. */
export type LogFormat = "json" | "text";

/** True for a format name {@link createLogger} accepts. */
export function isLogFormat(value: unknown): value is LogFormat {
  return value === "json" || value === "text";
}

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
  /** Line format; default "json". */
  format?: LogFormat;
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

/** A value of the text format: bare when unambiguous, else JSON. */
function textValue(value: unknown): string {
  if (typeof value === "string") {
    return value !== "" && /^[^\s"=\\]+$/.test(value) ? value : JSON.stringify(value);
  }
  if (value === undefined) return "undefined";
  return JSON.stringify(value) ?? String(value);
}

/** One line of the text format, without its newline. */
function textLine(time: string, level: LogLevel, msg: string, fields: [string, unknown][]): string {
  // Newlines in the message would split one record over lines; keep them escaped.
  const text = msg.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
  const pairs = fields.map(([k, v]) => `${k}=${textValue(v)}`);
  return [time, level.toUpperCase().padEnd(5), text, ...pairs].join(" ");
}

/** Creates a logger. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = RANK[options.level ?? "warn"];
  const sink = options.sink ?? defaultSink(options);
  const base = options.fields ?? {};
  const text = options.format === "text";
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const time = new Date().toISOString();
    const extra = Object.entries({ ...base, ...fields }).map(([k, v]): [string, unknown] => [
      k,
      errorText(v),
    ]);
    if (text) return sink(textLine(time, level, msg, extra) + "\n");
    const entry: Record<string, unknown> = { time, level, msg };
    for (const [k, v] of extra) entry[k] = v;
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
