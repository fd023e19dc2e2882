/**
 * The fault suite, short: every scenario of `deno task chaos` with a few
 * cycles and a few hundred inputs per parser, from a fixed seed. Each
 * scenario must end with every count but cycles, killed and fuzzInputs at 0.
 */

import assert from "node:assert/strict";
import { ChaosReport } from "./report.ts";
import { createRng } from "./rng.ts";
import { type ScenarioName, SCENARIOS } from "./scenarios.ts";

const SEED = 20_241;

/** Cycles of each scenario in the short run (a few minutes in all). */
const SHORT: Record<ScenarioName, number> = {
  kill: 24,
  unclean: 12,
  installer: 3,
  router: 3,
  daemon: 4,
  api: 3,
  flood: 2,
  "nri-kill": 3,
  "nri-flood": 3,
  fuzz: 0,
};
const FUZZ_INPUTS = 300;

Deno.test("the fault suite, short: every scenario leaves nothing, duplicates nothing, gets stuck nowhere, crashes nothing", async (t) => {
  for (const [i, s] of SCENARIOS.entries()) {
    await t.step(`${s.name}: ${s.what}`, async () => {
      const report = new ChaosReport(1000);
      await s.run({
        report,
        rng: createRng(SEED + i * 7919),
        cycles: SHORT[s.name],
        fuzz: FUZZ_INPUTS,
      });
      if (s.name === "fuzz") assert.ok(report.counts.fuzzInputs >= FUZZ_INPUTS * 10);
      else assert.ok(report.counts.cycles >= SHORT[s.name]);
      const found = report.findings.map((f) =>
        `${f.kind} in ${f.scenario}${f.cycle !== undefined ? ` (cycle ${f.cycle})` : ""}: ${f.what}`
      );
      assert.deepEqual(found, [], `${s.name}: ${JSON.stringify(report.counts)}`);
      assert.deepEqual(report.failures(), {}, `${s.name}: ${JSON.stringify(report.counts)}`);
    });
  }
});
