import assert from "node:assert/strict";
import { checkShape, closestKey, enforceShape, type SchemaProblem, type Shape } from "./schema.ts";

const RANGE: Shape = {
  name: "range",
  keys: { subnet: { type: "string" }, rangeStart: { type: "string" } },
};

const CONF: Shape = {
  name: "test config",
  keys: {
    name: { type: "string", nullIsWrong: true },
    mtu: { type: "integer" },
    mode: { type: "string", values: ["bridge", "vepa"] },
    flag: { type: ["boolean", "string"] },
    ranges: { type: "list", items: { type: "list", items: { type: "object", shape: RANGE } } },
    args: { type: "object", shape: { name: "args", keys: {}, open: true } },
    cniDir: { type: "string", foreign: "Multus: read on DEL" },
    logOptions: { type: "any", unsupported: "rotate with logrotate" },
  },
};

const kinds = (ps: SchemaProblem[]) => ps.map((p) => `${p.kind} ${p.path}`);

Deno.test("a conforming object has no problems; free-form objects take any key", () => {
  const r = checkShape({
    name: "n",
    mtu: 1400,
    mode: "vepa",
    flag: "true",
    ranges: [[{ subnet: "10.0.0.0/24" }]],
    args: { cni: { anything: 1 } },
    absentIsFine: undefined,
  }, { ...CONF, keys: { ...CONF.keys, absentIsFine: { type: "string" } } });
  assert.deepEqual(r.problems, []);
});

Deno.test("problems carry key paths through nested objects and lists", () => {
  const r = checkShape(
    {
      name: null,
      mtu: 1.5,
      mode: "passthrough",
      flag: 3,
      ranges: [[{ subnet: "10.0.0.0/24", rangeStrat: "10.0.0.5" }], "x"],
    },
    CONF,
    "delegates[1]",
  );
  assert.deepEqual(kinds(r.problems), [
    "type delegates[1].name",
    "type delegates[1].mtu",
    "value delegates[1].mode",
    "type delegates[1].flag",
    "unknown delegates[1].ranges[0][0].rangeStrat",
    "type delegates[1].ranges[1]",
  ]);
  const byPath = new Map(r.problems.map((p) => [p.path, p.message]));
  assert.equal(
    byPath.get("delegates[1].mtu"),
    '"delegates[1].mtu" must be an integer, got number',
  );
  assert.match(byPath.get("delegates[1].flag")!, /must be a boolean or a string, got number/);
  assert.match(
    byPath.get("delegates[1].ranges[0][0].rangeStrat")!,
    /not a key of a range; did you mean "rangeStart"\?/,
  );
  assert.match(byPath.get("delegates[1].mode")!, /expected one of bridge, vepa/);
});

Deno.test("foreign spellings are accepted with their meaning; unsupported ones are problems", () => {
  const r = checkShape({ cniDir: "/var/lib/cni/multus", logOptions: { maxAge: 5 } }, CONF);
  assert.deepEqual(r.notes, [{ path: "cniDir", message: '"cniDir": Multus: read on DEL' }]);
  assert.deepEqual(kinds(r.problems), ["unsupported logOptions"]);
  assert.match(r.problems[0].message, /not supported: rotate with logrotate/);
});

Deno.test("near misses are suggested; far ones are not", () => {
  assert.equal(closestKey("isGatway", ["isGateway", "ipMasq"]), "isGateway");
  assert.equal(closestKey("rangeStrat", ["rangeStart", "rangeEnd"]), "rangeStart");
  assert.equal(closestKey("ISGATEWAY", ["isGateway"]), "isGateway");
  assert.equal(closestKey("delegatez", ["delegates"]), "delegates");
  assert.equal(closestKey("color", ["isGateway", "mtu"]), undefined);
  assert.equal(closestKey("mt", ["mtu", "vni"]), "mtu");
});

Deno.test("enforceShape throws the caller's error for the first wrong type and warns for the rest", () => {
  const warnings: string[] = [];
  class Wrong extends Error {}
  const fail = (p: { path: string; expected: string }) => new Wrong(`${p.path}: ${p.expected}`);
  assert.throws(
    () =>
      enforceShape({ isGatway: true, ranges: [[{ subnet: 7 }]] }, CONF, {
        fail,
        warn: (p) => warnings.push(p.path),
      }),
    (err: unknown) => err instanceof Wrong && err.message === "ranges[0][0].subnet: a string",
  );
  assert.deepEqual(warnings, ["isGatway"]);
  // Values are the parser's to judge; with types off only the warnings remain.
  warnings.length = 0;
  enforceShape({ mode: "other", mtu: "x", logOptions: {} }, CONF, {
    fail,
    types: false,
    warn: (p) => warnings.push(`${p.kind} ${p.path}`),
  });
  assert.deepEqual(warnings, ["unsupported logOptions"]);
});
