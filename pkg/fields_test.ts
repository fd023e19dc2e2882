import assert from "node:assert/strict";
import { type FieldProblem, fields, isJsonObject, jsonType } from "./fields.ts";

class Wrong extends Error {
  constructor(readonly problem: FieldProblem) {
    super(`${problem.path} must be ${problem.expected}, got ${problem.got}`);
  }
}

const fail = (p: FieldProblem) => new Wrong(p);

Deno.test("each read returns its type, and undefined when the field is absent or null", () => {
  const f = fields({
    s: "x",
    b: false,
    i: 3,
    n: 1.5,
    o: { a: 1 },
    l: [1, "a"],
    ss: ["a", "b"],
    nul: null,
  }, { fail });
  assert.equal(f.string("s"), "x");
  assert.equal(f.boolean("b"), false);
  assert.equal(f.integer("i"), 3);
  assert.equal(f.number("n"), 1.5);
  assert.deepEqual(f.object("o"), { a: 1 });
  assert.deepEqual(f.list("l"), [1, "a"]);
  assert.deepEqual(f.strings("ss"), ["a", "b"]);
  for (const read of ["string", "boolean", "integer", "number", "object", "list", "strings"]) {
    assert.equal(f[read as "string"]("absent"), undefined, `${read} of an absent field`);
    assert.equal(f[read as "string"]("nul"), undefined, `${read} of null`);
  }
});

Deno.test("a field of the wrong type is reported with its path, the type wanted and the one found", () => {
  const f = fields({ s: 1, b: "yes", i: 1.5, o: [], l: {}, ss: ["a", 2], n: "3" }, {
    fail,
    where: "ipam",
  });
  const cases: [() => unknown, string][] = [
    [() => f.string("s"), "ipam.s must be a string, got number"],
    [() => f.boolean("b"), "ipam.b must be a boolean, got string"],
    [() => f.integer("i"), "ipam.i must be an integer, got number"],
    [() => f.number("n"), "ipam.n must be a number, got string"],
    [() => f.object("o"), "ipam.o must be an object, got array"],
    [() => f.list("l"), "ipam.l must be a list, got object"],
    [() => f.strings("ss"), "ipam.ss must be a list of strings, got array"],
  ];
  for (const [read, message] of cases) {
    assert.throws(read, (e: unknown) => e instanceof Wrong && e.message === message, message);
  }
  try {
    f.string("s");
  } catch (err) {
    assert.deepEqual((err as Wrong).problem, {
      key: "s",
      path: "ipam.s",
      expected: "a string",
      got: "number",
      value: 1,
    });
  }
});

Deno.test("options: null as a wrong type, empty strings as not set (strings only), nested paths", () => {
  assert.throws(
    () => fields({ s: null }, { fail, nullIsWrong: true }).string("s"),
    /s must be a string, got null$/,
  );
  const blank = fields({ s: "", b: "" }, { fail, emptyStringUnset: true });
  assert.equal(blank.string("s"), undefined);
  assert.throws(() => blank.boolean("b"), /b must be a boolean, got string/);
  assert.equal(fields({ s: "" }, { fail }).string("s"), "");
  const root = fields({ ipam: { ranges: { x: 1 } } }, { fail });
  const ipam = root.nested("ipam")!;
  assert.equal(ipam.path("ranges"), "ipam.ranges");
  assert.throws(() => ipam.nested("ranges")!.string("x"), /ipam\.ranges\.x must be a string/);
  assert.equal(root.nested("missing"), undefined);
});

Deno.test("jsonType and isJsonObject tell JSON's kinds apart", () => {
  assert.deepEqual([null, [], {}, "", 0, true].map(jsonType), [
    "null",
    "array",
    "object",
    "string",
    "number",
    "boolean",
  ]);
  assert.deepEqual([null, [], {}, "x"].map(isJsonObject), [false, false, true, false]);
});
