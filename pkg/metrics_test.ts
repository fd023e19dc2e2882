import assert from "node:assert/strict";
import { createRegistry } from "./metrics.ts";

Deno.test("counters and gauges render in the text format with sorted, escaped labels", () => {
  const reg = createRegistry();
  const c = reg.counter("x_total", "Things.\nMore.", ["kind"]);
  const g = reg.gauge("y", "A level.");
  c.inc({ kind: "b" });
  c.inc({ kind: 'a"q' }, 2);
  g.set({}, 4.5);
  assert.equal(
    reg.render(),
    [
      "# HELP x_total Things.\\nMore.",
      "# TYPE x_total counter",
      'x_total{kind="a\\"q"} 2',
      'x_total{kind="b"} 1',
      "# HELP y A level.",
      "# TYPE y gauge",
      "y 4.5",
      "",
    ].join("\n"),
  );
  assert.equal(c.get({ kind: "b" }), 1);
});

Deno.test("histograms count cumulatively, with +Inf, sum and count", () => {
  const reg = createRegistry();
  const h = reg.histogram("d_seconds", "Durations.", ["pass"], [0.1, 1]);
  h.observe({ pass: "full" }, 0.05);
  h.observe({ pass: "full" }, 0.5);
  h.observe({ pass: "full" }, 3);
  const text = reg.render();
  assert.match(text, /d_seconds_bucket\{pass="full",le="0.1"\} 1\n/);
  assert.match(text, /d_seconds_bucket\{pass="full",le="1"\} 2\n/);
  assert.match(text, /d_seconds_bucket\{pass="full",le="\+Inf"\} 3\n/);
  assert.match(text, /d_seconds_sum\{pass="full"\} 3.55\n/);
  assert.match(text, /d_seconds_count\{pass="full"\} 3\n/);
  assert.equal(h.count({ pass: "full" }), 3);
});

Deno.test("wrong labels, bad names, duplicate names and negative counts are refused", () => {
  const reg = createRegistry();
  const c = reg.counter("a_total", "A.", ["kind"]);
  assert.throws(() => c.inc({ other: "x" }), TypeError);
  assert.throws(() => c.inc({ kind: "x" }, -1), RangeError);
  assert.throws(() => reg.gauge("a_total", "again"), TypeError);
  assert.throws(() => reg.gauge("1bad", "bad"), TypeError);
  assert.throws(() => reg.histogram("h", "h", ["le"]), TypeError);
});

Deno.test("gauge reset drops labelled series and keeps an unlabelled one at zero", () => {
  const reg = createRegistry();
  const g = reg.gauge("p", "P.", ["kind"]);
  const plain = reg.gauge("q", "Q.");
  g.inc({ kind: "x" });
  plain.set({}, 3);
  g.reset();
  plain.reset();
  assert.doesNotMatch(reg.render(), /p\{/);
  assert.match(reg.render(), /\nq 0\n/);
});
