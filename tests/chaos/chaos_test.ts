/**
 * The fault suite, short: every scenario of `deno task chaos` with a few
 * cycles and a few hundred inputs per parser, from a fixed seed. Each
 * scenario must end with every count but cycles, killed and fuzzInputs at 0.
 *
 * Findings of the node daemon and attachment engine that are being fixed
 * beside this suite are listed in KNOWN, each with the item of the review
 * that names it; a run reports them apart and does not fail on them. An
 * entry goes once its fix lands (a notice says when one no longer shows).
 */

import assert from "node:assert/strict";
import { ChaosReport, type Finding } from "./report.ts";
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

/**
 * Open findings of the daemon and engine hardening: review item, scenario,
 * what it says, and (`withCrash`) only when the daemon died of a request in
 * the same cycle, so a status lost for another reason still fails.
 */
const KNOWN: { item: number; scenario: RegExp; what: RegExp; withCrash?: boolean }[] = [
  // A truncated, zeroed or missing attachment record: the DEL deletes nothing.
  { item: 4, scenario: /unclean-state \(attachment record/, what: /./ },
  // A zeroed or cut reservation is freed only by GC; temp files of killed writes are never swept.
  { item: 14, scenario: /unclean-state \(IPAM reservation/, what: /IPAM holds/ },
  {
    item: 14,
    scenario: /unclean-state/,
    what: /\/\.chx[0-9a-f]+-eth0\.tmp-|\/\.chaosnet-chx[0-9a-f]+-eth0\.tmp-/,
  },
  // A status report queued in the daemon's memory dies with it (kill -9 after it answered).
  { item: 2, scenario: /fault-daemon/, what: /network status never reached pod/ },
  // {"op":"report"} without a pod kills the daemon.
  { item: 2, scenario: /fault-flood/, what: /hydra daemon died: .*node_reports\.ts/s },
  // ... and the status reports it had queued die with it.
  { item: 2, scenario: /fault-flood/, what: /network status never reached pod/, withCrash: true },
];

/** The review item a finding is known under, if any. */
function isKnown(f: Finding, all: readonly Finding[]): number | undefined {
  const crashed = all.some((c) =>
    c.kind === "crashes" && c.scenario === f.scenario && c.cycle === f.cycle &&
    /hydra daemon died/.test(c.what)
  );
  return KNOWN.find((k) =>
    k.scenario.test(f.scenario) && k.what.test(f.what) && (!k.withCrash || crashed)
  )?.item;
}

Deno.test("the fault suite, short: every scenario leaves nothing, duplicates nothing, gets stuck nowhere, crashes nothing", async (t) => {
  const seen = new Set<number>();
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
      const unknown: string[] = [];
      const known: number[] = [];
      for (const f of report.findings) {
        const item = isKnown(f, report.findings);
        if (item === undefined) unknown.push(`${f.kind} in ${f.scenario}: ${f.what}`);
        else known.push(item);
      }
      for (const item of known) seen.add(item);
      if (known.length) {
        console.log(
          `[chaos] ${s.name}: ${known.length} known finding(s), review items ${[
            ...new Set(known),
          ]}`,
        );
      }
      assert.deepEqual(unknown, [], `${s.name}: ${JSON.stringify(report.counts)}`);
      // Every finding was kept, so none can hide behind the list above.
      assert.ok(report.findings.length < report.keep);
    });
  }
  for (const item of new Set(KNOWN.map((k) => k.item))) {
    if (!seen.has(item)) {
      console.log(`[chaos] review item ${item} did not show: if it is fixed, drop it from KNOWN`);
    }
  }
});
