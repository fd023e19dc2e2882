import assert from "node:assert/strict";
import { histogramMeanMs } from "./stats.ts";

Deno.test("histogramMeanMs: a series' mean in ms from its _sum and _count, undefined without samples", () => {
  const metrics = [
    'x_seconds_bucket{op="cni",le="0.01"} 3',
    'x_seconds_sum{op="cni"} 0.05',
    'x_seconds_count{op="cni"} 4',
    'x_seconds_sum{op="get"} 0',
    'x_seconds_count{op="get"} 0',
  ].join("\n");
  assert.equal(histogramMeanMs(metrics, "x_seconds", 'op="cni"'), 12.5);
  assert.equal(histogramMeanMs(metrics, "x_seconds", 'op="get"'), undefined);
  assert.equal(histogramMeanMs(metrics, "x_seconds", 'op="del"'), undefined);
  assert.equal(histogramMeanMs(metrics, "y_seconds", 'op="cni"'), undefined);
});
