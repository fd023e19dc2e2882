import assert from "node:assert/strict";
import { CniError } from "./errors.ts";
import { outputDocument, pluginError } from "./plugin_output.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("a failed plugin's output is read by one rule set (libcni's pluginErr)", () => {
  const cases: {
    what: string;
    stdout: string;
    stderr?: string;
    code: number;
    want: { code: number; msg: string | RegExp; details?: string };
  }[] = [
    {
      what: "error JSON: code, msg and details kept",
      stdout: `{"cniVersion":"1.1.0","code":7,"msg":"bad conf","details":"field x"}`,
      code: 1,
      want: { code: 7, msg: "bad conf", details: "field x" },
    },
    {
      what: "error JSON without details",
      stdout: `{"code":11,"msg":"try later"}`,
      code: 1,
      want: { code: 11, msg: "try later" },
    },
    {
      what: "an empty details string is no details",
      stdout: `{"code":4,"msg":"x","details":""}`,
      code: 1,
      want: { code: 4, msg: "x" },
    },
    {
      what: "a code that is not a non-negative integer is 999",
      stdout: `{"code":"7","msg":"text code"}`,
      code: 1,
      want: { code: 999, msg: "text code" },
    },
    {
      what: "a negative code is 999",
      stdout: `{"code":-3,"msg":"negative"}`,
      code: 1,
      want: { code: 999, msg: "negative" },
    },
    {
      what: "a fractional code is 999",
      stdout: `{"code":1.5,"msg":"fraction"}`,
      code: 1,
      want: { code: 999, msg: "fraction" },
    },
    {
      what: "no msg: the output is quoted",
      stdout: `{"code":7}`,
      code: 1,
      want: {
        code: 999,
        msg: `netplugin failed but error parsing its diagnostic message "{\\"code\\":7}"`,
      },
    },
    {
      what: "not JSON: the output is quoted",
      stdout: "garbage",
      code: 2,
      want: {
        code: 999,
        msg: `netplugin failed but error parsing its diagnostic message "garbage"`,
      },
    },
    {
      what: "a JSON value that is no object",
      stdout: `"just text"`,
      code: 1,
      want: { code: 999, msg: /error parsing its diagnostic message/ },
    },
    {
      what: "nothing on stdout: stderr quoted with the exit status",
      stdout: "",
      stderr: "it broke\n",
      code: 2,
      want: { code: 999, msg: `netplugin failed: "it broke": exit status 2` },
    },
    {
      what: "only whitespace on stdout counts as nothing",
      stdout: "  \n",
      stderr: "oops",
      code: 3,
      want: { code: 999, msg: `netplugin failed: "oops": exit status 3` },
    },
    {
      what: "nothing on either",
      stdout: "",
      code: 1,
      want: { code: 999, msg: "netplugin failed with no error message: exit status 1" },
    },
  ];
  for (const c of cases) {
    for (const form of ["text", "bytes"] as const) {
      const out = form === "text"
        ? { stdout: c.stdout, stderr: c.stderr, code: c.code }
        : { stdout: enc(c.stdout), stderr: c.stderr ? enc(c.stderr) : undefined, code: c.code };
      const err = pluginError(out);
      assert.ok(err instanceof CniError, c.what);
      assert.equal(err.code, c.want.code, `${c.what} (${form}): code`);
      if (typeof c.want.msg === "string") assert.equal(err.message, c.want.msg, c.what);
      else assert.match(err.message, c.want.msg, c.what);
      assert.equal(err.details, c.want.details, `${c.what}: details`);
    }
  }
});

Deno.test("a succeeded plugin's document: a JSON object, else code 6; a failure throws its error", () => {
  assert.deepEqual(outputDocument({ stdout: `{"cniVersion":"1.0.0","ips":[]}`, code: 0 }, "p"), {
    cniVersion: "1.0.0",
    ips: [],
  });
  const bad: [string, RegExp][] = [
    ["", /^plugin "x" printed a result that is not JSON: /],
    ["{nope", /^plugin "x" printed a result that is not JSON: /],
    ["[1]", /^plugin "x" printed a result that is not an object$/],
    ["null", /^plugin "x" printed a result that is not an object$/],
    ["42", /^plugin "x" printed a result that is not an object$/],
  ];
  for (const [stdout, msg] of bad) {
    assert.throws(
      () => outputDocument({ stdout, code: 0 }, `plugin "x"`),
      (e: unknown) => e instanceof CniError && e.code === 6 && msg.test(e.message),
      JSON.stringify(stdout),
    );
  }
  assert.throws(
    () => outputDocument({ stdout: `{"code":7,"msg":"no"}`, code: 1 }, "p"),
    (e: unknown) => e instanceof CniError && e.code === 7 && e.message === "no",
  );
});
