import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import {
  defaultHealthAddr,
  OPERATION_FLAGS,
  OperationFlagError,
  operationHelp,
  parseRoleArgs,
  readOperationFlags,
  ROLE_PORTS,
} from "./operation_flags.ts";

function read(args: string[], def = defaultHealthAddr("route")) {
  const { values } = parseArgs({ args, options: OPERATION_FLAGS, strict: true });
  return readOperationFlags(values, def);
}

Deno.test("operation flags: defaults, --listen as the older name, off, levels and formats", () => {
  assert.deepEqual(read([]), {
    healthAddr: { transport: "tcp", hostname: "127.0.0.1", port: 9472 },
    logLevel: "info",
    logFormat: "json",
  });
  assert.deepEqual(read(["--listen=:9000"]).healthAddr, {
    transport: "tcp",
    hostname: "0.0.0.0",
    port: 9000,
  });
  assert.equal(read(["--health-addr=off"]).healthAddr, undefined);
  assert.equal(read(["--health-addr="]).healthAddr, undefined);
  assert.equal(read([], "off").healthAddr, undefined);
  assert.equal(read(["--log-level=verbose"]).logLevel, "debug");
  assert.equal(read(["--log-format=text", "--log-file=/tmp/x"]).logFormat, "text");
  assert.equal(read(["--log-file=/tmp/x"]).logFile, "/tmp/x");
});

Deno.test("operation flags: bad values name the flag", () => {
  const bad: [string[], RegExp][] = [
    [["--health-addr=nope"], /--health-addr: "nope" is not/],
    [["--health-addr=:1", "--listen=:2"], /disagree/],
    [["--log-level=loud"], /--log-level must be .* got "loud"/],
    [["--log-format=yaml"], /--log-format must be json or text/],
    [["--log-file="], /--log-file is empty/],
  ];
  for (const [args, re] of bad) {
    assert.throws(() => read(args), (e) => e instanceof OperationFlagError && re.test(e.message));
  }
});

Deno.test("every role has a port of its own and its help says the default", () => {
  const ports = Object.values(ROLE_PORTS);
  assert.equal(new Set(ports).size, ports.length);
  assert.match(operationHelp(defaultHealthAddr("dra")), /default: 127\.0\.0\.1:9476/);
});

/** A role's own usage error, as each role declares one. */
class RoleUsageError extends Error {}

const ROLE_OPTIONS = {
  "node-name": { type: "string" },
  "cni-bin-dir": { type: "string", multiple: true },
  once: { type: "boolean" },
} as const;

function parseRole(args: string[]) {
  return parseRoleArgs(args, ROLE_OPTIONS, "off", (m) => new RoleUsageError(m));
}

/** True only when A and B are the same type. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;

Deno.test("role arguments: own options and operation flags, typed by their specs", () => {
  const { values, ops } = parseRole([
    "--node-name=n1",
    "--cni-bin-dir=/a",
    "--cni-bin-dir",
    "/b",
    "--once",
    "--log-level=warn",
    "--health-addr=127.0.0.1:9000",
  ]);
  const typed: Same<typeof values, {
    "node-name"?: string;
    "cni-bin-dir"?: string[];
    once?: boolean;
    "health-addr"?: string;
    listen?: string;
    "log-level"?: string;
    "log-format"?: string;
    "log-file"?: string;
  }> = true;
  assert.equal(typed, true);
  assert.equal(values["node-name"], "n1");
  assert.deepEqual(values["cni-bin-dir"], ["/a", "/b"]);
  assert.equal(values.once, true);
  assert.equal(values["log-level"], "warn");
  assert.deepEqual(ops, {
    healthAddr: { transport: "tcp", hostname: "127.0.0.1", port: 9000 },
    logLevel: "warn",
    logFormat: "json",
  });
  assert.deepEqual(parseRole([]).ops, {
    healthAddr: undefined,
    logLevel: "info",
    logFormat: "json",
  });
});

Deno.test("role arguments: unknown flags, positionals and bad operation flags are the role's usage error", () => {
  const bad: [string[], RegExp][] = [
    [["--nope"], /^Unknown option '--nope'/],
    [["stray"], /^Unexpected argument 'stray'/],
    [["--node-name"], /^Option '--node-name <value>' argument missing/],
    [["--log-level=loud"], /^--log-level must be debug, info, warn, error or off, got "loud"$/],
    [["--health-addr=:1", "--listen=:2"], /^--health-addr and --listen .* disagree; pass one$/],
  ];
  for (const [args, re] of bad) {
    assert.throws(() => parseRole(args), (e) => e instanceof RoleUsageError && re.test(e.message));
  }
});
