import assert from "node:assert/strict";
import { summarize, underCi, verdict } from "./summary.ts";

const REPORT = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="4" failures="1" errors="0" time="1.0">
  <testsuite name="./a_test.ts" tests="4" disabled="0" errors="0" failures="1">
    <testcase name="works" classname="./a_test.ts" time="0.1">
      <testcase name="a step" classname="./a_test.ts" time="0.0"/>
    </testcase>
    <testcase name="breaks" classname="./a_test.ts" time="0.1">
      <failure message="boom">boom</failure>
    </testcase>
    <testcase name="needs &quot;containerd&quot;" classname="./a_test.ts" time="0.0">
      <skipped/>
    </testcase>
    <testcase name="plain" classname="./a_test.ts" time="0.1"/>
  </testsuite>
</testsuites>`;

Deno.test("summary: counts cases, names the skipped ones", () => {
  const s = summarize(REPORT);
  assert.equal(s.failed, 1);
  assert.deepEqual(s.skipped, ['needs "containerd"']);
  assert.ok(s.passed >= 2);
});

Deno.test("summary: under CI a skipped test is a failure; outside CI it is only counted", () => {
  const skippedOnly = { passed: 5, failed: 0, skipped: ["needs containerd"] };
  assert.deepEqual(verdict(skippedOnly, true), {
    line: "5 passed, 1 failed, 1 skipped (failures under CI)",
    ok: false,
  });
  assert.deepEqual(verdict(skippedOnly, false), {
    line: "5 passed, 0 failed, 1 skipped",
    ok: true,
  });
  assert.deepEqual(verdict({ passed: 5, failed: 0, skipped: [] }, true), {
    line: "5 passed, 0 failed",
    ok: true,
  });
  assert.equal(verdict({ passed: 0, failed: 0, skipped: [] }, true).ok, false, "nothing ran");
  const env = (v?: string) => (name: string) => name === "CI" ? v : undefined;
  assert.deepEqual(
    [undefined, "", "0", "false", "1", "true"].map((v) => underCi(env(v))),
    [false, false, false, false, true, true],
  );
});
