/**
 * The flags every long-running role shares, read one way: where health and
 * metrics are served (`--health-addr`, older spelling `--listen`) and how
 * it logs (`--log-level`, `--log-format`, `--log-file`), with one default
 * port per role so that every role of a node can run on the host network
 * side by side. docs/operations.md lists the same table.
 *
 * @module
 */

import { type FlagSpecs, type FlagValues, parseFlags } from "./flags.ts";
import { type ListenAddress, parseListenAddress } from "./http.ts";
import { isLogFormat, isLogLevel, type LogFormat, type LogLevel } from "./log.ts";

/** The roles that serve `/healthz`, `/readyz` and `/metrics`. */
export type Role =
  | "nri"
  | "install"
  | "route"
  | "daemon"
  | "policy"
  | "ipam-controller"
  | "dra"
  | "hybrid-sync"
  | "hybrid-controller";

/** Each role's port, its default on loopback and the one its manifest uses. */
export const ROLE_PORTS: Readonly<Record<Role, number>> = {
  nri: 9470,
  install: 9471,
  route: 9472,
  daemon: 9473,
  policy: 9474,
  "ipam-controller": 9475,
  dra: 9476,
  "hybrid-sync": 9477,
  "hybrid-controller": 9478,
};

/** The default health address of a role: its port on loopback. */
export function defaultHealthAddr(role: Role): string {
  return `127.0.0.1:${ROLE_PORTS[role]}`;
}

/** The operation flags as flag specs (pkg/flags.ts). */
export const OPERATION_FLAGS = {
  "health-addr": { type: "string" },
  listen: { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  "log-file": { type: "string" },
} as const;

/** The operation flags, read. */
export interface OperationOptions {
  /** Undefined: no endpoint ("off" or ""). */
  healthAddr?: ListenAddress;
  logLevel: LogLevel;
  logFormat: LogFormat;
  logFile?: string;
}

/** A bad operation flag; each role reports it as its usage error. */
export class OperationFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "OperationFlagError";
  }
}

/** Log level spellings other tools use, read with hydra's meaning. */
const LEVEL_ALIASES: Record<string, LogLevel> = { verbose: "debug", warning: "warn" };

/**
 * Reads the operation flags out of parsed `values`. `defaultAddr` is
 * the role's address when no flag names one ("off" for none).
 */
export function readOperationFlags(
  values: Record<string, unknown>,
  defaultAddr: string,
): OperationOptions {
  const s = (k: string) => typeof values[k] === "string" ? values[k] as string : undefined;
  const [addrFlag, listen] = [s("health-addr"), s("listen")];
  if (addrFlag !== undefined && listen !== undefined && addrFlag !== listen) {
    throw new OperationFlagError("--health-addr and --listen (its older name) disagree; pass one");
  }
  const addr = addrFlag ?? listen ?? defaultAddr;
  let healthAddr: ListenAddress | undefined;
  if (addr !== "off" && addr !== "") {
    try {
      healthAddr = parseListenAddress(addr);
    } catch (err) {
      throw new OperationFlagError(`--health-addr: ${(err as Error).message}`);
    }
  }
  const levelText = s("log-level") ?? "info";
  const logLevel = LEVEL_ALIASES[levelText] ?? levelText;
  if (!isLogLevel(logLevel)) {
    throw new OperationFlagError(
      `--log-level must be debug, info, warn, error or off, got "${levelText}"`,
    );
  }
  const logFormat = s("log-format") ?? "json";
  if (!isLogFormat(logFormat)) {
    throw new OperationFlagError(`--log-format must be json or text, got "${logFormat}"`);
  }
  const logFile = s("log-file");
  if (logFile === "") throw new OperationFlagError("--log-file is empty");
  return { healthAddr, logLevel, logFormat, ...(logFile !== undefined ? { logFile } : {}) };
}

/** The parsed values of a role: its own flags and the operation flags. */
export type RoleArgValues<O extends FlagSpecs> = FlagValues<O & typeof OPERATION_FLAGS>;

/**
 * Parses a role's command line: its own `options` and the operation flags,
 * strict, no positionals. Both an unknown or malformed flag and a bad
 * operation flag come back as `usageError(message)`, the role's own usage
 * error; `defaultAddr` is the role's health address when no flag names one.
 * `values` keeps the type of every flag.
 */
export function parseRoleArgs<const O extends FlagSpecs>(
  args: string[],
  options: O,
  defaultAddr: string,
  usageError: (message: string) => Error,
): { values: RoleArgValues<O>; ops: OperationOptions } {
  let values: RoleArgValues<O>;
  try {
    values = parseFlags(args, { ...options, ...OPERATION_FLAGS });
  } catch (err) {
    throw usageError(err instanceof Error ? err.message : String(err));
  }
  try {
    return { values, ops: readOperationFlags(values, defaultAddr) };
  } catch (err) {
    throw usageError(err instanceof Error ? err.message : String(err));
  }
}

/** The help lines of the operation flags, aligned at `column`. */
export function operationHelp(defaultAddr: string, column = 25): string {
  const line = (flag: string, text: string[]) =>
    text.map((t, i) => `  ${(i === 0 ? flag : "").padEnd(column - 2)}${t}`).join("\n");
  return [
    line("--health-addr ADDR", [
      "serve /healthz, /readyz, /metrics on [HOST]:PORT or",
      `unix:PATH ("off": none; default: ${defaultAddr});`,
      "--listen is an older name of this flag",
    ]),
    line("--log-level LEVEL", ["debug, info, warn, error or off (default: info)"]),
    line("--log-format FORMAT", ["json (default) or text: one line per record for people"]),
    line("--log-file FILE", ["append log lines there instead of stderr"]),
  ].join("\n");
}
