import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import {
  defaultHealthAddr,
  OPERATION_FLAGS,
  OperationFlagError,
  operationHelp,
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
