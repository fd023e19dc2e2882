/**
 * `deno task chaos`: the fault suite. Runs every scenario with its share of
 * the fault cycles and the fuzzing, then prints the counters as one JSON
 * line on stdout (findings, with what to replay them, on stderr):
 *
 *   {"cycles","killed","leakedLinks","leakedAddresses","leakedFiles",
 *    "duplicates","stuck","crashes","fuzzInputs"}
 *
 *   deno task chaos                          the full run (≥ 1,000 cycles, ≥ 10,000 inputs a parser)
 *   deno task chaos --cycles 60 --fuzz 300   a short run
 *   deno task chaos --only kill,fuzz         some scenarios
 *   deno task chaos --seed 42                replay a run's choices
 *
 * Exit status: 0 when every count but cycles, killed and fuzzInputs is 0;
 * 1 otherwise; 2 when a scenario could not run at all. Needs root and the
 * test peers (tests/infra/build-peers.sh).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ChaosReport } from "./report.ts";
import { type ScenarioName, SCENARIOS } from "./scenarios.ts";
import { createRng } from "./rng.ts";

/** Sizes of a full run. */
export const FULL = { cycles: 1000, fuzz: 10_000 };

/** Options of one run. */
export interface ChaosOptions {
  /** Fault cycles over all scenarios. */
  cycles: number;
  /** Inputs per parser. */
  fuzz: number;
  seed: number;
  only?: ScenarioName[];
  /** Progress lines on stderr. */
  log?: (line: string) => void;
}

/** What a run found, and the scenarios that could not run at all (a broken set-up). */
export interface ChaosRun {
  reports: Map<ScenarioName, ChaosReport>;
  failed: Map<ScenarioName, string>;
}

/**
 * Runs the suite; one report per scenario, in order. A scenario's random
 * choices come from the seed and its place in the full list, so `--only`
 * replays the same choices as a full run with the same seed.
 */
export async function runChaos(opts: ChaosOptions): Promise<ChaosRun> {
  const out: ChaosRun = { reports: new Map(), failed: new Map() };
  const chosen = SCENARIOS.filter((s) => !opts.only || opts.only.includes(s.name));
  const weight = SCENARIOS.reduce((n, s) => n + s.share, 0) || 1;
  for (const s of chosen) {
    const report = new ChaosReport();
    const cycles = Math.max(s.share ? 1 : 0, Math.round(opts.cycles * s.share / weight));
    const started = performance.now();
    opts.log?.(`${s.name}: ${s.what} (${cycles} cycles)`);
    const rng = createRng(opts.seed + SCENARIOS.indexOf(s) * 7919);
    try {
      await s.run({ report, rng, cycles, fuzz: opts.fuzz, log: opts.log });
    } catch (err) {
      const why = err instanceof Error ? err.stack ?? err.message : String(err);
      opts.log?.(`${s.name}: could not run: ${why}`);
      out.failed.set(s.name, why);
    }
    opts.log?.(
      `${s.name}: done in ${Math.round((performance.now() - started) / 1000)} s ` +
        JSON.stringify(report.counts),
    );
    out.reports.set(s.name, report);
  }
  return out;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      cycles: { type: "string" },
      fuzz: { type: "string" },
      seed: { type: "string" },
      only: { type: "string" },
      quiet: { type: "boolean" },
    },
  });
  const seed = values.seed ? Number(values.seed) : Date.now() % 1_000_000;
  const only = values.only?.split(",").map((s) => s.trim()) as ScenarioName[] | undefined;
  const log = values.quiet ? undefined : (line: string) => console.error(`[chaos] ${line}`);
  log?.(`seed ${seed}`);
  const { reports, failed } = await runChaos({
    cycles: values.cycles ? Number(values.cycles) : FULL.cycles,
    fuzz: values.fuzz ? Number(values.fuzz) : FULL.fuzz,
    seed,
    only,
    log,
  });
  const total = ChaosReport.sum([...reports.values()]);
  for (const f of total.findings) {
    console.error(
      `[chaos] finding ${f.kind} in ${f.scenario}` +
        `${f.cycle !== undefined ? ` (cycle ${f.cycle}, seed ${seed})` : ""}: ${f.what}`,
    );
  }
  console.log(JSON.stringify(total.counts));
  // 2: a scenario's set-up broke, so the counts are not the whole story.
  Deno.exit(failed.size ? 2 : Object.keys(total.failures()).length ? 1 : 0);
}
