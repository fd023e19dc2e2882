import assert from "node:assert/strict";
import { parseSelector, SELECTOR_LIMITS } from "./selector.ts";

function sel(raw: unknown) {
  const errors: string[] = [];
  const s = parseSelector(raw, "sel", errors);
  return { s, errors };
}

Deno.test("selectors: matchLabels and every operator, as Kubernetes matches them", () => {
  const { s } = sel({
    matchLabels: { app: "web" },
    matchExpressions: [
      { key: "tier", operator: "In", values: ["front", "edge"] },
      { key: "env", operator: "NotIn", values: ["prod"] },
      { key: "team", operator: "Exists" },
      { key: "legacy", operator: "DoesNotExist" },
    ],
  });
  assert.ok(s);
  assert.equal(s.everything, false);
  assert.ok(s.matches({ app: "web", tier: "front", team: "t1" }));
  assert.ok(s.matches({ app: "web", tier: "edge", team: "t1", env: "dev" }));
  assert.ok(!s.matches({ app: "web", tier: "front", team: "t1", env: "prod" }), "NotIn");
  assert.ok(!s.matches({ app: "web", tier: "front" }), "Exists");
  assert.ok(!s.matches({ app: "web", tier: "front", team: "t", legacy: "" }), "DoesNotExist");
  assert.ok(!s.matches({ app: "db", tier: "front", team: "t" }), "matchLabels");
  assert.ok(!s.matches(undefined));
  const empty = sel({}).s!;
  assert.ok(empty.everything && empty.matches(undefined) && empty.matches({ any: "x" }));
});

Deno.test("selectors: bad input is refused with the field named", () => {
  const cases: [unknown, RegExp][] = [
    ["x", /sel: not an object/],
    [{ matchLabels: [] }, /sel.matchLabels: not an object/],
    [{ matchLabels: { "bad key!": "v" } }, /label key "bad key!"/],
    [{ matchLabels: { k: "-bad" } }, /label value "-bad"/],
    [{ matchLabels: { k: 3 } }, /not a string/],
    [{ matchExpressions: [{ key: "k", operator: "Near", values: ["a"] }] }, /"Near" is not In/],
    [{ matchExpressions: [{ key: "k", operator: "In" }] }, /In needs values/],
    [{ matchExpressions: [{ key: "k", operator: "Exists", values: ["a"] }] }, /takes no values/],
    [{ matchExpressions: [{ operator: "Exists" }] }, /key: not a string/],
    [{ matchExpressions: {} }, /not a list/],
  ];
  for (const [raw, re] of cases) {
    const { s, errors } = sel(raw);
    assert.equal(s, undefined, JSON.stringify(raw));
    assert.match(errors.join("\n"), re, JSON.stringify(raw));
  }
});

Deno.test("selectors: huge ones are refused, not evaluated", () => {
  const values = Array.from({ length: SELECTOR_LIMITS.values + 1 }, (_, i) => `v${i}`);
  const big = sel({ matchExpressions: [{ key: "k", operator: "In", values }] });
  assert.equal(big.s, undefined);
  assert.match(big.errors[0], /more than 256/);
  const labels = Object.fromEntries(
    Array.from({ length: SELECTOR_LIMITS.requirements + 1 }, (_, i) => [`k${i}`, "v"]),
  );
  assert.match(sel({ matchLabels: labels }).errors[0], /65 requirements, more than 64/);
});
