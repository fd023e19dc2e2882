import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import fc from "fast-check";
import { FlagError, parseFlags } from "./flags.ts";

const SPECS = {
  name: { type: "string" },
  dir: { type: "string", multiple: true },
  once: { type: "boolean" },
  port: { type: "string", default: "9000" },
  verbose: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h", default: false },
  out: { type: "string", short: "o" },
} as const;

Deno.test("flags: values, repeats, defaults and one-letter forms", () => {
  const v = parseFlags(
    ["--name=a", "--dir", "/x", "--dir=/y", "--once", "-hv", "-ofile", "--name", "b"],
    SPECS,
  );
  assert.deepEqual({ ...v }, {
    name: "b",
    dir: ["/x", "/y"],
    once: true,
    help: true,
    verbose: true,
    out: "file",
    port: "9000",
  });
  assert.deepEqual({ ...parseFlags([], SPECS) }, { port: "9000", help: false });
  assert.equal(parseFlags(["--name="], SPECS).name, "");
  assert.equal(parseFlags(["--name=a=b"], SPECS).name, "a=b");
  assert.equal(parseFlags(["--name", "-"], SPECS).name, "-");
  assert.equal(parseFlags(["-o", "x", "--"], SPECS).out, "x");
});

Deno.test("flags: what they refuse, in words a user can act on", () => {
  const bad: [string[], RegExp][] = [
    [["--nope"], /^Unknown option '--nope'/],
    [["-x"], /^Unknown option '-x'/],
    [["stray"], /^Unexpected argument 'stray'/],
    [["--", "--once"], /^Unexpected argument '--once'/],
    [["-"], /^Unexpected argument '-'/],
    [["--name"], /^Option '--name <value>' argument missing/],
    [["--name", "--once"], /^Option '--name' argument is ambiguous.*--name=--once/],
    [["--once=yes"], /^Option '--once' does not take an argument/],
    [["--__proto__"], /^Unknown option '--__proto__'/],
  ];
  for (const [args, re] of bad) {
    assert.throws(
      () => parseFlags(args, SPECS),
      (e) => e instanceof FlagError && re.test(e.message),
    );
  }
});

/** node:util's reading of the same command line: its values, or the first word of its error. */
function nodeReading(args: string[]): unknown {
  try {
    const { values } = parseArgs({ args, options: SPECS, strict: true, allowPositionals: false });
    return { ...values };
  } catch (err) {
    return `error ${(err as Error).message.split(" ")[0]}`;
  }
}

function ownReading(args: string[]): unknown {
  try {
    return { ...parseFlags(args, SPECS) };
  } catch (err) {
    return `error ${(err as Error).message.split(" ")[0]}`;
  }
}

Deno.test("flags: read random command lines as node:util's parseArgs reads them", () => {
  const word = fc.constantFrom(
    "--name",
    "--name=x",
    "--name=",
    "--dir",
    "--dir=/d",
    "--once",
    "--once=1",
    "--port",
    "--verbose",
    "-v",
    "-h",
    "-hv",
    "-vh",
    "-o",
    "-ov",
    "-vo",
    "-hox",
    "-x",
    "-hx",
    "--x",
    "--",
    "-",
    "value",
    "/path",
    "a=b",
    "",
  );
  let accepted = 0;
  fc.assert(
    fc.property(fc.array(word, { maxLength: 6 }), (args) => {
      const want = nodeReading(args);
      assert.deepEqual(ownReading(args), want, JSON.stringify(args));
      if (typeof want !== "string") accepted++;
    }),
    { numRuns: 3000 },
  );
  // Both sides of the comparison are exercised: many lines read, many refused.
  assert.ok(accepted > 300 && accepted < 2700, `accepted ${accepted} of 3000`);
});
